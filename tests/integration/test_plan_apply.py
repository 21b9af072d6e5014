"""`lakestack plan` / `lakestack apply` on a dev → prod pair of local environments of one project
(two warehouses, two SQLite catalogs): a new column through a compatible contract version, a
changed model rebuilt over its partitions, a refused destructive change, a gate that blocks an
apply, apply twice = no-op, and an unreachable catalog."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_support import cli, small_northwind
from lakestack import Lake
from lakestack.pipeline.records import read_runs

RETURNED = "    count(*) FILTER (WHERE status = 'returned') AS returned_lines,\n    max(usd_rate) AS usd_rate"


def _project(root: Path) -> Path:
    small_northwind(root, orders=300, days=3)
    config_file = root / "lakestack.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config["environments"]["prod"] = {
        "description": "prod on this machine: its own warehouse and catalog",
        "warehouse": "./prod-warehouse",
        "catalog": {"type": "sql", "uri": "sqlite:///.lakestack/prod.db"},
    }
    config.pop("publish", None)  # no PostgreSQL target: this test is about the lake
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def _json(done: Any, code: int = 0) -> dict[str, Any]:
    assert done.returncode == code, (done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _changes(plan: dict[str, Any]) -> dict[str, str]:
    return {c["target"]: c["kind"] for c in plan["changes"]}


def _snapshots(root: Path, env: str) -> dict[str, int | None]:
    warehouse = Lake.open(root, env).warehouse
    out = {}
    for identifier in warehouse.tables():
        snap = warehouse.load(identifier).current_snapshot()
        out[identifier] = snap.snapshot_id if snap else None
    return out


def _version_two(root: Path) -> None:
    """orders.v2 adds an optional column (backward compatible); daily_order_metrics gets a new column."""
    v1 = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    v2 = v1.replace("version: 1", "version: 2", 1) + "  - {name: coupon_code, type: string, max_length: 20}\n"
    (root / "contracts" / "orders.v2.yaml").write_text(v2, encoding="utf-8")
    model = root / "models" / "gold" / "daily_order_metrics.sql"
    sql = model.read_text(encoding="utf-8")
    assert "    max(usd_rate) AS usd_rate" in sql
    model.write_text(sql.replace("    max(usd_rate) AS usd_rate", RETURNED), encoding="utf-8")


def _partitions(root: Path, env: str, identifier: str) -> list[str]:
    from lakestack.storage.partitioning import granularity_of, start_of_value

    table = Lake.open(root, env).warehouse.load(identifier)
    grain = granularity_of(table.spec())
    assert grain is not None
    width = {"day": 10, "month": 7, "year": 4}[grain]
    values = {t.file.partition[0] for t in table.scan().plan_files()}
    return sorted(start_of_value(v, grain).isoformat()[:width] for v in values)


def test_a_change_goes_to_dev_then_prod_and_applying_twice_changes_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path / "nw")
    for env in ("dev", "prod"):  # a fresh environment: every table is new
        plan = _json(cli(root, "plan", "--env", env, "--json"))
        kinds = _changes(plan)
        assert kinds["bronze.orders"] == kinds["silver.orders"] == kinds["gold.daily_order_metrics"] == "create"
        assert kinds["checks:silver.orders"] == "checks" and not plan["refused"]
        assert _json(cli(root, "apply", "--env", env, "--json"))["run_id"]
        assert cli(root, "--env", env, "run").returncode == 0
        assert _json(cli(root, "plan", "--env", env, "--json"))["changes"] == []

    _version_two(root)
    expected = {"bronze.orders": "evolve", "silver.orders": "evolve", "gold.daily_order_metrics": "rebuild"}
    for env in ("dev", "prod"):
        plan = _json(cli(root, "plan", "--env", env, "--json"))
        assert _changes(plan) == expected, env
        by_target = {c["target"]: c for c in plan["changes"]}
        assert any(s.startswith("add coupon_code") for s in by_target["bronze.orders"]["steps"])
        assert "orders.v1 → orders.v2, compatible" in by_target["silver.orders"]["detail"]
        rebuild = by_target["gold.daily_order_metrics"]
        assert rebuild["detail"] == "SQL changed"
        assert rebuild["partitions"] == _partitions(root, env, "gold.daily_order_metrics") != []

    text = cli(root, "plan", "--env", "dev")  # the table a person reads
    assert text.returncode == 0, text.stderr
    assert "add coupon_code" in text.stdout and "3 changes: 2 evolve, 1 rebuild" in text.stdout

    applied = _json(cli(root, "apply", "--env", "dev", "--json"))
    assert sorted(applied["applied"]) == sorted(expected) and applied["blocked"] == []
    assert [(b["dataset"], b["mode"]) for b in applied["built"]] == [("gold.daily_order_metrics", "full")]
    dev = Lake.open(root, "dev")
    assert "coupon_code" in dev.warehouse.load("bronze.orders").schema().column_names
    assert "coupon_code" in dev.warehouse.load("silver.orders").schema().column_names
    rows = dev.query("SELECT sum(returned_lines) AS r, count(*) AS n FROM gold.daily_order_metrics").to_pylist()[0]
    assert rows["n"] > 0 and rows["r"] is not None  # rebuilt in full with the new SQL
    apply_runs = [r for r in read_runs(dev.warehouse) if r["job"] == "apply" and r["lake_run_id"] == applied["run_id"]]
    assert [r["status"] for r in apply_runs] == ["COMPLETE"]

    # Applying the same plan again: an empty plan, a no-op that says so, no commit anywhere.
    before = _snapshots(root, "dev")
    runs_before = len(read_runs(dev.warehouse))
    assert _json(cli(root, "plan", "--env", "dev", "--json"))["changes"] == []
    again = _json(cli(root, "apply", "--env", "dev", "--json"))
    assert again["noop"] is True and again["run_id"] is None
    said = cli(root, "apply", "--env", "dev")
    assert said.returncode == 0 and "already matches the project: nothing to apply" in said.stdout
    assert _snapshots(root, "dev") == before
    assert len(read_runs(Lake.open(root, "dev").warehouse)) == runs_before

    # prod was not touched by dev's apply: its plan is still the same three changes, then applied.
    assert _changes(_json(cli(root, "plan", "--env", "prod", "--json"))) == expected
    assert sorted(_json(cli(root, "apply", "--env", "prod", "--json"))["applied"]) == sorted(expected)
    assert _json(cli(root, "plan", "--env", "prod", "--json"))["changes"] == []
    assert _json(cli(root, "apply", "--env", "prod", "--json"))["noop"] is True


def test_destructive_changes_breaking_contracts_and_failing_gates_are_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "nw")
    assert cli(root, "apply").returncode == 0
    assert cli(root, "run").returncode == 0

    # A model removed from the project: its table would be dropped. Refused (exit 2) without the flag.
    for path in (root / "models" / "gold").glob("dim_customers.*"):
        path.unlink()
    plan = cli(root, "plan", "--json")
    found = _json(plan, 2)
    assert found["refused"] and _changes(found) == {"gold.dim_customers": "drop"}
    assert "--allow-destructive" in found["changes"][0]["refused"]
    refused = cli(root, "apply")
    assert refused.returncode == 2, refused.stderr
    assert "dropping a table is destructive" in refused.stderr and "Traceback" not in refused.stderr
    assert Lake.open(root).warehouse.exists("gold.dim_customers")
    previewed = _json(cli(root, "plan", "--allow-destructive", "--json"))
    assert not previewed["refused"] and previewed["changes"][0]["destructive"]
    dropped = _json(cli(root, "apply", "--allow-destructive", "--json"))
    assert dropped["applied"] == ["gold.dim_customers"]
    assert not Lake.open(root).warehouse.exists("gold.dim_customers")
    assert _json(cli(root, "plan", "--json"))["changes"] == []

    # A breaking contract version (quantity's type changes, backward mode): refused at plan time.
    v1 = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    broken = re.sub(r"\{name: quantity, type: integer[^}]*\}", "{name: quantity, type: string}", v1)
    assert broken != v1
    (root / "contracts" / "orders.v2.yaml").write_text(broken.replace("version: 1", "version: 2", 1), encoding="utf-8")
    found = _json(cli(root, "plan", "--json"), 2)
    evolve = next(c for c in found["changes"] if c["target"] == "bronze.orders")
    assert evolve["kind"] == "evolve" and "not backward-compatible" in evolve["refused"]
    assert any(s.startswith("BREAKING") for s in evolve["steps"])
    assert cli(root, "apply").returncode == 2
    (root / "contracts" / "orders.v2.yaml").unlink()

    # A changed model whose new result fails gate(gold): exit 4, the old snapshot stays, nothing
    # recorded, so the next plan shows the change again.
    model = root / "models" / "gold" / "daily_order_metrics.sql"
    sql = model.read_text(encoding="utf-8")
    model.write_text(sql.replace("sum(amount_usd) FILTER", "-sum(amount_usd) FILTER", 1), encoding="utf-8")
    gold = Lake.open(root).warehouse.load("gold.daily_order_metrics").current_snapshot().snapshot_id
    blocked = cli(root, "apply", "--json")
    report = _json(blocked, 4)
    assert report["blocked"] == ["gold.daily_order_metrics"] and report["applied"] == []
    assert Lake.open(root).warehouse.load("gold.daily_order_metrics").current_snapshot().snapshot_id == gold
    assert _changes(_json(cli(root, "plan", "--json"))) == {"gold.daily_order_metrics": "rebuild"}
    model.write_text(sql, encoding="utf-8")  # the original SQL is what was applied: no change
    assert _json(cli(root, "plan", "--json"))["changes"] == []


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_an_unreachable_catalog_is_exit_3_in_one_line(tmp_path: Path, command: str) -> None:
    pytest.importorskip("psycopg")
    root = _project(tmp_path / "nw")
    config_file = root / "lakestack.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config["environments"]["prod"]["catalog"] = {"type": "sql", "uri": "postgresql://lake:s3cret@127.0.0.1:1/lake"}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    done = cli(root, command, "--env", "prod", timeout=60)
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "catalog" in lines[0], done.stderr
    assert "s3cret" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    as_json = cli(root, command, "--env", "prod", "--json", timeout=60)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["exit_code"] == 3

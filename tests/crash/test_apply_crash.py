"""`lakestack apply` killed at each of its commit steps, then run again: it converges.

One plan holds every kind of change apply makes (small Northwind, applied and run once, then: orders.v2
adds a column → bronze.orders and silver.orders evolve; fx_rates' normalisation changes → a Silver
backfill, and gold.fact_sales rebuilds downstream; daily_order_metrics' SQL changes → a rebuild; a
new model → a Gold create; dim_customers removed → a drop, with --allow-destructive). Killed at a
point and run again, apply ends where an uninterrupted apply of the same plan ends: the plan is
empty, `_lakestack.applied` holds each change of the plan once (object, kind, fingerprint), and every
Silver and Gold table holds the same rows (content hash without the run columns). SQLite catalog.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_support import RUN_COLUMNS, cli, small_northwind
from lakestack import Lake, failpoints
from lakestack.pipeline.applied import APPLIED

pytestmark = [pytest.mark.crash, pytest.mark.integration, pytest.mark.slow]

RETURNED = "    count(*) FILTER (WHERE status = 'returned') AS returned_lines,\n    max(usd_rate) AS usd_rate"
NEW_MODEL = "/* ---\ndescription: Order lines per day.\n--- */\nSELECT CAST(order_ts AS DATE) AS order_date, count(*) AS lines\nFROM silver.orders\nGROUP BY ALL\n"  # noqa: E501
PLAN = {
    "bronze.orders": "evolve",
    "silver.orders": "evolve",
    "silver.fx_rates": "backfill",
    "gold.fact_sales": "rebuild",
    "gold.daily_order_metrics": "rebuild",
    "gold.order_lines": "create",
    "gold.dim_customers": "drop",
}
# (point, action): in the order apply reaches them. The schema point fires after each table
# evolved: bronze.orders (kill), then silver.orders (kill@2).
POINTS = [
    ("apply.schema.after_commit", "kill"),
    ("apply.schema.after_commit", "kill@2"),
    ("apply.backfill.after_commit", "kill"),
    ("apply.gold.after_builds", "kill"),
    ("apply.drop.after_commit", "kill"),
    ("apply.record.before_commit", "kill"),
    ("apply.record.after_commit", "kill"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = small_northwind(tmp_path_factory.mktemp("apply") / "pristine", orders=300, days=3)
    config_file = root / "lakestack.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config.pop("publish", None)  # no PostgreSQL target: this test is about the lake
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def _applied_then_changed(pristine: Path, root: Path) -> set[str]:
    """A copy applied and run once, then changed into PLAN; the run ids of `_lakestack.applied` so far."""
    shutil.copytree(pristine, root)
    for command in ("apply", "run"):
        done = cli(root, command)
        assert done.returncode == 0, done.stderr
    before = {r["run_id"] for r in _applied_rows(root)}
    v1 = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    v2 = v1.replace("version: 1", "version: 2", 1) + "  - {name: coupon_code, type: string, max_length: 20}\n"
    (root / "contracts" / "orders.v2.yaml").write_text(v2, encoding="utf-8")
    model = root / "models" / "gold" / "daily_order_metrics.sql"
    model.write_text(model.read_text(encoding="utf-8").replace("    max(usd_rate) AS usd_rate", RETURNED))
    (root / "models" / "gold" / "order_lines.sql").write_text(NEW_MODEL, encoding="utf-8")
    for path in (root / "models" / "gold").glob("dim_customers.*"):
        path.unlink()
    config_file = root / "lakestack.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config["datasets"]["fx_rates"]["normalize"] = {"upper": ["base_currency", "quote_currency"]}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    plan = _plan(root)
    assert {c["target"]: c["kind"] for c in plan} == PLAN
    return before


def _plan(root: Path) -> list[dict[str, Any]]:
    done = cli(root, "plan", "--allow-destructive", "--json")
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    return json.loads(done.stdout)["changes"]  # type: ignore[no-any-return]


def _applied_rows(root: Path) -> list[dict[str, Any]]:
    warehouse = Lake.open(root).warehouse
    return warehouse.load(APPLIED).scan().to_arrow().to_pylist() if warehouse.exists(APPLIED) else []


def _changes_recorded(root: Path, earlier: set[str]) -> Counter[tuple[str, str, str | None]]:
    """(object, kind, fingerprint) of each row the scenario's applies recorded (their own rows aside)."""
    rows = [r for r in _applied_rows(root) if r["run_id"] not in earlier and not r["object"].startswith("apply:")]
    return Counter((r["object"], r["kind"], r["fingerprint"]) for r in rows)


def _tables(root: Path) -> dict[str, tuple[int, str]]:
    """(rows, content hash) of each Silver and Gold table, the run columns left out. Read by pyiceberg
    only: an evolved table's older files lack the new column, which DuckDB over the bare files
    (lake_contents) does not fill in."""
    warehouse = Lake.open(root).warehouse
    out = {}
    for identifier in (t for t in warehouse.tables() if t.startswith(("silver.", "gold."))):
        rows = warehouse.load(identifier).scan().to_arrow().to_pylist()
        lines = sorted(repr(sorted((k, v) for k, v in r.items() if k not in RUN_COLUMNS)) for r in rows)
        out[identifier] = (len(rows), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return out


@pytest.fixture(scope="module")
def reference(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Counter[Any]]:
    """The Silver and Gold tables and the records after an uninterrupted apply of the plan."""
    root = tmp_path_factory.mktemp("reference") / "p"
    earlier = _applied_then_changed(pristine, root)
    done = cli(root, "apply", "--allow-destructive")
    assert done.returncode == 0, done.stderr
    assert _plan(root) == []
    recorded = _changes_recorded(root, earlier)
    assert {o: k for o, k, _ in recorded} == {("schema:" + t if k == "evolve" else t): k for t, k in PLAN.items()}, (
        recorded
    )
    assert set(recorded.values()) == {1}
    return _tables(root), recorded


@pytest.mark.parametrize(("point", "action"), POINTS, ids=[f"{p}={a}" for p, a in POINTS])
def test_apply_killed_at_a_commit_step_then_run_again_converges(
    pristine: Path, reference: tuple[dict[str, Any], Counter[Any]], tmp_path: Path, point: str, action: str
) -> None:
    tables, recorded = reference
    root = tmp_path / "p"
    earlier = _applied_then_changed(pristine, root)
    log = tmp_path / "hits.log"
    crashed = cli(
        root,
        "apply",
        "--allow-destructive",
        LAKESTACK_FAILPOINTS=f"{point}={action}",
        LAKESTACK_FAILPOINTS_LOG=str(log),
    )
    assert crashed.returncode == -9, (crashed.returncode, crashed.stderr[-2000:])
    assert failpoints.hits(str(log)) == [point]

    again = cli(root, "apply", "--allow-destructive", "--json")
    assert again.returncode == 0, (again.stdout[-2000:], again.stderr[-2000:])
    assert json.loads(again.stdout)["noop"] == (point == "apply.record.after_commit")
    assert _plan(root) == []
    assert not Lake.open(root).warehouse.exists("gold.dim_customers")
    assert _changes_recorded(root, earlier) == recorded  # each change once, none lost
    assert _tables(root) == tables

"""`lakestack apply` killed at each of its commit steps, then run again: it converges.

One plan holds every kind of change apply makes (small Northwind, applied and run once, then: orders.v2
adds a column → bronze.orders and silver.orders evolve; fx_rates' normalisation changes → a Silver
backfill, and gold.fact_sales rebuilds downstream; daily_order_metrics' SQL changes → a rebuild; a
new model → a Gold create; dim_customers removed → a drop, with --allow-destructive). Killed at a
point and run again, apply ends where an uninterrupted apply of the same plan ends: the plan is
empty, `_lakestack.applied` holds each change of the plan once (object, kind, fingerprint), the rerun
checked the same datasets as the uninterrupted apply (its gate included the evolutions the killed
one made), and every Silver and Gold table holds the same rows (content hash without the run
columns). SQLite catalog.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass
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
    ("apply.intent.after_commit", "kill"),  # nothing changed yet
    ("apply.schema.after_commit", "kill"),
    ("apply.schema.after_commit", "kill@2"),
    ("apply.backfill.after_commit", "kill"),
    ("apply.gold.after_builds", "kill"),
    ("apply.drop.after_commit", "kill"),
    ("apply.record.before_commit", "kill"),
    ("apply.record.after_commit", "kill"),
]


@dataclass(frozen=True)
class Base:
    """The lake applied and run once, then changed into PLAN, kept at `saved`; `root` is where each
    test restores it. The catalog names files by absolute path, so a copy works at `root` only: the
    tests of this module take turns there (one worker runs a module's tests in sequence)."""

    root: Path
    saved: Path
    earlier: set[str]  # the run ids `_lakestack.applied` held before the plan

    def restore(self) -> Path:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(self.saved, self.root)
        return self.root


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    folder = tmp_path_factory.mktemp("apply")
    root = small_northwind(folder / "p", orders=300, days=3)
    config_file = root / "lakestack.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config.pop("publish", None)  # no PostgreSQL target: this test is about the lake
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    for command in ("apply", "run"):
        done = cli(root, command)
        assert done.returncode == 0, done.stderr
    earlier = {r["run_id"] for r in _applied_rows(root)}
    v1 = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    v2 = v1.replace("version: 1", "version: 2", 1) + "  - {name: coupon_code, type: string, max_length: 20}\n"
    (root / "contracts" / "orders.v2.yaml").write_text(v2, encoding="utf-8")
    model = root / "models" / "gold" / "daily_order_metrics.sql"
    model.write_text(model.read_text(encoding="utf-8").replace("    max(usd_rate) AS usd_rate", RETURNED))
    (root / "models" / "gold" / "order_lines.sql").write_text(NEW_MODEL, encoding="utf-8")
    for path in (root / "models" / "gold").glob("dim_customers.*"):
        path.unlink()
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config["datasets"]["fx_rates"]["normalize"] = {"upper": ["base_currency", "quote_currency"]}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert {c["target"]: c["kind"] for c in _plan(root)} == PLAN
    shutil.copytree(root, folder / "saved")
    return Base(root, folder / "saved", earlier)


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
def reference(base: Base) -> tuple[dict[str, Any], Counter[Any], set[str]]:
    """The Silver and Gold tables, the records and the datasets checked by an uninterrupted apply of the plan."""
    root, earlier = base.restore(), base.earlier
    done = cli(root, "apply", "--allow-destructive", "--json")
    assert done.returncode == 0, done.stderr
    checked = _checked(root, json.loads(done.stdout)["run_id"])
    assert {"silver.orders", "gold.daily_order_metrics"} <= checked  # the evolution's gate, gate(gold)
    assert _plan(root) == []
    recorded = _changes_recorded(root, earlier)
    assert {o: k for o, k, _ in recorded} == {("schema:" + t if k == "evolve" else t): k for t, k in PLAN.items()}, (
        recorded
    )
    assert set(recorded.values()) == {1}
    return _tables(root), recorded, checked


def _checked(root: Path, run_id: str) -> set[str]:
    return {r["dataset"] for r in Lake.open(root).check_results(run_id)}


@pytest.mark.parametrize(("point", "action"), POINTS, ids=[f"{p}={a}" for p, a in POINTS])
def test_apply_killed_at_a_commit_step_then_run_again_converges(
    base: Base, reference: tuple[dict[str, Any], Counter[Any], set[str]], tmp_path: Path, point: str, action: str
) -> None:
    tables, recorded, checked = reference
    root, earlier = base.restore(), base.earlier
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
    rerun = json.loads(again.stdout)
    if point == "apply.record.after_commit":  # everything was recorded: nothing left to do
        assert rerun["noop"] is True
    else:
        assert _checked(root, rerun["run_id"]) == checked
    assert _plan(root) == []
    assert not Lake.open(root).warehouse.exists("gold.dim_customers")
    assert _changes_recorded(root, earlier) == recorded  # each change once, none lost
    assert _tables(root) == tables

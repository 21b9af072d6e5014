"""`lakestack backfill` on a small Northwind built in two runs with late data: --all equals the
incremental build, a range rewrites only its partitions, and bad input exits 2."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_support import cli, lake_contents, small_northwind
from lakestack import Lake
from lakestack.errors import UsageError
from lakestack.pipeline.records import read_runs

DAY = "2026-01-02"


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_northwind(tmp_path_factory.mktemp("stage") / "northwind", orders=600, days=4)


def _land(staged: Path, root: Path, until: str) -> None:
    for path in (staged / "landing").rglob("*"):
        m = re.search(r"(\d{8})", path.name)
        if path.is_file() and (m is None or m.group(1) <= until):
            target = root / path.relative_to(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(path, target)


def _built_in_two_runs(staged: Path, root: Path) -> Path:
    """The first two days, run; then the rest (late orders for the first days among them), run."""
    shutil.copytree(staged, root, ignore=shutil.ignore_patterns("landing"))
    _land(staged, root, "20260102")
    lake = Lake.open(root)
    lake.run()
    _land(staged, root, "99999999")
    lake.run()
    return root


def _files_by_day(lake: Lake, table: str) -> dict[str, set[str]]:
    from datetime import date, timedelta

    out: dict[str, set[str]] = {}
    for task in lake.warehouse.load(table).scan().plan_files():
        value = task.file.partition[0]  # days since 1970-01-01 (or a date)
        day = value if isinstance(value, date) else date(1970, 1, 1) + timedelta(days=int(value))
        out.setdefault(day.isoformat(), set()).add(task.file.file_path)
    return out


def test_backfill_all_equals_the_incremental_build(staged: Path, tmp_path: Path) -> None:
    root = _built_in_two_runs(staged, tmp_path / "northwind")
    incremental = lake_contents(root)
    lake = Lake.open(root)
    before = {d: lake.warehouse.load(f"silver.{d}").current_snapshot().snapshot_id for d in lake.silver_datasets()}
    for dataset in lake.silver_datasets():
        result = lake.backfill(dataset)
        assert result.changed and result.snapshot_id != before[dataset], dataset
    done = cli(root, "backfill", "orders", "--all", "--downstream", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {b["dataset"]: b["mode"] for b in report["built"]} == {
        "gold.fact_sales": "full",
        "gold.daily_order_metrics": "full",
        "gold.dim_customers": "full",
    }
    assert lake_contents(root) == incremental  # row for row, every table
    jobs = [r["job"] for r in read_runs(lake.warehouse) if r["job_type"] == "backfill"]
    assert sorted(jobs) == sorted([f"backfill.{d}" for d in lake.silver_datasets()] + ["backfill.orders"])
    assert not lake.promote()[0].changed  # Silver's checkpoint was carried: nothing new to promote


def test_a_range_rewrites_only_its_partitions_with_the_current_code(staged: Path, tmp_path: Path) -> None:
    root = _built_in_two_runs(staged, tmp_path / "northwind")
    lake = Lake.open(root)
    files_before = _files_by_day(lake, "silver.orders")
    assert len(files_before) > 2
    config_file = root / "lakestack.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config["datasets"]["orders"]["normalize"] = {"upper": ["currency"], "lower": ["ship_country"]}  # the "fix"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    done = cli(root, "backfill", "orders", "--from", DAY, "--to", DAY, "--downstream", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["partitions"], report["start"], report["end"]) == (1, DAY, DAY)
    assert report["rows_removed"] == report["rows_written"] > 0
    built = {b["dataset"]: b for b in report["built"]}
    assert built["gold.fact_sales"]["mode"] == "incremental" and built["gold.fact_sales"]["partitions"] == 1

    lake = Lake.open(root)
    files_after = _files_by_day(lake, "silver.orders")
    assert files_after.keys() == files_before.keys()
    for day, paths in files_before.items():
        assert (files_after[day] == paths) == (day != DAY), day  # only the range was rewritten
    rows = lake.query(
        "SELECT CAST(order_ts AS DATE) = DATE '2026-01-02' AS inside, "
        "count_if(ship_country <> lower(ship_country)) AS upper, count(*) AS n FROM silver.orders GROUP BY ALL"
    ).to_pylist()
    by_side = {r["inside"]: r for r in rows}
    assert by_side[True]["upper"] == 0 and by_side[True]["n"] > 0  # re-derived with the fix
    assert by_side[False]["upper"] > 0  # outside the range: as it was

    # A change the Silver gate refuses (channel's accepted values are lower case): exit 4, no Gold.
    config["datasets"]["orders"]["normalize"]["upper"].append("channel")
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    gold = lake.warehouse.load("gold.fact_sales").current_snapshot().snapshot_id
    blocked = cli(root, "backfill", "orders", "--from", DAY, "--to", DAY, "--downstream")
    assert blocked.returncode == 4, blocked.stderr
    assert "quality gate failed: blocked silver.orders" in blocked.stdout
    assert lake.warehouse.load("gold.fact_sales").current_snapshot().snapshot_id == gold
    record = next(r for r in read_runs(lake.warehouse) if r["job"] == "backfill" and r["parent_run_id"] is None)
    assert record["status"] == "BLOCKED"


def test_a_range_outside_the_data_rewrites_nothing_and_says_so(staged: Path, tmp_path: Path) -> None:
    root = _built_in_two_runs(staged, tmp_path / "northwind")
    before = lake_contents(root)
    lake = Lake.open(root)
    snapshot = lake.warehouse.load("silver.orders").current_snapshot().snapshot_id
    done = cli(root, "backfill", "orders", "--from", "2031-01-01", "--to", "2031-12-31", "--downstream")
    assert done.returncode == 0, done.stderr
    assert "no Bronze rows and no Silver partitions in 2031-01-01 to 2031-12-31: nothing rewritten" in done.stdout
    assert lake.warehouse.load("silver.orders").current_snapshot().snapshot_id == snapshot
    assert lake_contents(root) == before
    # An unpartitioned dimension: rows outside the range are kept in the one rewritten file set.
    customers = lake.backfill("customers", None, None)
    assert customers.changed
    ranged = lake.backfill("silver.customers", _date("2025-06-01"), None)
    assert ranged.partitions == 1 and ranged.rows_written == ranged.rows_removed
    assert lake_contents(root) == before

    for args, message in (
        (["nope", "--all"], "unknown silver dataset 'nope' (silver datasets: orders, customers"),
        (["gold.fact_sales", "--all"], "unknown silver dataset 'gold.fact_sales'"),
        (["orders"], "give a range with --from DATE --to DATE, or --all"),
        (["orders", "--all", "--from", DAY], "give --from/--to or --all, not both"),
        (["orders", "--from", "2026-01-03", "--to", DAY], "--from 2026-01-03 is after --to 2026-01-02"),
        (["orders", "--from", "Jan 2"], "--from 'Jan 2' is not a date (YYYY-MM-DD)"),
    ):
        bad = cli(root, "backfill", *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert message in bad.stderr, (args, bad.stderr)


def _date(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)


def test_a_dataset_never_promoted_is_refused(staged: Path, tmp_path: Path) -> None:
    root = tmp_path / "northwind"
    shutil.copytree(staged, root)
    lake = Lake.open(root)
    lake.ingest(["orders"])
    with pytest.raises(UsageError, match=r"silver\.orders does not exist yet: run 'lakestack promote orders' first"):
        lake.backfill("orders")

"""Time travel and rollback on a small Northwind with late data: `query --as-of`, `history`, and
`rollback` of Silver and Gold followed by the next promote / build."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lake_support import RUN_COLUMNS, cli, lake_contents, small_northwind
from lakestack import Lake
from lakestack.errors import UsageError
from lakestack.pipeline.records import read_runs

FIRST_DAY = "20260102"  # the first run sees files up to this day; the second one the rest (with late orders)
GOLD = ("gold.fact_sales", "gold.daily_order_metrics", "gold.dim_customers")


@dataclass(frozen=True)
class TwoRuns:
    """A project after two runs: what the first left, and when."""

    root: Path
    first_run: str
    second_run: str
    after_first: datetime  # a moment between the two runs
    first: dict[str, int]  # table → its snapshot id after the first run
    first_rows: dict[str, str]  # table → content digest after the first run


def _digest(rows: list[dict[str, Any]]) -> str:
    import hashlib

    lines = sorted(repr(sorted((k, str(v)) for k, v in r.items() if k not in RUN_COLUMNS)) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _content(lake: Lake, table: str, as_of: Any = None) -> str:
    return _digest(lake.query(f"SELECT * FROM {table}", as_of=as_of).to_pylist())


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Landing files generated once (orders delivered late carry earlier order dates)."""
    return small_northwind(tmp_path_factory.mktemp("stage") / "northwind", orders=600, days=4)


def _two_runs(staged: Path, root: Path) -> TwoRuns:
    shutil.copytree(staged, root, ignore=shutil.ignore_patterns("landing"))
    _land(staged, root, FIRST_DAY)
    lake = Lake.open(root)
    first = lake.run()
    tables = ["silver.orders", "silver.products", *GOLD]
    snapshots = {t: lake.warehouse.load(t).current_snapshot().snapshot_id for t in tables}
    contents = {t: _content(lake, t) for t in tables}
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    _land(staged, root, "99999999")
    second = lake.run()
    return TwoRuns(root, first.run_id, second.run_id, between, snapshots, contents)


def _land(staged: Path, root: Path, until: str) -> None:
    for path in (staged / "landing").rglob("*"):
        m = re.search(r"(\d{8})", path.name)
        if path.is_file() and (m is None or m.group(1) <= until):
            target = root / path.relative_to(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(path, target)


@pytest.fixture(scope="module")
def lake_after_two_runs(staged: Path, tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    """Shared by the tests that only read."""
    return _two_runs(staged, tmp_path_factory.mktemp("shared") / "northwind")


def test_the_second_run_changed_old_dates(lake_after_two_runs: TwoRuns) -> None:
    """The premise: late order lines changed Silver and Gold of days the first run had built."""
    lake = Lake.open(lake_after_two_runs.root)
    late = lake.query(
        "SELECT count(*) AS n FROM silver.orders WHERE CAST(order_ts AS DATE) <= DATE '2026-01-02' "
        "AND _source_file > 'orders_20260102.csv' AND _source_file LIKE 'orders_%'"
    ).to_pylist()[0]["n"]
    assert late > 0
    for table in ("silver.orders", *GOLD[:2]):
        assert _content(lake, table) != lake_after_two_runs.first_rows[table], table


def test_query_as_of_a_time_or_a_snapshot_reads_the_old_content(lake_after_two_runs: TwoRuns) -> None:
    runs = lake_after_two_runs
    lake = Lake.open(runs.root)
    for table, digest in runs.first_rows.items():
        assert _content(lake, table, as_of=runs.after_first) == digest, table
        assert _content(lake, table, as_of=runs.first[table]) == digest, table  # a bare snapshot id
        assert _content(lake, table, as_of=f"{table}={runs.first[table]}") == digest, table
    # A bare snapshot id pins its table; the others are read as of its commit.
    joined = "SELECT count(*) AS n FROM silver.orders JOIN gold.fact_sales USING (order_id)"
    at_first = lake.query(joined, as_of=runs.first["gold.fact_sales"]).to_pylist()
    assert at_first == lake.query(joined, as_of=runs.after_first).to_pylist()
    assert at_first != lake.query(joined).to_pylist()
    # Per table: silver.orders at its first snapshot, gold.fact_sales as it is now.
    mixed = lake.query(
        "SELECT (SELECT count(*) FROM silver.orders) AS s, (SELECT count(*) FROM gold.fact_sales) AS g",
        as_of=[f"silver.orders={runs.first['silver.orders']}"],
    ).to_pylist()[0]
    now = lake.query("SELECT (SELECT count(*) FROM gold.fact_sales) AS g").to_pylist()[0]
    old = lake.query("SELECT count(*) AS s FROM silver.orders", as_of=runs.after_first).to_pylist()[0]
    assert (mixed["s"], mixed["g"]) == (old["s"], now["g"])


def test_cli_query_as_of(lake_after_two_runs: TwoRuns) -> None:
    from lakestack.cli.render import to_jsonable

    runs = lake_after_two_runs
    sql = "SELECT * FROM silver.orders"

    def as_json(rows: list[dict[str, Any]]) -> str:
        return _digest(json.loads(json.dumps(to_jsonable(rows), default=str)))

    old = as_json(Lake.open(runs.root).query(sql, as_of=runs.after_first).to_pylist())
    for as_of in (runs.after_first.isoformat(), str(runs.first["silver.orders"])):
        done = cli(runs.root, "query", "--as-of", as_of, "--json", "--max-rows", "0", sql)
        assert done.returncode == 0, done.stderr
        assert _digest(json.loads(done.stdout)["rows"]) == old
    now = cli(runs.root, "query", "--json", "--max-rows", "0", sql)
    assert _digest(json.loads(now.stdout)["rows"]) != old


def test_bad_as_of_values_exit_2_with_the_reason(lake_after_two_runs: TwoRuns) -> None:
    runs = lake_after_two_runs
    lake = Lake.open(runs.root)
    oldest = lake.history("silver.orders")[-1]
    with pytest.raises(UsageError, match=r"silver\.orders has no snapshot that old; its oldest snapshot is from 20"):
        lake.query("SELECT count(*) FROM silver.orders", as_of="2020-01-01")
    before = cli(runs.root, "query", "--as-of", "2020-01-01T00:00:00Z", "SELECT count(*) FROM silver.orders")
    assert before.returncode == 2
    assert "silver.orders has no snapshot that old" in before.stderr
    assert oldest.committed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z") in before.stderr

    wrong = cli(runs.root, "query", "--as-of", "silver.orders=12345", "SELECT count(*) FROM silver.orders")
    assert wrong.returncode == 2
    assert "12345 is not a snapshot of silver.orders" in wrong.stderr
    assert str(runs.first["silver.orders"]) in wrong.stderr  # the newest ones are listed
    other = cli(runs.root, "query", "--as-of", str(runs.first["gold.fact_sales"]), "SELECT 1 FROM silver.orders")
    assert other.returncode == 2
    assert "is not a snapshot of silver.orders" in other.stderr  # a snapshot of a table the query does not read

    for value, message in (
        ("yesterday-ish", "expected a time"),
        ("gold.nope=1", "the query does not read gold.nope"),
        ("silver orders=1", "is not a table name"),
    ):
        done = cli(runs.root, "query", "--as-of", value, "SELECT count(*) FROM silver.orders")
        assert done.returncode == 2, value
        assert message in done.stderr, (value, done.stderr)
        assert "Traceback" not in done.stderr


def test_history_lists_what_the_runs_made(lake_after_two_runs: TwoRuns) -> None:
    runs = lake_after_two_runs
    lake = Lake.open(runs.root)
    entries = lake.history("silver.orders")
    assert [e.run_id for e in entries] == [runs.second_run, runs.first_run]
    assert [e.job for e in entries] == ["promote.orders", "promote.orders"]
    assert [e.current for e in entries] == [True, False]
    assert entries[0].parent_id == entries[1].snapshot_id == runs.first["silver.orders"]
    assert entries[0].total_rows == lake.query("SELECT count(*) AS n FROM silver.orders").to_pylist()[0]["n"]
    assert entries[1].operation == "append" and entries[0].operation == "overwrite"
    assert entries[0].deleted_rows == entries[1].total_rows  # the MERGE rewrote the touched partitions
    bronze = lake.history("bronze.orders")
    assert {e.job for e in bronze} == {"ingest.orders"}
    assert sum(e.added_rows or 0 for e in bronze) == bronze[0].total_rows

    shown = cli(runs.root, "history", "gold.fact_sales", "--json")
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)["snapshots"]
    assert [s["job"] for s in listed] == ["build.fact_sales"] * 2
    assert listed[1]["snapshot_id"] == runs.first["gold.fact_sales"]
    one = cli(runs.root, "history", "gold.fact_sales", "--limit", "1")
    assert one.returncode == 0, one.stderr
    assert one.stdout.count("build.fact_sales") == 1 and str(listed[0]["snapshot_id"]) in one.stdout
    missing = cli(runs.root, "history", "silver.nope")
    assert missing.returncode == 2 and "table silver.nope does not exist" in missing.stderr


def test_bronze_and_quarantine_are_never_rolled_back(lake_after_two_runs: TwoRuns) -> None:
    runs = lake_after_two_runs
    lake = Lake.open(runs.root)
    for table in ("bronze.orders", "quarantine.orders"):
        first = lake.history(table)[-1].snapshot_id
        done = cli(runs.root, "rollback", table, "--to", str(first), "--yes")
        assert done.returncode == 2, done.stderr
        assert "immutable" in done.stderr and "reprocess forward instead" in done.stderr
        assert lake.history(table)[0].current  # unchanged
    bronze = cli(runs.root, "rollback", "bronze.orders", "--to", "1", "--yes")
    assert "bronze.orders: Bronze is immutable; reprocess forward instead" in bronze.stderr
    unknown = cli(runs.root, "rollback", "silver.orders", "--to", "12345", "--yes")
    assert unknown.returncode == 2
    assert "12345 is not a snapshot of silver.orders" in unknown.stderr
    assert str(runs.first["silver.orders"]) in unknown.stderr
    asked = cli(runs.root, "rollback", "silver.orders", "--to", str(runs.first["silver.orders"]))
    assert asked.returncode == 2 and "pass --yes" in asked.stderr  # no terminal to confirm on
    assert not any(r["job_type"] == "rollback" for r in read_runs(lake.warehouse))  # refused: nothing recorded


def test_rollback_silver_then_promote_equals_the_straight_promotion(staged: Path, tmp_path: Path) -> None:
    runs = _two_runs(staged, tmp_path / "northwind")
    straight = lake_contents(runs.root)
    lake = Lake.open(runs.root)
    target = runs.first["silver.orders"]
    rolled_back_from = lake.history("silver.orders")[0].snapshot_id

    done = cli(runs.root, "rollback", "silver.orders", "--to", str(target), "--yes", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["from_snapshot"], result["to_snapshot"], result["changed"]) == (rolled_back_from, target, True)
    assert "gold.fact_sales" in result["downstream"]
    assert _content(lake, "silver.orders") == runs.first_rows["silver.orders"]
    entries = {e.snapshot_id: e for e in lake.history("silver.orders")}
    assert entries[target].current and not entries[rolled_back_from].in_lineage
    # Time travel still reads the snapshot the rollback left.
    assert _content(lake, "silver.orders", as_of=rolled_back_from) != runs.first_rows["silver.orders"]

    # The rollback is a run with a rollback job, in the run records.
    records = read_runs(lake.warehouse)
    job = next(r for r in records if r["job_type"] == "rollback")
    assert job["job"] == "rollback.silver.orders" and job["status"] == "COMPLETE"
    assert job["lake_run_id"] == result["run_id"]
    io = {(d["role"], d["snapshot_id"]) for d in job["datasets"] if d["name"] == "silver.orders"}
    assert io == {("input", rolled_back_from), ("output", target)}
    listed = cli(runs.root, "runs", "--json", "--limit", "1")
    assert json.loads(listed.stdout)[0]["job"] == "rollback"
    again = cli(runs.root, "rollback", "silver.orders", "--to", str(target), "--yes")
    assert again.returncode == 0 and "already is at snapshot" in again.stdout

    promoted = lake.promote(["orders"])
    assert promoted[0].changed  # what the rolled-back snapshot had merged is promoted again
    lake.build()
    assert lake_contents(runs.root) == straight


def test_rollback_gold_then_build_rebuilds_it(staged: Path, tmp_path: Path) -> None:
    runs = _two_runs(staged, tmp_path / "northwind")
    straight = lake_contents(runs.root)
    lake = Lake.open(runs.root)
    for table in ("gold.daily_order_metrics", "gold.fact_sales"):
        result = lake.rollback(table, runs.first[table])
        assert result.changed and result.to_snapshot == runs.first[table]
        assert _content(lake, table) == runs.first_rows[table]
    assert lake_contents(runs.root) != straight
    built = {b.dataset: b for b in lake.build()}
    assert built["gold.fact_sales"].mode == "incremental"
    assert lake_contents(runs.root) == straight
    assert [r["job"] for r in read_runs(lake.warehouse) if r["job_type"] == "rollback"] == [
        "rollback.gold.fact_sales",
        "rollback.gold.daily_order_metrics",
    ]

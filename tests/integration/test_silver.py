"""Silver promotion on real Iceberg tables: dedup, latest wins, late data, idempotence, moved keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lakestack import Lake

CONTRACT = """\
source: payments
version: 1
key: [payment_id]
event_time: paid_at
file: {pattern: "payments_{date:%Y%m%d}*.csv", format: csv}
columns:
  - {name: payment_id, type: string, nullable: false}
  - {name: paid_at, type: timestamp, nullable: false}
  - {name: version, type: integer, nullable: false}
  - {name: amount, type: "decimal(10,2)", nullable: false}
  - {name: currency, type: string}
  - {name: email, type: string, pii: email}
"""
PROJECT = """\
name: pay
sources:
  payments: {contract: payments}
datasets:
  payments:
    layer: silver
    order_by: [version]
    normalize: {upper: [currency]}
"""
HEADER = "payment_id,paid_at,version,amount,currency,email\n"


@pytest.fixture
def pay(tmp_path: Path) -> Path:
    root = tmp_path / "pay"
    (root / "contracts").mkdir(parents=True)
    (root / "landing" / "payments").mkdir(parents=True)
    (root / "lakestack.yaml").write_text(PROJECT)
    (root / "contracts" / "payments.v1.yaml").write_text(CONTRACT)
    return root


def drop(root: Path, name: str, rows: list[str]) -> None:
    (root / "landing" / "payments" / name).write_text(HEADER + "".join(r + "\n" for r in rows))


def silver(lake: Lake) -> dict[str, dict[str, Any]]:
    rows = lake.read("silver.payments").to_pylist()
    keys = [r["payment_id"] for r in rows]
    assert len(keys) == len(set(keys)), "one row per key"
    return {r["payment_id"]: r for r in rows}


def files(lake: Lake) -> set[str]:
    return {t.file.file_path for t in lake.warehouse.load("silver.payments").scan().plan_files()}


def test_duplicates_and_redeliveries_collapse_latest_wins(pay: Path) -> None:
    drop(
        pay,
        "payments_20260101.csv",
        [
            "P1,2026-01-01T10:00:00Z,1,10.00,usd,  Ada@Example.COM ",
            "P1,2026-01-01T10:00:00Z,1,10.00,usd,  Ada@Example.COM ",  # exact duplicate
            "P1,2026-01-01T10:00:00Z,3,12.00,usd,ada@example.com",  # newest version
            "P1,2026-01-01T10:00:00Z,2,11.00,usd,ada@example.com",  # arrives after it, but older
            "P2,2026-01-02T09:00:00Z,1,5.00,eur,",
        ],
    )
    lake = Lake.open(pay)
    lake.ingest()
    [result] = lake.promote()
    assert (result.bronze_rows, result.inserted, result.updated) == (2, 2, 0)
    rows = silver(lake)
    assert rows["P1"]["version"] == 3 and str(rows["P1"]["amount"]) == "12.00"
    assert rows["P1"]["currency"] == "USD" and rows["P2"]["currency"] == "EUR"
    assert rows["P1"]["_source_line"] == 4  # lineage of the winning version


def test_ties_go_to_the_later_ingestion_then_the_later_line(pay: Path) -> None:
    drop(pay, "payments_20260101_a.csv", ["P1,2026-01-01T10:00:00Z,1,1.00,USD,", "P1,2026-01-01T10:00:00Z,1,2.00,USD,"])
    lake = Lake.open(pay)
    lake.ingest()
    lake.promote()
    assert str(silver(lake)["P1"]["amount"]) == "2.00"  # same version, same file: the later line wins
    drop(pay, "payments_20260101_b.csv", ["P1,2026-01-01T10:00:00Z,1,3.00,USD,"])
    lake.ingest()
    [result] = lake.promote()
    assert result.updated == 1
    assert str(silver(lake)["P1"]["amount"]) == "3.00"  # same version, ingested later: it wins
    drop(pay, "payments_20260101_c.csv", ["P1,2026-01-01T10:00:00Z,0,9.00,USD,"])
    lake.ingest()
    [result] = lake.promote()
    assert (result.inserted, result.updated) == (0, 0)  # an older version arriving late changes nothing
    assert str(silver(lake)["P1"]["amount"]) == "3.00"


def test_late_data_rewrites_only_its_partition(pay: Path) -> None:
    drop(pay, "payments_20260101.csv", [f"P{d},2026-01-0{d}T10:00:00Z,1,1.00,USD," for d in range(1, 6)])
    lake = Lake.open(pay)
    lake.ingest()
    lake.promote()
    before = files(lake)
    assert len(before) == 5  # one file per day partition
    drop(pay, "payments_20260109.csv", ["P2,2026-01-02T10:00:00Z,2,7.00,USD,", "P9,2026-01-02T11:00:00Z,1,1.00,USD,"])
    lake.ingest()
    [result] = lake.promote()
    assert (result.partitions, result.files_removed, result.inserted, result.updated) == (1, 1, 1, 1)
    after = files(lake)
    assert len(before & after) == 4  # the other four days' files are untouched
    rows = silver(lake)
    assert len(rows) == 6 and rows["P2"]["version"] == 2
    day2 = lake.warehouse.load("silver.payments").scan(
        row_filter="paid_at >= '2026-01-02T00:00:00+00:00' and paid_at < '2026-01-03T00:00:00+00:00'"
    )
    assert sorted(day2.to_arrow()["payment_id"].to_pylist()) == ["P2", "P9"]  # partition values are right
    assert len(list(day2.plan_files())) == 1  # and prune to the one file of that day


def test_rerun_with_nothing_new_makes_no_snapshot(pay: Path) -> None:
    drop(pay, "payments_20260101.csv", ["P1,2026-01-01T10:00:00Z,1,1.00,USD,"])
    lake = Lake.open(pay)
    lake.ingest()
    lake.promote()
    snapshots = len(lake.warehouse.load("silver.payments").metadata.snapshots)
    [again] = lake.promote()
    assert not again.changed
    assert len(lake.warehouse.load("silver.payments").metadata.snapshots) == snapshots


def test_the_same_bronze_gives_the_same_silver(pay: Path) -> None:
    drop(
        pay,
        "payments_20260101.csv",
        [f"P{i % 7},2026-01-0{1 + i % 3}T10:00:00Z,{i},{i}.00,usd,x{i}@y.io" for i in range(30)],
    )
    lake = Lake.open(pay)
    lake.ingest()
    lake.promote()
    first = silver(lake)
    lake.warehouse.catalog.drop_table("silver.payments")
    lake.promote()
    second = silver(lake)
    strip = lambda rows: {k: {c: v for c, v in r.items() if c != "_run_id"} for k, r in rows.items()}  # noqa: E731
    assert strip(first) == strip(second)


def test_a_key_whose_event_time_moves_keeps_one_row(pay: Path) -> None:
    drop(pay, "payments_20260101.csv", ["P1,2026-01-01T10:00:00Z,1,1.00,USD,"])
    lake = Lake.open(pay)
    lake.ingest()
    lake.promote()
    drop(pay, "payments_20260105.csv", ["P1,2026-01-05T10:00:00Z,2,1.00,USD,"])
    lake.ingest()
    [result] = lake.promote()
    assert result.updated == 1 and result.partitions == 2
    rows = silver(lake)
    assert rows["P1"]["paid_at"].day == 5


def test_a_concurrent_writer_is_detected_and_the_merge_retried(pay: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer commits between our read and our commit: ours fails, re-reads, and keeps both."""
    import pyarrow as pa

    import lakestack.storage.warehouse as warehouse
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    drop(pay, "payments_20260101.csv", ["P1,2026-01-01T10:00:00Z,1,1.00,USD,", "P2,2026-01-01T11:00:00Z,1,1.00,USD,"])
    lake = Lake.open(pay)
    lake.ingest()
    lake.promote()
    drop(pay, "payments_20260102.csv", ["P1,2026-01-01T10:00:00Z,2,2.00,USD,", "P3,2026-01-01T12:00:00Z,1,3.00,USD,"])
    lake.ingest()

    model = model_from_config("payments", lake.project)
    rival_rows = pa.table(
        {
            "payment_id": ["P2", "P4"],
            "paid_at": pa.array([datetime(2026, 1, 1, 11, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
            "version": [5, 1],
            "amount": pa.array([Decimal("5.00"), Decimal("4.00")], pa.decimal128(10, 2)),
            "currency": ["USD", "USD"],
            "email": [None, None],
            "_ingested_at": pa.array([datetime.now(UTC)] * 2, pa.timestamp("us", tz="UTC")),
            "_source_file": ["rival", "rival"],
            "_source_line": [1, 2],
        }
    )
    real = warehouse.replace_files
    calls = {"n": 0}

    def commit_after_a_rival(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # our first attempt: let a rival writer commit first
            monkeypatch.setattr(warehouse, "replace_files", real)
            SilverPromotion(model, lake.warehouse, "rival").merge_arrow(rival_rows, "rival")
            monkeypatch.setattr(warehouse, "replace_files", commit_after_a_rival)
        return real(*args, **kwargs)

    monkeypatch.setattr(warehouse, "replace_files", commit_after_a_rival)
    [result] = lake.promote()
    assert calls["n"] == 2  # the first commit conflicted; the second, after a fresh read, landed
    rows = silver(lake)
    assert {k: r["version"] for k, r in rows.items()} == {"P1": 2, "P2": 5, "P3": 1, "P4": 1}
    assert result.updated == 1 and result.inserted == 1


def test_promotions_racing_without_the_lock_merge_once(pay: Path) -> None:
    """Two processes promote the same Bronze snapshots at once, bypassing the project lock (as
    writers on a catalog the lock does not cover would): both compute the merge, the second
    commit finds Silver changed under it (pyiceberg's blind retry is off) and its batch id
    already there, so the rows are merged once."""
    import json
    import os
    import subprocess
    import sys

    from lakestack.pipeline.silver import model_from_config
    from lakestack.storage.warehouse import history

    drop(pay, "payments_20260101.csv", [f"P{i},2026-01-01 10:00:00,1,{i}.00,usd," for i in range(50)])
    drop(pay, "payments_20260102.csv", [f"P{i},2026-01-01 10:00:00,2,{i}.50,eur," for i in range(0, 50, 2)])
    assert Lake.open(pay).ingest().landed == 75
    script = (
        "import json, sys\n"
        "from lakestack import Lake\n"
        "from lakestack.pipeline.runs import new_run_id\n"
        "from lakestack.pipeline.silver import SilverPromotion, model_from_config\n"
        "lake = Lake.open(sys.argv[1])\n"
        "r = SilverPromotion(model_from_config('payments', lake.project), lake.warehouse, new_run_id()).run()\n"
        "print(json.dumps([r.inserted, r.snapshot_id]))\n"
    )
    lake = Lake.open(pay)
    lake.warehouse.silver_table(model_from_config("payments", lake.project))  # created once, before the race
    env = {**os.environ, "LAKESTACK_FAILPOINTS": "silver.before_commit=1*sleep(2500)"}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(pay)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]

    lake = Lake.open(pay)
    rows = silver(lake)
    assert len(rows) == 50
    assert {k: r["version"] for k, r in rows.items()} == {f"P{i}": 2 if i % 2 == 0 else 1 for i in range(50)}
    merges = [c for c in history(lake.warehouse.load("silver.payments")) if c.run_id]
    assert len(merges) == 1  # one MERGE snapshot; the loser found its batch id there
    assert results[0][1] == results[1][1] == merges[0].snapshot_id


def test_merged_files_are_iceberg_data_files_other_readers_read(pay: Path) -> None:
    """DuckDB writes the merged partitions (ADR 42): each file sits in its day's folder, carries the
    table's field ids, and its manifest entry has the footer's row count and bounds; nothing of the
    staging folder is left; pyiceberg and DuckDB read the same rows."""
    import pyarrow.parquet as pq
    from pyiceberg.conversions import from_bytes

    drop(pay, "payments_20260101.csv", [f"P{d},2026-01-0{d}T1{d}:00:00Z,1,{d}.00,usd," for d in range(1, 4)])
    lake = Lake.open(pay)
    lake.ingest()
    lake.promote()
    drop(pay, "payments_20260109.csv", ["P2,2026-01-02T10:30:00Z,2,7.50,eur,", "P9,2026-01-03T23:59:00Z,1,1.00,USD,"])
    lake.ingest()
    [result] = lake.promote()
    assert (result.inserted, result.updated, result.partitions) == (1, 1, 2)
    table = lake.warehouse.load("silver.payments")
    ids = {f.name: f.field_id for f in table.schema().fields}
    paid_at = ids["paid_at"]
    tasks = list(table.scan().plan_files())
    assert len(tasks) == 3
    for task in tasks:
        f = task.file
        path = f.file_path.removeprefix("file://")
        day = date(1970, 1, 1) + timedelta(days=f.partition[0])
        assert Path(path).parent.name == f"paid_at_day={day.isoformat()}"
        footer = pq.read_metadata(path)
        assert "DuckDB" in footer.created_by  # not the Arrow path
        arrow = footer.schema.to_arrow_schema()
        assert {n: int(arrow.field(n).metadata[b"PARQUET:field_id"]) for n in arrow.names} == ids
        assert f.record_count == footer.num_rows
        low = from_bytes(table.schema().find_type(paid_at), f.lower_bounds[paid_at])
        high = from_bytes(table.schema().find_type(paid_at), f.upper_bounds[paid_at])
        stamps = pq.read_table(path, columns=["paid_at"])["paid_at"].to_pylist()
        assert (low, high) == (
            int(min(stamps).timestamp() * 1_000_000),
            int(max(stamps).timestamp() * 1_000_000),
        )
        assert all(s.date() == day for s in stamps)
    data = Path(tasks[0].file.file_path.removeprefix("file://")).parent.parent
    assert not [p for p in data.iterdir() if p.name.startswith("_staged-")]
    by_pyiceberg = sorted(table.scan().to_arrow().select(["payment_id", "version", "amount"]).to_pylist(), key=str)
    by_duckdb = lake.query("select payment_id, version, amount from silver.payments").to_pylist()
    assert by_pyiceberg == sorted(by_duckdb, key=str)
    assert {r["payment_id"]: (r["version"], r["amount"]) for r in by_duckdb} == {
        "P1": (1, Decimal("1.00")),
        "P2": (2, Decimal("7.50")),
        "P3": (1, Decimal("3.00")),
        "P9": (1, Decimal("1.00")),
    }

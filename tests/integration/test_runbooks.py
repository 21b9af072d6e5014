"""The runbooks of docs/runbooks/, run: each one's Northwind walk-through, then every step's
commands in order (tests/runbook_support.py), then what the runbook promises, checked in the lake."""

from __future__ import annotations

import re
from pathlib import Path

from lakestack import Lake
from runbook_support import run_runbook


def test_rerun_failed_ingestion(tmp_path: Path) -> None:
    done = run_runbook("rerun-failed-ingestion.md", tmp_path, min_blocks=4)
    assert "ingest failed: exit 3" in done.stdout
    assert "failpoint files.before_bronze_commit" in done.stdout  # runs / runs show name the error
    assert "orders: 3 file(s) waiting" in done.stdout

    with Lake.open(tmp_path / "nw") as lake:
        bronze = lake.warehouse.load("bronze.orders").scan().to_arrow()
        quarantine = lake.warehouse.load("quarantine.orders").scan().to_arrow()
    lines = list(zip(bronze["_source_file"].to_pylist(), bronze["_source_line"].to_pylist(), strict=True))
    assert len(lines) == len(set(lines)) > 200  # every landed record once
    keys = list(zip(quarantine["_source_file"].to_pylist(), quarantine["_source_line"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) > 0  # the failed run's quarantine commit was not repeated


def test_restore_silver(tmp_path: Path) -> None:
    done = run_runbook("restore-silver.md", tmp_path, min_blocks=4)
    assert "run: exit 4" in done.stdout  # the Silver gate blocked Gold on the lower-cased currencies
    assert done.stdout.endswith('"still_wrong"\n0\n')  # the last command: no lower-cased currency left
    assert "│ eur " in done.stdout  # --as-of read the snapshot before the backfill

    with Lake.open(tmp_path / "nw") as lake:
        silver = lake.warehouse.load("silver.orders").scan().to_arrow()
        facts = lake.warehouse.load("gold.fact_sales").scan().to_arrow()
        metrics = lake.warehouse.load("gold.daily_order_metrics").scan().to_arrow()
        snapshots = lake.warehouse.load("silver.orders").snapshots()
    for table in (silver, facts, metrics):
        currencies = set(table["currency"].to_pylist())
        assert currencies and currencies == {c.upper() for c in currencies}
    assert len(snapshots) == 2  # the promote that went wrong, the backfill: one commit each
    assert "backfill.orders" in done.stdout  # history names the job of the newest commit
    assert facts.num_rows == silver.num_rows > 200


def test_rollback_gold(tmp_path: Path) -> None:
    done = run_runbook("rollback-gold.md", tmp_path, min_blocks=4)
    counts = [int(n) for n in re.findall(r'"cancelled_as_revenue"\n(\d+)\n', done.stdout)]
    assert counts[0] > 0  # the bad build counted cancelled lines as revenue
    assert done.stdout.endswith('"cancelled_as_revenue"\n0\n')  # and is right again

    with Lake.open(tmp_path / "nw") as lake:
        facts = lake.warehouse.load("gold.fact_sales").scan().to_arrow().to_pylist()
        metrics = lake.warehouse.load("gold.daily_order_metrics").scan().to_arrow().to_pylist()
    assert not [f for f in facts if f["is_revenue"] and f["status"] in ("cancelled", "returned")]
    expected: dict[tuple[object, object], object] = {}
    for f in facts:  # daily revenue as the good model defines it, from the rolled-back facts
        key = (f["order_date"], f["currency"])
        expected[key] = expected.get(key, 0) + (f["amount"] if f["is_revenue"] else 0)
    assert {(m["order_date"], m["currency"]): m["revenue"] for m in metrics} == expected  # downstream rebuilt


def test_compact_streaming_table(tmp_path: Path) -> None:
    done = run_runbook("compact-streaming-table.md", tmp_path, min_blocks=3)
    counts = re.findall(r'"n","ids"\n(\d+),(\d+)\n', done.stdout)
    assert len(counts) == 2 and counts[0] == counts[1]  # the same rows before and after
    assert "dry run (nothing changed)" in done.stdout

    with Lake.open(tmp_path / "nw") as lake:
        table = lake.warehouse.load("bronze.clickstream")
        rows = table.scan().to_arrow()
        files = list(table.scan().plan_files())
        snapshots = table.snapshots()
    assert rows.num_rows == int(counts[0][0]) > 500
    assert len(set(rows["event_id"].to_pylist())) == rows.num_rows  # each event once
    assert len(files) < 5  # 50-odd stream commits' files compacted
    assert len(snapshots) <= 3  # the rest expired


def test_stream_checkpoint(tmp_path: Path) -> None:
    done = run_runbook("stream-checkpoint.md", tmp_path, min_blocks=4)
    assert "collector killed: exit 137" in done.stdout
    assert '"bronze_rows": 0' in done.stdout  # killed before its first commit: only the log held them
    assert '"received": 260' in done.stdout  # the restart committed the 26 acknowledged batches from the log
    n, ids = re.findall(r'"n","ids"\n(\d+),(\d+)\n', done.stdout)[-1]

    with Lake.open(tmp_path / "nw") as lake:
        bronze = lake.warehouse.load("bronze.clickstream").scan().to_arrow()
        quarantine = lake.warehouse.load("quarantine.clickstream").scan().to_arrow()
    sent = sum(1 for f in (tmp_path / "nw" / "landing" / "clickstream").glob("*.ndjson") for _ in f.open())
    assert int(n) == int(ids) == bronze.num_rows
    assert bronze.num_rows + quarantine.num_rows == sent  # every record sent, once, in Bronze or quarantine
    # the positions `lakestack checkpoints` shows are the ones Bronze's commits hold
    from lakestack.pipeline.checkpoint_view import checkpoint_views
    from lakestack.storage.checkpoints import StreamPositions, read_checkpoint

    with Lake.open(tmp_path / "nw") as lake:
        view, silver = checkpoint_views(lake, ["clickstream"])  # the source, and the dataset of that name
        assert (view["layer"], silver["layer"]) == ("source", "silver")
        held = read_checkpoint(lake.warehouse.load("bronze.clickstream"), StreamPositions)
    assert view["kind"] == "http" and view["positions"] == dict(held.positions) and held.positions

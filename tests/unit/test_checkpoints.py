"""Typed checkpoints on real Iceberg tables (SQLite catalog): round trips, the older format, the
compact checkpoint carried across foreign and maintenance commits, and snapshot expiry."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack.storage.checkpoints import (
    CHECKPOINT,
    STATE,
    BatchFile,
    FileBatch,
    FileLedger,
    HttpBatches,
    LedgerEntry,
    StreamBatch,
    StreamPositions,
    UpstreamSnapshots,
    carry_forward,
    encode,
    needed_snapshots,
    read_checkpoint,
    referenced_files,
)
from lakestack.storage.warehouse import Warehouse, append, replace_files

SCHEMA = pa.schema([pa.field("n", pa.int64(), nullable=False)])


@pytest.fixture
def table(tmp_path: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    (tmp_path / "wh").mkdir()
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path / 'wh'}")
    return Warehouse(catalog).system_table("_lakestack.events", SCHEMA)


def rows(*values: int) -> pa.Table:
    return pa.table({"n": pa.array(values, pa.int64())}, schema=SCHEMA)


def commit(table: Any, checkpoint: Any, run: str = "run-1", n: int = 1) -> Any:
    return append(table, rows(n), run_id=run, batch_id=f"{run}:{time.time_ns()}", checkpoint=checkpoint)


def expire_all_but_current(table: Any) -> Any:
    """pyiceberg's own expiry, keeping only the current snapshot."""
    current = table.current_snapshot().snapshot_id
    old = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id != current]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    table = table.refresh()
    assert [s.snapshot_id for s in table.metadata.snapshots] == [current]
    return table


def file_batch(*names: str) -> FileBatch:
    return FileBatch(tuple(BatchFile(n, f"sha-{n}", "landed", 1, 0) for n in names))


def test_every_kind_round_trips_through_commits(table: Any) -> None:
    table = commit(table, file_batch("a.csv", "b.csv"), run="r1")
    again = BatchFile("a-again.csv", "sha-a.csv", "landed", 1, 0)  # the same content: the first name stays
    table = commit(table, FileBatch((again, BatchFile("c.csv", "sha-c.csv", "rejected", 0, 3))), run="r2")
    until = int(time.time() * 1000) + 60_000
    batch = StreamBatch("kafka", {"t/0": 5, "t/1": 7}, epoch=2, http_batches=("k1", "k2"), http_until_ms=until)
    table = commit(table, batch)
    table = commit(table, StreamBatch("kafka", {"t/0": 9}, epoch=3))
    table = commit(table, UpstreamSnapshots({"bronze.orders": 41, "silver.x": None}, {"bronze.orders": 6}))

    ledger = read_checkpoint(table, FileLedger)
    assert dict(ledger.files) == {
        "sha-a.csv": LedgerEntry("a.csv", "r1"),
        "sha-b.csv": LedgerEntry("b.csv", "r1"),
        "sha-c.csv": LedgerEntry("c.csv", "r2"),
    }
    assert "sha-a.csv" in ledger and len(ledger) == 3
    assert read_checkpoint(table, StreamPositions) == StreamPositions({"t/0": 9, "t/1": 7}, "kafka", 3)
    assert read_checkpoint(table, UpstreamSnapshots) == UpstreamSnapshots(
        {"bronze.orders": 41, "silver.x": None}, {"bronze.orders": 6}
    )
    batches = read_checkpoint(table, HttpBatches)
    assert set(batches.batches) == {"k1", "k2"}
    assert read_checkpoint(table, HttpBatches, since_ms=time.time() * 1000 + 1).batches == {}


def test_the_per_commit_format_is_the_one_older_readers_know() -> None:
    assert encode(file_batch("a.csv")) == {
        "files": [{"name": "a.csv", "sha256": "sha-a.csv", "status": "landed", "landed": 1, "quarantined": 0}]
    }
    assert encode(StreamBatch("nats", {"EVENTS": 12}, epoch=4)) == {
        "stream": {"kind": "nats", "positions": {"EVENTS": "12"}, "epoch": 4}
    }
    assert encode(StreamBatch("http", {"wal": 3}, http_batches=("b1",), http_until_ms=9)) == {
        "stream": {"kind": "http", "positions": {"wal": "3"}},
        "http": {"batches": ["b1"], "until": 9},
    }
    # Silver's readers took the top-level key, Gold's "upstream": both stay
    assert encode(UpstreamSnapshots({"bronze.orders": 7})) == {"bronze.orders": 7, "upstream": {"bronze.orders": 7}}
    assert encode(UpstreamSnapshots({"silver.orders": 8})) == {"upstream": {"silver.orders": 8}}


def _old_props(run_id: str, batch_id: str, checkpoint: dict[str, Any] | None) -> dict[str, str]:
    """The summary properties lakestack wrote before the typed API (storage/warehouse.py `_props` at
    commit 106aaa5), kept verbatim: the format existing warehouses hold."""
    props = {"lakestack.run-id": run_id, "lakestack.batch-id": batch_id}
    if checkpoint is not None:
        props["lakestack.checkpoint"] = json.dumps(checkpoint, separators=(",", ":"), sort_keys=True)
    return props


def _old_commit(table: Any, run: str, checkpoint: dict[str, Any] | None) -> Any:
    with table.transaction() as tx:
        tx.append(rows(1), snapshot_properties=_old_props(run, f"{run}:b", checkpoint))
    return table.refresh()


OLD_FILE = {"name": "a.csv", "sha256": "sha-a", "status": "landed", "landed": 3, "quarantined": 1}


def _old_table(table: Any) -> Any:
    """A table as the code before the typed API wrote it: every kind, a quiet partition whose only
    position lives in the oldest commit, and a commit without a checkpoint on top."""
    table = _old_commit(table, "r1", {"files": [OLD_FILE]})
    table = _old_commit(table, "r2", {"stream": {"kind": "kafka", "positions": {"t/1": "4"}}})
    table = _old_commit(table, "r3", {"files": [{**OLD_FILE, "name": "b.csv", "sha256": "sha-b"}]})
    table = _old_commit(
        table, "r4", {"stream": {"kind": "kafka", "positions": {"t/0": "10"}, "epoch": 5}, "http": {"batches": ["k9"]}}
    )
    table = _old_commit(table, "r5", {"bronze.orders": 77})  # Silver's format
    return _old_commit(table, "r6", None)  # a run record or a check result: no checkpoint


def test_a_table_written_by_the_older_format_is_read_as_before(table: Any) -> None:
    table = _old_table(table)
    assert all(STATE not in s.summary.additional_properties for s in table.metadata.snapshots)
    assert dict(read_checkpoint(table, FileLedger).files) == {
        "sha-a": LedgerEntry("a.csv", "r1"),
        "sha-b": LedgerEntry("b.csv", "r3"),
    }
    assert read_checkpoint(table, StreamPositions) == StreamPositions({"t/0": 10, "t/1": 4}, "kafka", 5)
    assert read_checkpoint(table, UpstreamSnapshots) == UpstreamSnapshots({"bronze.orders": 77})
    assert set(read_checkpoint(table, HttpBatches).batches) == {"k9"}
    gold = _old_commit(table, "r7", {"upstream": {"silver.orders": 12, "gold.x": None}})  # Gold's format
    assert read_checkpoint(gold, UpstreamSnapshots).snapshots == {"silver.orders": 12, "gold.x": None}


def test_an_older_table_is_folded_by_its_next_commit_and_then_survives_expiry(table: Any) -> None:
    table = _old_table(table)
    checkpointed = {s.snapshot_id for s in table.metadata.snapshots if CHECKPOINT in s.summary.additional_properties}
    assert needed_snapshots(table) == checkpointed  # nothing compact yet: every checkpoint is needed
    table = commit(table, StreamBatch("kafka", {"t/0": 11}, epoch=5), run="new")
    state = json.loads(table.current_snapshot().summary.additional_properties[STATE])
    assert state["stream"]["positions"] == {"t/0": "11", "t/1": "4"}  # the quiet partition carried forward
    assert state["ledger"]["files"] == 2
    needed = needed_snapshots(table)
    assert needed == {s.snapshot_id for s in table.metadata.snapshots if '"k9"' in str(s.summary.additional_properties)}
    # a maintenance commit with carry_forward folds the remembered batch id too: nothing is needed any more
    with table.transaction() as tx:
        tx.append(rows(0).slice(0, 0), snapshot_properties=carry_forward(table))
    table = table.refresh()
    assert needed_snapshots(table) == set()
    table = expire_all_but_current(table)
    assert read_checkpoint(table, StreamPositions) == StreamPositions({"t/0": 11, "t/1": 4}, "kafka", 5)
    assert set(read_checkpoint(table, FileLedger).files) == {"sha-a", "sha-b"}
    assert read_checkpoint(table, UpstreamSnapshots) == UpstreamSnapshots({"bronze.orders": 77})
    assert set(read_checkpoint(table, HttpBatches).batches) == {"k9"}


def test_a_foreign_commit_on_top_is_stepped_over_and_keeps_its_base(table: Any) -> None:
    table = commit(table, StreamBatch("kinesis", {"shard-1": 100, "shard-2": 5}))
    table = commit(table, file_batch("a.csv"))
    base = table.current_snapshot().snapshot_id
    with table.transaction() as tx:  # another tool's overwrite: no lakestack property at all
        tx.overwrite(rows(7, 8))
    table = table.refresh()
    assert STATE not in table.current_snapshot().summary.additional_properties
    assert read_checkpoint(table, StreamPositions).positions == {"shard-1": 100, "shard-2": 5}
    assert set(read_checkpoint(table, FileLedger).files) == {"sha-a.csv"}
    assert needed_snapshots(table) == {base}  # expiring it would lose the state
    # our next commit (any: a run record, a Silver merge) carries the state forward again
    table = replace_files(table, [], rows(9), run_id="r", batch_id="r")
    assert needed_snapshots(table) == set()
    table = expire_all_but_current(table)
    assert read_checkpoint(table, StreamPositions).positions == {"shard-1": 100, "shard-2": 5}
    assert set(read_checkpoint(table, FileLedger).files) == {"sha-a.csv"}
    assert referenced_files(table) and all(Path(p.removeprefix("file://")).exists() for p in referenced_files(table))


def test_quiet_partitions_survive_expiry_of_every_older_snapshot(table: Any) -> None:
    table = commit(table, StreamBatch("kafka", {"t/0": 1, "t/1": 1, "t/2": 1}))
    for offset in range(2, 40):  # only t/0 moves on; t/1 and t/2 are quiet
        table = commit(table, StreamBatch("kafka", {"t/0": offset}))
    assert needed_snapshots(table) == set()
    table = expire_all_but_current(table)
    assert read_checkpoint(table, StreamPositions).positions == {"t/0": 39, "t/1": 1, "t/2": 1}


def test_a_table_without_checkpoints_gets_no_state(table: Any) -> None:
    table = append(table, rows(1), run_id="r", batch_id="b")
    assert STATE not in table.current_snapshot().summary.additional_properties
    assert carry_forward(table) == {}
    assert needed_snapshots(table) == set()
    assert read_checkpoint(table, StreamPositions) == StreamPositions()


def test_client_batch_ids_are_needed_until_their_window_ends_or_a_maintenance_commit_folds_them(table: Any) -> None:
    now = int(time.time() * 1000)
    table = commit(table, StreamBatch("http", {"wal": 1}, http_batches=("b1",), http_until_ms=now + 3_600_000))
    holder = table.current_snapshot().snapshot_id
    table = commit(table, StreamBatch("http", {"wal": 2}))  # no client batch id
    assert needed_snapshots(table) == {holder}
    assert needed_snapshots(table, now_ms=now + 3_600_001) == set()  # past its window: not needed
    with table.transaction() as tx:  # a maintenance commit (compaction, say) with the state carried
        tx.append(rows(0).slice(0, 0), snapshot_properties=carry_forward(table))
    table = expire_all_but_current(table.refresh())
    assert set(read_checkpoint(table, HttpBatches).batches) == {"b1"}
    assert read_checkpoint(table, StreamPositions).positions == {"wal": 2}
    assert needed_snapshots(table) == set()
    # a later commit carries the folded ids forward; past the window they are gone
    table = commit(table, StreamBatch("http", {"wal": 3}, http_batches=("b2",), http_until_ms=now + 3_600_000))
    assert set(read_checkpoint(table, HttpBatches).batches) == {"b1", "b2"}
    assert read_checkpoint(table, HttpBatches, since_ms=now + 3_600_001).batches == {}

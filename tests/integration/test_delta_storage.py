"""Delta tables under the storage seam (storage/delta.py, ADR 35): partitions, compare-and-swap
commits, checkpoints in commitInfo, read back by the same code as Iceberg's."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lakestack.errors import CommitConflictError, StorageError
from lakestack.storage.checkpoints import (
    BatchFile,
    FileBatch,
    FileLedger,
    StreamBatch,
    StreamPositions,
    read_checkpoint,
)
from lakestack.storage.warehouse import append, has_batch, history, replace_files

pytest.importorskip("deltalake")
from lakestack.storage.delta import DeltaLakeTable, DeltaWarehouse, Partitioning

SCHEMA = pa.schema([pa.field("k", pa.int64(), nullable=False), pa.field("d", pa.date32()), pa.field("v", pa.string())])
EPOCH = date(1970, 1, 1)


def _rows(*rows: tuple[int, int, str]) -> pa.Table:
    return pa.table(
        {
            "k": pa.array([r[0] for r in rows], pa.int64()),
            "d": pa.array([EPOCH + timedelta(days=r[1]) for r in rows], pa.date32()),
            "v": [r[2] for r in rows],
        },
        schema=SCHEMA,
    )


def _content(table: DeltaLakeTable) -> list[tuple[int, int, str]]:
    return sorted((r["k"], (r["d"] - EPOCH).days, r["v"]) for r in table.scan().to_arrow().to_pylist())


@pytest.fixture
def table(tmp_path: Path) -> DeltaLakeTable:
    warehouse = DeltaWarehouse(tmp_path.as_uri())
    warehouse._table("silver.t", SCHEMA, {"lakestack.key": "k"}, Partitioning("d", "day"))
    return warehouse.load("silver.t")


def test_a_new_table_has_no_snapshot_and_each_commit_is_one_version(table: DeltaLakeTable) -> None:
    assert table.current_snapshot() is None and table.scan().plan_files() == []
    table = append(table, _rows((1, 1, "a"), (2, 2, "b")), run_id="r1", batch_id="b1")
    table = append(table, _rows((3, 2, "c")), run_id="r2", batch_id="b2")
    commits = list(history(table))
    assert [(c.snapshot_id, c.run_id, c.batch_id, c.added_records) for c in commits] == [
        (1, "r1", "b1", 2),
        (2, "r2", "b2", 1),
    ]
    assert sorted({t.file.partition[0] for t in table.scan().plan_files()}) == [1, 2]
    assert table.scan().to_arrow().column_names == ["k", "d", "v"]  # the derived column stays hidden
    assert table.delta.transaction_version("lakestack") == 2


def test_checkpoints_are_read_back_from_commit_info(table: DeltaLakeTable) -> None:
    files = FileBatch((BatchFile("a.csv", "f" * 64, "landed", 1, 0),))
    table = append(table, _rows((1, 1, "a")), run_id="r1", batch_id="b1", checkpoint=files)
    stream = StreamBatch("kafka", {"t/0": 41}, epoch=3)
    table = append(table, _rows((2, 1, "b")), run_id="r2", batch_id="b2", checkpoint=stream)
    fresh = table.refresh()
    assert read_checkpoint(fresh, FileLedger).files["f" * 64].name == "a.csv"
    assert read_checkpoint(fresh, StreamPositions) == StreamPositions({"t/0": 41}, "kafka", 3)
    ledger_files = list(Path(fresh.uri.removeprefix("file://"), "_lakestack").iterdir())
    assert len(ledger_files) == 1  # the ledger side file, beside _delta_log


def test_replacing_whole_partitions_rewrites_only_them(table: DeltaLakeTable) -> None:
    table = append(table, _rows((1, 1, "a"), (2, 2, "b"), (3, 3, "c")), run_id="r1", batch_id="b1")
    files = table.scan().plan_files()
    day2 = [t.file for t in files if t.file.partition[0] == 2]
    kept = {t.file.file_path for t in files if t.file.partition[0] != 2}
    table = replace_files(table, day2, _rows((2, 2, "B"), (4, 5, "new")), run_id="r2", batch_id="b2")
    assert _content(table) == [(1, 1, "a"), (2, 2, "B"), (3, 3, "c"), (4, 5, "new")]
    assert kept <= {t.file.file_path for t in table.scan().plan_files()}  # days 1 and 3 untouched


def test_replacing_part_of_a_partition_is_refused_and_changes_nothing(table: DeltaLakeTable) -> None:
    table = append(table, _rows((1, 1, "a")), run_id="r1", batch_id="b1")
    table = append(table, _rows((2, 1, "b")), run_id="r2", batch_id="b2")
    one = table.scan().plan_files()[0].file
    with pytest.raises(StorageError, match="not whole partitions"):
        replace_files(table, [one], _rows((1, 1, "A")), run_id="r3", batch_id="b3")
    assert _content(table.refresh()) == [(1, 1, "a"), (2, 1, "b")] and table.version == 2


def test_a_commit_on_a_stale_read_conflicts_and_append_retries_once(table: DeltaLakeTable) -> None:
    stale = table.refresh()
    rival = DeltaLakeTable(table.identifier, table.uri)
    append(rival, _rows((1, 1, "rival")), run_id="r1", batch_id="rival")
    with pytest.raises(CommitConflictError):  # a MERGE computed on the stale read must be recomputed
        replace_files(stale, [], _rows((9, 1, "x")), run_id="r2", batch_id="merge")
    stale = DeltaLakeTable(table.identifier, table.uri)
    stale.delta = stale.at(0)  # read before the rival's commit
    table = append(stale, _rows((2, 1, "mine")), run_id="r3", batch_id="mine")  # retried from a fresh read
    assert _content(table) == [(1, 1, "rival"), (2, 1, "mine")]
    old = DeltaLakeTable(table.identifier, table.uri)
    old.delta = old.at(1)  # an attempt whose commit did land, retried: the batch id is found
    table = append(old, _rows((2, 1, "mine")), run_id="r3", batch_id="mine")
    assert _content(table.refresh()) == [(1, 1, "rival"), (2, 1, "mine")] and has_batch(table, "mine")


def test_a_rollback_is_a_restore_whose_lineage_skips_the_undone_versions(table: DeltaLakeTable) -> None:
    from lakestack.storage.snapshots import last_rollback, rollback

    table = append(table, _rows((1, 1, "a")), run_id="r1", batch_id="b1", checkpoint=StreamBatch("kafka", {"p": 5}))
    table = append(table, _rows((2, 1, "b")), run_id="r2", batch_id="b2", checkpoint=StreamBatch("kafka", {"p": 9}))
    done = rollback(table, 1, run_id="undo")
    table = table.refresh()
    assert (done.from_snapshot, done.to_snapshot, done.changed) == (2, 1, True)
    assert _content(table) == [(1, 1, "a")] and table.version == 3
    assert [c.snapshot_id for c in history(table)] == [1, 3]  # version 2 left the lineage
    assert read_checkpoint(table, StreamPositions).positions == {"p": 5}  # resumes from version 1's position
    assert not has_batch(table, "b2") and last_rollback(table)["to"] == 1  # type: ignore[index]
    table = append(table, _rows((2, 1, "b")), run_id="r4", batch_id="b2")  # re-delivered: it lands again
    assert _content(table) == [(1, 1, "a"), (2, 1, "b")]
    assert _content_at(table, 2) == [(1, 1, "a"), (2, 1, "b")]  # time travel still reads version 2


def _content_at(table: DeltaLakeTable, version: int) -> list[tuple[int, int, str]]:
    rows = table.scan(snapshot_id=version).to_arrow().to_pylist()
    return sorted((r["k"], (r["d"] - EPOCH).days, r["v"]) for r in rows)

"""Widening a column on a Delta table (storage/delta_evolution.py, ADR 35): the rows are rewritten
with the wider types in one overwrite commit that carries the table's checkpoint state, so stream
positions, file ledgers and batch ids read back unchanged, and an incremental reader does not take
the rewritten rows for new ones."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.types import DoubleType, LongType

from lakestack.storage.checkpoints import (
    BatchFile,
    FileBatch,
    FileLedger,
    StreamBatch,
    StreamPositions,
    read_checkpoint,
)
from lakestack.storage.evolution import SchemaStep
from lakestack.storage.maintenance import is_rewrite
from lakestack.storage.warehouse import append, files_added_after, has_batch, history

pytest.importorskip("deltalake")
from lakestack.storage.delta import DeltaLakeTable, DeltaWarehouse, Partitioning
from lakestack.storage.delta_evolution import refuse_unsupported, widen

SCHEMA = pa.schema(
    [pa.field("k", pa.int32(), nullable=False), pa.field("x", pa.float32()), pa.field("ts", pa.timestamp("us", "UTC"))]
)


def _rows(*keys: int) -> pa.Table:
    return pa.table(
        {
            "k": pa.array(keys, pa.int32()),
            "x": pa.array([k / 4 for k in keys], pa.float32()),
            "ts": pa.array([k * 86_400_000_000 for k in keys], pa.timestamp("us", "UTC")),
        },
        schema=SCHEMA,
    )


@pytest.fixture
def table(tmp_path: Path) -> DeltaLakeTable:
    warehouse = DeltaWarehouse(tmp_path.as_uri())
    warehouse._table("bronze.t", SCHEMA, {"lakestack.contract": "t.v1"}, Partitioning("ts", "day"))
    return warehouse.load("bronze.t")


STEPS = [
    SchemaStep("widen", ("k",), "k", "int → long", LongType()),
    SchemaStep("widen", ("x",), "x", "float → double", DoubleType()),
]


def test_a_widened_table_keeps_its_rows_checkpoints_and_reader_positions(table: DeltaLakeTable) -> None:
    files = FileBatch((BatchFile("a.csv", "f" * 64, "landed", 2, 0),))
    table = append(table, _rows(1, 2), run_id="r1", batch_id="b1", checkpoint=files)
    table = append(table, _rows(3), run_id="r2", batch_id="b2", checkpoint=StreamBatch("kafka", {"t/0": 41}, epoch=3))
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["k"])
    ledger, positions = read_checkpoint(table, FileLedger), read_checkpoint(table, StreamPositions)
    read_upto = table.current_snapshot().snapshot_id

    table = widen(table, STEPS, batch_id="evolve:t.v2")

    schema = table.arrow_schema()
    assert (schema.field("k").type, schema.field("x").type) == (pa.int64(), pa.float64())
    assert not schema.field("k").nullable and table.metadata.properties["lakestack.contract"] == "t.v1"
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["k"]) == rows
    assert table.version == 3 and is_rewrite(table.current_snapshot())  # one rewrite commit
    assert [c.batch_id for c in history(table)] == ["b1", "b2", "evolve:t.v2"]
    assert table.delta.transaction_version("lakestack") == 3
    assert read_checkpoint(table.refresh(), FileLedger) == ledger
    assert read_checkpoint(table, StreamPositions) == positions  # the stream resumes where it was
    assert has_batch(table, "b1") and has_batch(table, "b2")  # a retried batch is still seen as landed
    assert files_added_after(table, read_upto) == ([], 3)  # the rewritten rows are not new to Silver

    table = append(table, _rows(4), run_id="r3", batch_id="b3", checkpoint=StreamBatch("kafka", {"t/0": 50}, epoch=3))
    new, _ = files_added_after(table, read_upto)
    assert len(new) == 1
    assert read_checkpoint(table, StreamPositions).positions == {"t/0": 50}
    assert read_checkpoint(table, FileLedger) == ledger


def test_a_rewrite_of_unread_rows_is_read(table: DeltaLakeTable) -> None:
    table = append(table, _rows(1), run_id="r1", batch_id="b1")
    read_upto = table.current_snapshot().snapshot_id
    table = append(table, _rows(2), run_id="r2", batch_id="b2")  # not read yet when the table is widened
    table = widen(table, STEPS, batch_id="evolve:t.v2")
    new, _ = files_added_after(table, read_upto)
    assert new  # the rewritten files hold row 2: read again (row 1 with it; Silver's MERGE is idempotent)


def test_a_rename_is_refused_with_what_it_needs(table: DeltaLakeTable) -> None:
    from lakestack.errors import StorageError

    with pytest.raises(StorageError, match="column mapping"):
        refuse_unsupported(table, [SchemaStep("rename", ("x",), "y", "x → y", DoubleType())])

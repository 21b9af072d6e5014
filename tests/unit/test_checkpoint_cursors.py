"""The `Cursors` checkpoint kind (pull sources' high-water marks) on a real Iceberg table: a commit
names only the cursors it advanced, the others are carried, and the compact state alone answers
after every older snapshot is expired."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack.storage.checkpoints import (
    Cursors,
    FileLedger,
    StreamBatch,
    StreamPositions,
    carry_forward,
    needed_snapshots,
    read_checkpoint,
)
from lakestack.storage.warehouse import Warehouse, append

SCHEMA = pa.schema([pa.field("n", pa.int64(), nullable=False)])


@pytest.fixture
def table(tmp_path: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    (tmp_path / "wh").mkdir()
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path / 'wh'}")
    return Warehouse(catalog).system_table("_lakestack.events", SCHEMA)


def commit(table: Any, checkpoint: Any) -> Any:
    data = pa.table({"n": pa.array([1], pa.int64())}, schema=SCHEMA)
    return append(table, data, run_id="r", batch_id=f"r:{time.time_ns()}", checkpoint=checkpoint)


def test_cursors_advance_per_name_and_survive_expiry(table: Any) -> None:
    assert read_checkpoint(table, Cursors).values == {}
    table = commit(table, Cursors({"db": {"cursor": "2026-01-01T00:00:00", "key": [3]}, "other": 1}))
    table = commit(table, StreamBatch("kafka", {"t/0": 4}))  # another kind: cursors are carried
    table = commit(table, Cursors({"db": {"cursor": "2026-01-02T00:00:00", "key": [9]}}))
    expected = {"db": {"cursor": "2026-01-02T00:00:00", "key": [9]}, "other": 1}
    assert dict(read_checkpoint(table, Cursors).values) == expected
    assert read_checkpoint(table, StreamPositions).positions == {"t/0": 4}
    assert needed_snapshots(table) == set()
    current = table.current_snapshot().snapshot_id
    old = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id != current]
    table.maintenance.expire_snapshots().by_ids(old).commit()
    table = table.refresh()
    assert dict(read_checkpoint(table, Cursors).values) == expected
    assert read_checkpoint(table, FileLedger).files == {}
    assert "lakestack.state" in carry_forward(table)

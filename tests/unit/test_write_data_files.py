"""`write_data_files` names the files of one commit apart however many calls write them (an erasure
rewriting two files of one day gave both the same name: the second overwrote the first)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakestack.storage.warehouse import write_data_files


@pytest.mark.parametrize("partitioned", [True, False])
def test_two_calls_with_one_write_uuid_write_two_files(tmp_path: Path, partitioned: bool) -> None:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import LongType, NestedField, TimestamptzType

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'c.db'}", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("bronze")
    schema = Schema(NestedField(1, "id", LongType(), False), NestedField(2, "at", TimestamptzType(), False))
    spec = PartitionSpec(PartitionField(2, 1000, DayTransform(), "at_day")) if partitioned else PartitionSpec()
    table = catalog.create_table("bronze.t", schema=schema, partition_spec=spec)
    at = datetime(2026, 12, 3, 10, tzinfo=UTC)
    arrow = schema.as_arrow()
    write_uuid = uuid.uuid4()

    def rows(ids: list[int]) -> pa.Table:
        return pa.table({"id": ids, "at": [at] * len(ids)}, schema=arrow)

    first = write_data_files(table.metadata, table.io, rows([1, 2, 3]), write_uuid)
    second = write_data_files(table.metadata, table.io, rows([4, 5]), write_uuid)
    paths = [f.file_path for f in [*first, *second]]
    assert len(set(paths)) == len(paths) == 2
    assert all(str(write_uuid) in p for p in paths)  # erase's clean_pending finds them by the uuid
    read = [sorted(pq.read_table(p.removeprefix("file://")).column("id").to_pylist()) for p in paths]
    assert read == [[1, 2, 3], [4, 5]]

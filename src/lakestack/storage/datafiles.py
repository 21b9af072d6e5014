"""What storage hands an engine to have data files written inside an open Iceberg transaction.

An engine (`lakestack.engine`) writes Parquet data files for a query's result; storage adds them to
its transaction, with the checkpoint, and commits. The engine never commits; storage never runs SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """Where data files go: an Iceberg table inside an open transaction.

    `metadata` is the transaction's pyiceberg `TableMetadata` (schema, partition spec, location,
    properties such as `write.target-file-size-bytes`), `io` the table's `FileIO`, `write_uuid` the
    snapshot producer's `commit_uuid` (data file names carry it), `schema` the table's Arrow schema
    (results are conformed to it: columns cast, a column the result lacks written as null)."""

    metadata: Any
    io: Any
    write_uuid: Any
    schema: Any


# `writer(target)` writes Parquet data files (partitioned by the target's spec, with column
# statistics) and returns their pyiceberg `DataFile`s; storage appends them to its commit.
DataFileWriter = Callable[[WriteTarget], list[Any]]


STAGED_PREFIX = "_staged-"  # a folder of files an engine wrote for one commit, under the table's data folder
DAY_FOLDER = "_lakestack_day"  # the Hive-style sub-folder per day partition: `_lakestack_day=2026-01-31`
_CODECS = ("zstd", "snappy", "gzip", "uncompressed")  # Iceberg codec names an engine's writer also has


@dataclass(frozen=True, slots=True)
class ParquetColumn:
    """A column of the files to write: its name, Iceberg field id and Iceberg type (pyiceberg's
    spelling: `long`, `decimal(12, 2)`, `timestamptz`)."""

    name: str
    field_id: int
    type: str


@dataclass(frozen=True, slots=True)
class LocalParquetWrite:
    """How an engine may write a target's Parquet files itself, for :func:`adopt_parquet_files`.

    The engine writes the columns in order, each with its field id, into `folder` (a fresh local
    folder below the table's data folder); with `day_of`, one sub-folder per day of that column,
    Hive style (`_lakestack_day=2026-01-31`, `…=NULL` for a null day). Compression, row group rows
    and the file size target are the table's `write.*` properties."""

    folder: str
    columns: tuple[ParquetColumn, ...]
    day_of: str | None
    compression: str
    compression_level: int | None
    row_group_rows: int
    file_bytes: int


def local_parquet_write(target: WriteTarget) -> LocalParquetWrite | None:
    """Where and how an engine may write `target`'s files itself, or None when storage must write
    them (a Delta or remote table, a spec other than one day partition, nested or renamed columns)."""
    import uuid

    from pyiceberg.schema import sanitize_column_names
    from pyiceberg.table import TableProperties
    from pyiceberg.table.locations import load_location_provider
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import PrimitiveType
    from pyiceberg.utils.properties import property_as_int

    metadata: Any = target.metadata
    if not hasattr(metadata, "spec") or not hasattr(metadata, "location"):  # a Delta commit (`delta.Staged`)
        return None
    schema, spec, props = metadata.schema(), metadata.spec(), metadata.properties
    provider = load_location_provider(table_location=metadata.location, table_properties=props)
    root = _local_path(provider.data_path)
    codec = props.get(TableProperties.PARQUET_COMPRESSION, TableProperties.PARQUET_COMPRESSION_DEFAULT)
    if root is None or codec not in _CODECS or sanitize_column_names(schema) != schema:
        return None
    if not all(isinstance(f.field_type, PrimitiveType) for f in schema.fields):
        return None
    if DAY_FOLDER in {f.name for f in schema.fields}:
        return None
    day_of = None
    if spec.fields:
        if len(spec.fields) > 1 or not isinstance(spec.fields[0].transform, DayTransform):
            return None
        day_of = schema.find_column_name(spec.fields[0].source_id)
    return LocalParquetWrite(
        folder=f"{root}/{STAGED_PREFIX}{target.write_uuid}-{uuid.uuid4().hex[:8]}",
        columns=tuple(ParquetColumn(f.name, f.field_id, str(f.field_type)) for f in schema.fields),
        day_of=day_of,
        compression=codec,
        compression_level=_level(codec, property_as_int(props, TableProperties.PARQUET_COMPRESSION_LEVEL)),
        row_group_rows=property_as_int(  # type: ignore[arg-type]  # has a default, never None
            props, TableProperties.PARQUET_ROW_GROUP_LIMIT, TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT
        ),
        file_bytes=property_as_int(  # type: ignore[arg-type]
            props, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
        ),
    )


def _level(codec: str, level: int | None) -> int | None:
    """The compression level an engine writes at: the table's, else what pyiceberg's own writer uses
    (Arrow's default: zstd at 1, where DuckDB's default is 3, which made its COPY ~25 % slower)."""
    if level is not None or codec != "zstd":
        return level
    import pyarrow as pa

    return int(pa.Codec.default_compression_level("zstd"))


def adopt_parquet_files(target: WriteTarget, plan: LocalParquetWrite, paths: list[str]) -> list[Any]:
    """The Parquet files an engine wrote under `plan.folder`, moved to where the table's location
    provider puts data files (`data/order_ts_day=2026-01-31/00000-<n>-<write uuid>.parquet`), as
    pyiceberg `DataFile`s with the statistics of their footers. A file without rows is deleted."""
    import os

    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
    from pyiceberg.table.locations import load_location_provider
    from pyiceberg.typedef import Record

    from lakestack.storage.warehouse import task_ids

    metadata = target.metadata
    schema, spec = metadata.schema(), metadata.spec()
    provider = load_location_provider(table_location=metadata.location, table_properties=metadata.properties)
    stats_plan, by_path = compute_statistics_plan(schema, metadata.properties), parquet_path_to_id_mapping(schema)
    ids = task_ids(target.write_uuid)
    out = []
    for path in paths:
        footer = pq.read_metadata(path)
        if not footer.num_rows:
            os.remove(path)
            continue
        key = None
        if plan.day_of is not None:
            value = _day_of_folder(os.path.basename(os.path.dirname(path)))
            key = PartitionKey([PartitionFieldValue(spec.fields[0], value)], spec, schema)
        location = provider.new_data_location(f"00000-{next(ids)}-{target.write_uuid}.parquet", key)
        final = _local_path(location) or location
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(path, final)
        statistics = data_file_statistics_from_parquet_metadata(footer, stats_plan, by_path)
        out.append(
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=location,
                file_format=FileFormat.PARQUET,
                partition=key.partition if key else Record(),
                file_size_in_bytes=os.path.getsize(final),
                sort_order_id=None,
                spec_id=metadata.default_spec_id,
                equality_ids=None,
                key_metadata=None,
                **statistics.to_serialized_dict(),
            )
        )
    discard_staged(plan)
    return out


def discard_staged(plan: LocalParquetWrite) -> None:
    """Delete what is left of `plan.folder` (its emptied day folders, or a failed write's files)."""
    import shutil

    shutil.rmtree(plan.folder, ignore_errors=True)


def _day_of_folder(name: str) -> int | None:
    """`_lakestack_day=2026-01-31` as days since 1970-01-01 (the day transform's value); None for NULL."""
    from datetime import date

    text = name.partition("=")[2]
    return None if text == "NULL" else (date.fromisoformat(text) - date(1970, 1, 1)).days


def _local_path(location: str) -> str | None:
    """A local file location as a path (`file:///w/x` → `/w/x`); None for an object store's."""
    if location.startswith("file://"):
        return location.removeprefix("file://")
    return location if location.startswith("/") else None

"""Contracts → Iceberg schemas, and the metadata columns each layer adds."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)

from lakestack.contracts.model import Contract, Field

_SCALARS: dict[str, IcebergType] = {
    "string": StringType(),
    "integer": LongType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
    "date": DateType(),
    "timestamp": TimestamptzType(),
    "json": StringType(),
}

# (name, type, required, doc) — appended after the contract's columns.
BRONZE_COLUMNS: tuple[tuple[str, IcebergType, bool, str], ...] = (
    ("_raw", StringType(), False, "the record exactly as received"),
    ("_ingested_at", TimestamptzType(), True, "when lakestack committed the record"),
    ("_source", StringType(), True, "the source the record came from"),
    ("_source_file", StringType(), False, "landing file, relative to the landing folder"),
    ("_source_line", LongType(), False, "1-based line (CSV/NDJSON) or row (Parquet) in the file"),
    ("_file_date", DateType(), False, "the date captured from the file name"),
    ("_source_position", StringType(), False, "stream position: partition@offset, shard@sequence or batch#index"),
    ("_run_id", StringType(), True, "the run that committed the record"),
    ("_contract_version", IntegerType(), True, "the contract version the record was validated against"),
)

SILVER_COLUMNS: tuple[tuple[str, IcebergType, bool, str], ...] = (
    ("_ingested_at", TimestamptzType(), True, "when the winning version reached Bronze"),
    ("_source_file", StringType(), False, "landing file of the winning version"),
    ("_source_line", LongType(), False, "line of the winning version in its file"),
    ("_run_id", StringType(), True, "the promotion run that wrote this version"),
)

_ERROR = StructType(
    NestedField(9001, "path", StringType(), required=False),
    NestedField(9002, "rule", StringType(), required=False),
    NestedField(9003, "message", StringType(), required=False),
)
QUARANTINE_COLUMNS: tuple[tuple[str, IcebergType, bool, str], ...] = (
    ("_source", StringType(), True, "the source the record came from"),
    ("_source_file", StringType(), False, "landing file, relative to the landing folder"),
    ("_source_line", LongType(), False, "1-based line or row in the file; null when the whole file is rejected"),
    ("_file_hash", StringType(), False, "sha256 of the landing file"),
    ("_source_position", StringType(), False, "stream position: partition@offset, shard@sequence or batch#index"),
    ("_scope", StringType(), True, "'record' or 'file'"),
    ("_raw", StringType(), False, "the record exactly as received (null for a rejected file)"),
    ("_errors", ListType(9000, _ERROR, element_required=False), True, "every rule the record broke"),
    ("_reason", StringType(), True, "a one-line summary of the first error"),
    ("_contract_version", IntegerType(), True, "the contract version applied"),
    ("_run_id", StringType(), True, "the run that rejected the record"),
    ("_ingested_at", TimestamptzType(), True, "when lakestack committed the rejection"),
)


def _iceberg_type(field: Field, ids: Iterator[int]) -> IcebergType:
    if field.type == "decimal":
        assert field.precision is not None and field.scale is not None
        return DecimalType(field.precision, field.scale)
    if field.type == "struct":
        return StructType(*(_nested(f, ids) for f in field.fields))
    if field.type == "list":
        assert field.items is not None
        element_id = next(ids)
        return ListType(element_id, _iceberg_type(field.items, ids), element_required=not field.items.nullable)
    return _SCALARS[field.type]


def _nested(field: Field, ids: Iterator[int]) -> NestedField:
    field_id = next(ids)
    required = field.required and not field.nullable
    return NestedField(field_id, field.name, _iceberg_type(field, ids), required=required, doc=field.description)


def contract_schema(contract: Contract, extra: tuple[tuple[str, IcebergType, bool, str], ...] = ()) -> Schema:
    """The Iceberg schema of a contract's columns, followed by `extra` metadata columns."""
    ids = count(1)
    fields = [_nested(f, ids) for f in contract.fields]
    fields += [NestedField(next(ids), name, typ, required=req, doc=doc) for name, typ, req, doc in extra]
    return Schema(*fields)


def bronze_schema(contract: Contract) -> Schema:
    return contract_schema(contract, BRONZE_COLUMNS)


def quarantine_schema() -> Schema:
    ids = count(1)
    fields = []
    for name, typ, req, doc in QUARANTINE_COLUMNS:
        fields.append(NestedField(next(ids), name, typ, required=req, doc=doc))
    return Schema(*fields)


def day_partition(schema: Schema, column: str) -> PartitionSpec:
    source = schema.find_field(column)
    return PartitionSpec(
        PartitionField(
            source_id=source.field_id, field_id=1000, transform=DayTransform(), name=f"{column.lstrip('_')}_day"
        )
    )


def error_struct_type() -> pa.DataType:
    return pa.struct([("path", pa.string()), ("rule", pa.string()), ("message", pa.string())])


def same_columns(table: Any, schema: pa.Schema) -> bool:
    """Whether an Arrow result has a table's columns (names and types in order). pyiceberg gives a
    table's strings, binaries and lists as their `large_` Arrow types; those equal the plain ones."""
    current = table.schema().as_arrow()
    return [(f.name, _plain(f.type)) for f in current] == [(f.name, _plain(f.type)) for f in schema]


def _plain(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    if pa.types.is_large_list(kind) or pa.types.is_list(kind):
        return pa.list_(_plain(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in kind])
    return kind

"""Contract → Arrow schema, and validated records → Arrow tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa

from lakestack.contracts.model import Contract, Field

_SCALARS = {
    "string": pa.string(),
    "integer": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
}


def arrow_type(field: Field) -> pa.DataType:
    if field.type == "decimal":
        return pa.decimal128(field.precision, field.scale)
    if field.type == "struct":
        return pa.struct([arrow_field(f) for f in field.fields])
    if field.type == "list":
        assert field.items is not None
        return pa.list_(arrow_field(field.items))
    return _SCALARS[field.type]


def arrow_field(field: Field) -> pa.Field:
    metadata = {b"pii": field.pii.encode()} if field.pii else None
    return pa.field(field.name, arrow_type(field), nullable=field.nullable or not field.required, metadata=metadata)


def arrow_schema(contract: Contract) -> pa.Schema:
    """The typed columns of a contract (no lakestack metadata columns)."""
    return pa.schema([arrow_field(f) for f in contract.fields])


_BUILTINS = (dt.datetime, dt.date, Decimal)


def records_to_arrow(records: Sequence[Any], contract: Contract) -> pa.Table:
    """Validated records (from :class:`RecordValidator`) as a table with the contract's schema."""
    schema = arrow_schema(contract)
    if not records:
        return schema.empty_table()
    if any(f.type in ("struct", "list", "json") for f in contract.fields):
        rows = msgspec.to_builtins(records, builtin_types=_BUILTINS)
        for f in contract.fields:
            if f.type == "json":
                for row in rows:
                    if row.get(f.name) is not None:
                        row[f.name] = msgspec.json.encode(row[f.name]).decode()
        return pa.Table.from_pylist(rows, schema=schema)
    unset = msgspec.UNSET
    columns = []
    for i, f in enumerate(contract.fields):
        getter = _getter(f.name)
        values = [getter(r) for r in records]
        if not f.required:
            values = [None if v is unset else v for v in values]
        columns.append(pa.array(values, type=schema.field(i).type))
    return pa.Table.from_arrays(columns, schema=schema)


def _getter(name: str) -> Any:
    import operator

    return operator.attrgetter(name)


def as_version(typed: pa.Table, old: Contract, new: Contract) -> pa.Table:
    """Records typed under `old` as the columns of `new`: a column renamed in `new` (`renamed_from`)
    takes the old column's values, one `old` lacks is null, and one `new` lacks is left out (the raw
    record keeps it). Raises ValueError when an old value does not fit the new type."""
    names = set(typed.column_names)
    columns = []
    for f in new.fields:
        was = f.name if f.name in names else f.renamed_from if f.renamed_from in names else None
        target = arrow_type(f)
        if was is None:
            columns.append(pa.nulls(typed.num_rows, target))
            continue
        try:
            columns.append(typed[was].cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"'{was}' of {old.ref} does not fit {new.ref}'s {f.type_name}: {exc}") from None
    return pa.Table.from_arrays(columns, schema=arrow_schema(new))

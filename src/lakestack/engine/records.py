"""Small query results as Python values, without pyarrow (issue 19 item 4).

A `lakestack query` printing a few rows spent ~0.15 s importing pyarrow (and numpy) to turn an
Arrow result back into Python values. DuckDB gives those values itself; where its value for a
column type is the one pyarrow's `to_pylist` gives for that type's Arrow export (numbers, decimals,
text, dates, times, timestamps, lists and structs of them; HUGEINT as a Decimal, UUID as text,
zoned timestamps in UTC), a small result is read that way. Any other type (intervals, maps, enums,
unions, bit strings, fixed-size arrays, timestamps in s/ms/ns, UHUGEINT) and any result that may
reach a limit are read through Arrow, as before: `tests/unit/test_engine_records.py` compares
the two readings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC
from decimal import Decimal
from typing import Any

from lakestack.engine.base import ResultStream, SqlLimits

# DuckDB types whose Python value is the one pyarrow's to_pylist gives for their Arrow export.
SAME_IN_PYTHON = frozenset(
    {
        *("null", "boolean", "tinyint", "smallint", "integer", "bigint", "float", "double", "decimal"),
        *("utinyint", "usmallint", "uinteger", "ubigint", "varchar", "blob", "date", "time", "timestamp"),
    }
)
Reader = Callable[[Any], Any]


def small_result(relation: Any, most: int, limits: SqlLimits) -> list[dict[str, Any]] | None:
    """The rows of the DuckDB `relation` as Python values, exactly as `to_pylist` gives its Arrow
    result (zoned timestamps in UTC), when there are at most `most` of them, surely within
    `limits`, and every column reads the same; else None, and the caller streams Arrow, running
    the query again: under the LIMIT a scan stops early and an ORDER BY is a top-N, but a
    grouping with more than `most` groups is computed twice."""
    names = list(relation.columns)
    readers = [python_reader(t) for t in relation.types]
    if len(set(names)) != len(names) or any(r is False for r in readers):
        return None
    found = relation.limit(most + 1).fetchall()
    if len(found) > most or (limits.max_rows is not None and len(found) > limits.max_rows):
        return None
    records = [{n: _read(r, v) for n, r, v in zip(names, readers, row, strict=True)} for row in found]
    bound = sum(size_bound(v) for row in records for v in row.values())
    if limits.max_bytes is not None and 2 * bound > limits.max_bytes:
        return None  # perhaps over the byte limit: Arrow measures it, as it always did
    return records


def python_reader(kind: Any, top: bool = True) -> Reader | bool | None:
    """How a DuckDB Python value of the DuckDB type `kind` becomes the Arrow `to_pylist` value:
    None (as it is), a function, or False for a type read only through Arrow. `top`: a column
    itself (`pylist` gives its zoned timestamps `datetime.UTC`; inside a list or struct
    they keep pyarrow's `ZoneInfo("UTC")`, which is DuckDB's too)."""
    kind_id = str(kind.id)
    if kind_id in SAME_IN_PYTHON:
        return None
    if kind_id == "hugeint":  # exported as decimal128(38, 0)
        return _nullable(Decimal)
    if kind_id == "uuid":  # exported as a string
        return _nullable(str)
    if kind_id == "timestamp with time zone":  # the sandbox's zone is UTC, as the export's
        return _nullable(lambda v: v.astimezone(UTC)) if top else None
    if kind_id == "list":
        child = python_reader(kind.children[0][1], top=False)
        if child is None or child is False:
            return child
        return _nullable(lambda v: [_read(child, x) for x in v])
    if kind_id == "struct":
        fields = [(name, python_reader(t, top=False)) for name, t in kind.children]
        if any(r is False for _, r in fields):
            return False
        if all(r is None for _, r in fields):
            return None
        return _nullable(lambda v: {n: _read(r, v[n]) for n, r in fields})
    return False


def _read(reader: Reader | bool | None, value: Any) -> Any:
    return reader(value) if callable(reader) else value


def _nullable(read: Reader) -> Reader:
    return lambda v: None if v is None else read(v)


def size_bound(value: Any) -> int:
    """More than the Arrow bytes `value` takes: 32 for its fixed width, offsets and validity bits,
    plus its text or bytes."""
    if isinstance(value, str):
        return 32 + len(value.encode())
    if isinstance(value, bytes):
        return 32 + len(value)
    if isinstance(value, list):
        return 32 + sum(size_bound(v) for v in value)
    if isinstance(value, dict):
        return 32 + sum(size_bound(v) for v in value.values())
    return 32


def is_arrow_table(value: Any) -> bool:
    """A `pyarrow.Table`, without importing pyarrow for a caller that has none."""
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(value, pa.Table)


_UTC_NAMES = ("UTC", "Etc/UTC", "+00:00", "Z")


def pylist(data: Any) -> list[dict[str, Any]]:
    """Rows of an Arrow table or record batch as dicts, as `to_pylist` gives them, without pyarrow
    importing pandas for a UTC timestamp column (~0.3 s of a `lakestack show`): such columns are
    read as naive UTC and given their zone back."""
    import pyarrow as pa

    zoned = [f.name for f in data.schema if pa.types.is_timestamp(f.type) and f.type.tz is not None]
    if not zoned or any(data.schema.field(n).type.tz not in _UTC_NAMES for n in zoned):
        return list(data.to_pylist())
    naive = pa.schema(
        [pa.field(f.name, pa.timestamp(f.type.unit), f.nullable) if f.name in zoned else f for f in data.schema]
    )
    rows: list[dict[str, Any]] = data.cast(naive).to_pylist()
    for row in rows:
        for name in zoned:
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=UTC)
    return rows


class RecordsStream(ResultStream):
    """A small result fetched whole (`records`); Arrow (and pyarrow) only if iterated or read whole.

    `relation` is the DuckDB relation it came from: its Arrow schema is read with no rows while
    the sandbox is open; `close` ends the query's timer and, if the stream owns it, the sandbox."""

    def __init__(self, relation: Any, records: list[dict[str, Any]], close: Callable[[], None]) -> None:
        self._relation, self._close = relation, close
        self._names = list(relation.columns)
        self._schema: Any = None
        self.records = records
        self.rows = len(records)
        self.truncated = None
        self._closed = False

    @property
    def columns(self) -> list[str]:
        return list(self._names)

    @property
    def schema(self) -> Any:  # type: ignore[override]
        if self._schema is None:
            self._schema = self._relation.limit(0).to_arrow_table().schema
        return self._schema

    def __iter__(self) -> Iterator[Any]:
        import pyarrow as pa

        if self.records:
            yield pa.RecordBatch.from_pylist(self.records, schema=self.schema)

    def read_all(self) -> Any:
        import pyarrow as pa

        return pa.Table.from_batches(list(self), schema=self.schema)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

"""Columns every Bronze and quarantine row carries, filled the same way by every source."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from lakestack.contracts.validate import Issue


def stamp(table: pa.Table, run_id: str, now: datetime) -> pa.Table:
    """`_run_id` and `_ingested_at` set on every row: the commit's run and time."""
    n = table.num_rows
    for name, value, typ in (("_run_id", run_id, pa.string()), ("_ingested_at", now, pa.timestamp("us", tz="UTC"))):
        table = table.set_column(table.schema.get_field_index(name), name, repeat(value, n, typ))
    return table


def repeat(value: Any, n: int, typ: pa.DataType) -> pa.Array:
    """`value` n times, as an Arrow array of `typ`."""
    if value is None:
        return pa.nulls(n, typ)
    import numpy as np

    return pa.array([value], typ).take(pa.array(np.zeros(n, np.int32))) if n else pa.array([], typ)


def reason(issues: list[Issue]) -> str:
    """A one-line reason for a quarantine row: the first issue, and how many more."""
    first = issues[0]
    more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{first.path}: {first.message}{more}"

"""`cli.results.pylist`: the rows `to_pylist` gives, UTC timestamps read as naive and given their zone back
(so pyarrow does not import pandas), other zones left to pyarrow."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from lakestack.cli.results import pylist


def test_rows_equal_to_pylist_whatever_the_zone() -> None:
    when = pa.array([1_767_225_600_000_000, None], pa.int64())
    for tz in ("UTC", "+00:00", None, "Europe/Paris"):
        table = pa.table({"at": when.cast(pa.timestamp("us", tz=tz)), "n": pa.array([1, 2], pa.int64())})
        assert pylist(table) == table.to_pylist(), tz
        assert pylist(table.to_batches()[0]) == table.to_pylist(), tz
    (row, _) = pylist(pa.table({"at": when.cast(pa.timestamp("us", tz="UTC"))}))
    assert row["at"] == datetime(2026, 1, 1, tzinfo=UTC) and row["at"].tzinfo is UTC

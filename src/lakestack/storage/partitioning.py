"""Date partitions at a granularity: Iceberg's `day`, `month` and `year` transforms of one DATE column.

A table partitioned by one of these on one column has a granularity; a set of changed days maps to
the periods (whole months, whole years) that hold them, each an Iceberg partition value and a
half-open date range. Gold picks the granularity of a model's table from its data
(`pipeline/gold.py`); incremental readers (Gold, publish) turn a changed partition back into days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

Granularity = Literal["day", "month", "year"]
GRANULARITIES: tuple[Granularity, ...] = ("day", "month", "year")
_EPOCH = date(1970, 1, 1)


def transform(granularity: Granularity) -> Any:
    """The Iceberg transform of a granularity."""
    from pyiceberg.transforms import DayTransform, MonthTransform, YearTransform

    return {"day": DayTransform, "month": MonthTransform, "year": YearTransform}[granularity]()


def granularity_of(spec: Any) -> Granularity | None:
    """The granularity of a partition spec of one day/month/year field; None for any other spec."""
    from pyiceberg.transforms import DayTransform, MonthTransform, YearTransform

    if len(spec.fields) != 1:
        return None
    kinds: dict[type, Granularity] = {DayTransform: "day", MonthTransform: "month", YearTransform: "year"}
    return kinds.get(type(spec.fields[0].transform))


def start_of(day: date, granularity: Granularity) -> date:
    """The first day of the period holding `day`."""
    if granularity == "day":
        return day
    return date(day.year, day.month if granularity == "month" else 1, 1)


def after(start: date, granularity: Granularity) -> date:
    """The first day of the period after the one starting at `start`."""
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "year":
        return date(start.year + 1, 1, 1)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def value_of(day: date, granularity: Granularity) -> int:
    """Iceberg's partition value for `day`: days, months or years since 1970-01-01."""
    if granularity == "day":
        return (day - _EPOCH).days
    if granularity == "month":
        return (day.year - 1970) * 12 + day.month - 1
    return day.year - 1970


def start_of_value(value: Any, granularity: Granularity) -> date:
    """The first day of the period an Iceberg partition value stands for (a date or an int)."""
    if isinstance(value, date):
        return start_of(value, granularity)
    n = int(value)
    if granularity == "day":
        return _EPOCH + timedelta(days=n)
    if granularity == "month":
        return date(1970 + n // 12, n % 12 + 1, 1)
    return date(1970 + n, 1, 1)


def days_of(value: Any, granularity: Granularity) -> list[int]:
    """The days (since 1970-01-01) of the period a partition value stands for."""
    start = start_of_value(value, granularity)
    end = after(start, granularity)
    return list(range((start - _EPOCH).days, (end - _EPOCH).days))


@dataclass(frozen=True, slots=True)
class Periods:
    """The partitions an incremental build replaces: their granularity and first days."""

    granularity: Granularity
    starts: tuple[date, ...]  # sorted, one per period

    @classmethod
    def covering(cls, days: Iterable[date], granularity: Granularity) -> Periods:
        return cls(granularity, tuple(sorted({start_of(d, granularity) for d in days})))

    @property
    def values(self) -> frozenset[int]:
        """Their Iceberg partition values."""
        return frozenset(value_of(s, self.granularity) for s in self.starts)

    def ranges(self) -> list[tuple[date, date]]:
        """Half-open date ranges [start, end) covering the periods, adjacent ones merged."""
        out: list[tuple[date, date]] = []
        for start in self.starts:
            end = after(start, self.granularity)
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out

    def __len__(self) -> int:
        return len(self.starts)


def choose_granularity(result: Any, column: str, target_bytes: int) -> Granularity | None:
    """The coarsest granularity whose average partition fits in one `target_bytes` data file,
    from the result's bytes per distinct day (Arrow's in-memory size, above Parquet's, so the
    choice errs toward finer partitions); None for a result without dates."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = result.schema.field(column).type if column in result.column_names else pa.null()
    if not (pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
        return None  # not a date: creating the partition spec says so, at the model's file
    days = pc.count_distinct(pc.cast(result[column], pa.date32())).as_py()
    if not days:
        return None
    per_day = result.nbytes / days
    if per_day * 366 <= target_bytes:
        return "year"
    if per_day * 31 <= target_bytes:
        return "month"
    return "day"


@dataclass(frozen=True, slots=True)
class Respec:
    """A change of the partition spec to `granularity` of `column`, applied inside an Iceberg
    transaction when called; a Delta commit reads `column` and `granularity` (`storage.delta`)."""

    column: str
    granularity: Granularity

    def __call__(self, tx: Any) -> None:
        with tx.update_spec() as update:
            for old in tx.table_metadata.spec().fields:
                update.remove_field(old.name)
            update.add_field(self.column, transform(self.granularity), f"{self.column}_{self.granularity}")


def respec(column: str, granularity: Granularity) -> Respec:
    """A change of the partition spec to `granularity` of `column`, applied inside a transaction."""
    return Respec(column, granularity)


def transform_values(values: Any, granularity: Granularity) -> Any:
    """Iceberg's transform values (days, months or years since 1970) of an Arrow array of dates or
    timestamps, as int32; null stays null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    days = pc.cast(values, pa.date32())
    if granularity == "day":
        return pc.cast(days, pa.int32())
    years = pc.subtract(pc.cast(pc.year(days), pa.int32()), pa.scalar(1970, pa.int32()))
    if granularity == "year":
        return years
    months = pc.subtract(pc.cast(pc.month(days), pa.int32()), pa.scalar(1, pa.int32()))
    return pc.add(pc.multiply(years, pa.scalar(12, pa.int32())), months)

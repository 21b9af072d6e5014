"""`--as-of` values: moments, snapshot ids and per-table pins, and the errors for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lakestack.errors import UsageError
from lakestack.pipeline.timetravel import AsOf

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "at"),
    [
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T10:00:00.250+02:00", datetime(2026, 12, 1, 8, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-12-01 10:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),  # no zone: UTC
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("2w", NOW - timedelta(weeks=2)),
    ],
)
def test_moments(value: str, at: datetime) -> None:
    parsed = AsOf.parse([value], NOW)
    assert parsed.at == at and parsed.snapshot is None and parsed.tables == ()


def test_snapshot_ids_and_per_table_pins() -> None:
    assert AsOf.parse(["4596423088468501298"], NOW) == AsOf(snapshot=4596423088468501298)
    both = AsOf.parse(["silver.orders=123", "gold.fact_sales=2026-12-01T00:00:00Z", "1h"], NOW)
    assert both.at == NOW - timedelta(hours=1)
    assert both.tables == (("silver.orders", 123), ("gold.fact_sales", datetime(2026, 12, 1, tzinfo=UTC)))


def test_what_lake_query_accepts() -> None:
    naive = datetime(2026, 12, 1, 10)
    assert AsOf.of(naive).at == naive.replace(tzinfo=UTC)
    berlin = datetime(2026, 12, 1, 11, tzinfo=timezone(timedelta(hours=1)))
    assert AsOf.of(berlin).at == berlin
    assert AsOf.of(42) == AsOf(snapshot=42)
    assert AsOf.of("silver.orders=42").tables == (("silver.orders", 42),)
    assert AsOf.of(["silver.orders=42", "gold.x=7"]).tables == (("silver.orders", 42), ("gold.x", 7))
    same = AsOf(snapshot=1)
    assert AsOf.of(same) is same


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["yesterday"], "expected a time"),
        (["2026-13-01"], "expected a time"),
        (["-5"], "expected a time"),
        (["orders=1"], "is not a table name such as silver.orders"),
        (["silver.orders=soon"], "expected a time"),
        (["silver.orders=1", "silver.orders=2"], "silver.orders is given twice"),
        (["1h", "2h"], "only one moment or snapshot id applies to every table"),
        (["1h", "12345"], "only one moment or snapshot id applies to every table"),
    ],
)
def test_bad_values_are_usage_errors(values: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        AsOf.parse(values, NOW)
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        AsOf.of(True)

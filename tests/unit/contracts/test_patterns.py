from __future__ import annotations

from datetime import date

import pytest

from lakestack.contracts.patterns import FilePattern


@pytest.mark.parametrize(
    ("template", "name", "expected"),
    [
        ("orders_{date:%Y%m%d}.csv", "orders_20260131.csv", (date(2026, 1, 31), None)),
        ("orders_{date:%Y%m%d}.csv", "orders_20260131.csv.gz", (date(2026, 1, 31), ".gz")),
        ("orders_{date:%Y%m%d}.csv", "orders_20260231.csv", None),
        ("orders_{date:%Y%m%d}.csv", "orders_2026013.csv", None),
        ("orders_{date:%Y%m%d}.csv", "xorders_20260131.csv", None),
        ("clicks_{date:%Y-%m-%d}_*.ndjson", "clicks_2026-01-31_07.ndjson", (date(2026, 1, 31), None)),
        ("catalog*.parquet", "catalog_v2.parquet", (None, None)),
        ("a.b.csv", "aXb.csv", None),
    ],
)
def test_patterns_match_and_capture_dates(template: str, name: str, expected: tuple[object, object] | None) -> None:
    match = FilePattern(template).match(name)
    assert (None if match is None else (match.file_date, match.compression)) == expected


@pytest.mark.parametrize("template", ["in/dir_{date:%Y}.csv", "{date:%Y}_{date:%m}.csv", "x_{date:%Q}.csv"])
def test_bad_patterns_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        FilePattern(template)

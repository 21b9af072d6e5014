from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# a template's pieces and names built from the same few characters, so that names often match
_PIECES = st.sampled_from(["a", "_", ".", "-", "é", "*", "csv", ".gz", "{date:%Y%m%d}", "{date:%Y-%m}", "{date:%j}"])
_NAME_CHARS = st.sampled_from(["a", "_", ".", "-", "é", "\n", "0", "1", "2", "9", "20260131", "2026-01", ".gz", "csv"])


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(_PIECES, min_size=1, max_size=7),
    names=st.lists(st.lists(_NAME_CHARS, max_size=10).map("".join), min_size=1, max_size=8),
)
def test_a_few_names_walked_in_python_match_as_the_re2_pass(pieces: list[str], names: list[str]) -> None:
    """The walk small listings take (no pyarrow) and the RE2 pass of large ones agree on every name:
    match or not, the captured date and the compression."""
    template = "".join(pieces)
    if template.count("{date:") > 1:
        return
    pattern = FilePattern(template)
    assert [pattern._walk(n) for n in names] == pattern._match_all_re2(names)


def test_the_walk_is_not_backtracking_on_many_stars() -> None:
    pattern = FilePattern("*_*_*_*_*_*_*_*.csv")
    names = ["_" * 1000 + "x", "_" * 1000 + ".csv", "a_b_c_d_e_f_g_h.csv.gz"]
    assert [m.compression if m else "-" for m in pattern.match_all(names)] == ["-", None, ".gz"]

"""Property test: the vectorised path (contracts/vector.py) and the record path (RecordValidator)
agree on every row: the same verdict, the same typed values, the same errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakestack.contracts.arrow import records_to_arrow
from lakestack.contracts.batch import load_batch_contract
from lakestack.contracts.csvtext import TextRules
from lakestack.contracts.model import Contract
from lakestack.contracts.validate import RecordValidator
from lakestack.contracts.vector import ColumnValidator, Verdict

COLUMNS = """\
columns:
  - {name: code, type: string, nullable: false, regex: "^[A-C][0-9]$", min_length: 2, max_length: 2}
  - {name: kind, type: string, enum: [a, b, "NA"]}
  - {name: note, type: string, min_length: 1, max_length: 4}
  - {name: n, type: integer, min: -5, max: 1000}
  - {name: m, type: integer, nullable: false}
  - {name: x, type: double, min: -1.5, max: 1e6}
  - {name: amount, type: "decimal(5,2)", min: 0}
  - {name: flag, type: boolean}
  - {name: day, type: date}
  - {name: at, type: timestamp}
  - {name: ints, type: integer, enum: [1, 2, 3]}
"""
PLAIN = "source: p\nversion: 1\nfile: {pattern: 'p_*.csv', format: csv}\n" + COLUMNS
SPELLED = (
    "source: p\nversion: 1\n"
    "file: {pattern: 'p_*.csv', format: csv, csv: {null_values: ['', NA, 'NULL'], true_values: [Y, 'yes'],"
    " false_values: [N], thousands: ' ', decimal: ','}}\n"
    + COLUMNS.replace(
        "{name: note, type: string, min_length: 1, max_length: 4}",
        "{name: note, type: string, min_length: 1, max_length: 4, null_values: ['-']}",
    ).replace("{name: day, type: date}", "{name: day, type: date, format: '%d/%m/%Y'}")
)

TEXTS = [
    "", "NA", "NULL", "-", "a", "b", "A1", "B9", "D1", "A10", "abcd", "abcde", "é", "0", "-0", "1", "2", "3",
    "007", "+5", "-5", "-6", "1000", "1001", "12", "1.0", "1e3", "1E2", "9223372036854775807",
    "9223372036854775808", "99999999999999999999", "-1.5", "-1.50001", "1.5", "0.5", ".5", "5.", "1e400",
    "inf", "nan", "NaN", "1 000", "1,5", "12,50", "999.99", "1000.00", "999.995", "0.001", "-0.01", "00012.5",
    "true", "false", "True", "FALSE", "Y", "N", "yes", "t", "2026-01-31", "2026-02-30", "2026-1-5", "0999-01-01",
    "31/01/2026", "30/02/2026", "1/2/2026", "2026-01-31T10:00:00Z", "2026-01-31T10:00:00", "2026-01-31 10:00:00",
    "2026-01-31T10:00:00.123456+02:00", "2026-01-31T10:00:00.1234567Z", "2026-01-31T24:00:00Z",
    "2026-01-31T10:00:00+25:00", "2026-13-01T00:00:00Z", "2026-01-31t10:00:00z", " 1", "1 ", "A1 ",
]  # fmt: skip
texts = st.one_of(
    st.sampled_from(TEXTS),
    st.sampled_from(TEXTS),
    st.sampled_from(TEXTS),
    st.integers(-(2**64), 2**64).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(-10_000, 10_000, places=3, allow_nan=False).map(str),
    st.text(alphabet="AB019-.,eE: TZ/", max_size=8),
)


def _contract(tmp: Path, text: str) -> Contract:
    path = tmp / "p.v1.yaml"
    path.write_text(text)
    return load_batch_contract(path, "p", 1, "p.v1.yaml")


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Contract]:
    return {
        "plain": _contract(tmp_path_factory.mktemp("plain"), PLAIN),
        "spelled": _contract(tmp_path_factory.mktemp("spelled"), SPELLED),
    }


def _agree(contract: Contract, rows: list[list[str]]) -> Verdict:
    assert contract.file is not None
    columns = ColumnValidator(contract)
    names = contract.column_names
    table = pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)})
    verdict = columns.validate_text(table)
    rules = TextRules(contract, contract.file.csv)
    expected = RecordValidator(contract).validate_rows([rules.row(r) for r in rows])
    assert verdict.valid.to_pylist() == expected.valid_positions
    typed = records_to_arrow(expected.valid, contract)
    assert verdict.typed.schema == typed.schema
    assert repr(verdict.typed.to_pylist()) == repr(typed.to_pylist())  # repr: -0.0 is not 0.0 here
    assert verdict.invalid == expected.invalid
    return verdict


# values each column accepts (both contracts), several spellings each
GOOD = [
    ["A1", "C9"], ["a", "b", ""], ["ok", "abcd", ""], ["12", "-5", "1000", "0", ""], ["-3", "0", "123456789"],
    ["0.5", "-1.5", "1e3", "0", "-0.0", ""], ["12.50", "0", "999.99", "0.1", ""], ["true", "0", "FALSE", ""],
    ["2026-01-31", "2024-02-29", ""],
    ["2026-01-31T10:00:00Z", "2026-01-31T10:00:00.5", "2026-01-31T10:00:00-03:30", ""],
    ["2", "3", ""],
]  # fmt: skip


@st.composite
def rows_with_odd_values(draw: st.DrawFn) -> list[str]:
    """A row of good values with up to two columns replaced by an odd text."""
    row = [draw(st.sampled_from(options)) for options in GOOD]
    for column in draw(st.lists(st.integers(0, len(GOOD) - 1), max_size=2)):
        row[column] = draw(texts)
    return row


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(rows_with_odd_values(), min_size=1, max_size=12), which=st.booleans())
def test_vectorised_and_record_paths_agree(contracts: dict[str, Contract], rows: list[list[str]], which: bool) -> None:
    _agree(contracts["spelled" if which else "plain"], rows)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(texts, min_size=11, max_size=11), min_size=1, max_size=12), which=st.booleans())
def test_paths_agree_on_arbitrary_text(contracts: dict[str, Contract], rows: list[list[str]], which: bool) -> None:
    _agree(contracts["spelled" if which else "plain"], rows)


VALID = [options[0] for options in GOOD]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.integers(0, 10), value=texts, count=st.integers(1, 30))
def test_one_bad_value_among_good_rows(contracts: dict[str, Contract], column: int, value: str, count: int) -> None:
    """Mostly valid rows (the vectorised path accepts them) with one odd value somewhere."""
    rows = [list(VALID) for _ in range(count)]
    rows[count // 2][column] = value
    _agree(contracts["plain"], rows)


def test_valid_rows_are_accepted_without_the_record_path(contracts: dict[str, Contract]) -> None:
    table = pa.table({n: pa.array(VALID * 0 + [VALID[i]] * 5) for i, n in enumerate(contracts["plain"].column_names)})
    verdict = ColumnValidator(contracts["plain"]).validate_text(table)
    assert (verdict.vectorised, verdict.invalid) == (5, [])


def test_every_error_of_a_failing_row_is_listed(contracts: dict[str, Contract]) -> None:
    row = ["Z1", "c", "", "1001", "", "x", "-1", "maybe", "2026-02-30", "noon", "4"]
    table = pa.table({n: pa.array([row[i]]) for i, n in enumerate(contracts["plain"].column_names)})
    verdict = ColumnValidator(contracts["plain"]).validate_text(table)
    assert verdict.valid.to_pylist() == []
    [(index, issues)] = verdict.invalid
    assert index == 0
    assert [i.path for i in issues] == [
        "$.code", "$.kind", "$.n", "$.m", "$.x", "$.amount", "$.flag", "$.day", "$.at", "$.ints",
    ]  # fmt: skip


@pytest.mark.parametrize("which", ["plain", "spelled"])
def test_every_listed_text_in_every_column(contracts: dict[str, Contract], which: str) -> None:
    """Exhaustive over the hand-picked texts: each one alone in each column of a good row."""
    rows = []
    for column in range(len(GOOD)):
        for text in TEXTS:
            row = list(VALID)
            row[column] = text
            rows.append(row)
    verdict = _agree(contracts[which], rows)
    assert verdict.vectorised >= 100  # rows whose one odd text is still valid stay on the vectorised path

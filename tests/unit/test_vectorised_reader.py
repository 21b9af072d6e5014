"""Property test: the block reader (ingest/vectorised.py) reads a CSV file exactly as the record
reader (ingest/readers.py) does (same records, lines, raw text and fields) or declines it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakestack.contracts.batch import load_batch_contract
from lakestack.contracts.csvtext import TextRules
from lakestack.contracts.model import Contract
from lakestack.ingest import vectorised
from lakestack.ingest.readers import FileRejected, read_csv
from lakestack.ingest.vectorised import NotVectorisable, read_csv_columns

CONTRACT = """\
source: t
version: 1
file: {pattern: "t_*.csv", format: csv}
columns:
  - {name: a, type: string}
  - {name: b, type: string}
  - {name: c, type: string}
"""

plain = st.text(alphabet='ab1 é,"\r\n', max_size=6)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


field = st.one_of(plain.filter(lambda t: not any(c in t for c in ',"\r\n')), plain.map(_quoted), plain)
line_end = st.sampled_from(["\n", "\r\n", "\n\n", "\r"])
rows = st.lists(st.tuples(st.lists(field, min_size=2, max_size=4), line_end), max_size=8)


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    path = tmp_path_factory.mktemp("c") / "t.v1.yaml"
    path.write_text(CONTRACT)
    return load_batch_contract(path, "t", 1, "t.v1.yaml")


def _record_reader(path: Path, contract: Contract) -> tuple[list[int], list[str], list[list[str | None]]] | str:
    assert contract.file is not None
    try:
        chunks = list(read_csv(path, None, contract, contract.file))
    except FileRejected as exc:
        return f"rejected: {exc}"
    if any(c.broken for c in chunks):
        return "broken rows"
    return (
        [p for c in chunks for p in c.positions],
        [r for c in chunks for r in c.raws],
        [v for c in chunks for v in c.values],
    )


def _block_reader(path: Path, contract: Contract) -> tuple[list[int], list[str], list[list[str | None]]] | None:
    assert contract.file is not None
    rules = TextRules(contract)
    try:
        chunks = list(read_csv_columns(path, None, contract, contract.file))
    except NotVectorisable:
        return None
    values = []
    for c in chunks:
        columns = [rules.column(i, c.table.column(i).combine_chunks()).to_pylist() for i in range(3)]
        values += [list(r) for r in zip(*columns, strict=True)]
    return (
        [n for c in chunks for n in c.lines.to_pylist()],
        [r for c in chunks for r in c.raws.to_pylist()],
        values,
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=rows,
    header_end=line_end,
    bom=st.booleans(),
    last_end=st.booleans(),
    block=st.sampled_from([7, 64, 1 << 20]),
)
def test_block_reader_reads_as_the_record_reader_or_declines(
    contract: Contract,
    body: list[tuple[list[str], str]],
    header_end: str,
    bom: bool,
    last_end: bool,
    block: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "a,b,c" + header_end + "".join(",".join(fields) + end for fields, end in body)
    if not last_end:
        text = text.rstrip("\r\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    monkeypatch.setattr(vectorised, "BLOCK_BYTES", block)  # small blocks: records cut across reads
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t_1.csv"
        path.write_bytes(data)
        fast = _block_reader(path, contract)
        exact = _record_reader(path, contract)
    if fast is not None:
        assert fast == exact


def test_quoted_newlines_keep_the_line_a_record_starts_on(contract: Contract, tmp_path: Path) -> None:
    path = tmp_path / "t_1.csv"
    path.write_bytes(b'a,b,c\r\n1,"two\r\nlines",x\r\n\r\n3,"4 ""q""",\n5,6,7')
    got = _block_reader(path, contract)
    assert got == (
        [2, 5, 6],
        ['1,"two\r\nlines",x', '3,"4 ""q""",', "5,6,7"],
        [["1", "two\r\nlines", "x"], ["3", '4 "q"', None], ["5", "6", "7"]],
    )
    assert got == _record_reader(path, contract)


@pytest.mark.parametrize(
    "content",
    [
        b"a,b,c\n1,2\n",  # a short row: the record reader quarantines it alone
        b'a,b,c\n1,x"y,3\n',  # a quote inside an unquoted field
        b'a,b,c\n1,"x"y,3\n',  # text after a closing quote
        b"a,b,c\r1,2,3\r",  # old Mac line ends
        b"a,b,c\n1,\xff,3\n",  # not UTF-8
        b"",
    ],
)
def test_files_the_record_reader_reads_differently_are_declined(
    contract: Contract, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "t_1.csv"
    path.write_bytes(content)
    assert _block_reader(path, contract) is None


def test_a_quote_never_closed_is_declined_after_four_blocks(
    contract: Contract, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vectorised, "BLOCK_BYTES", 64)
    path = tmp_path / "t_1.csv"
    path.write_bytes(b'a,b,c\n1,"open,3\n' + b"4,5,6\n" * 100)
    assert _block_reader(path, contract) is None
    assert isinstance(_record_reader(path, contract), str)  # the record reader rejects it

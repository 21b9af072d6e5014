"""Property test: for NDJSON, the vectorised path (pyarrow's JSON reader + contracts/vector.py) and
the record path (RecordValidator.validate_json) agree on every record: verdict, values, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakestack.contracts.arrow import records_to_arrow
from lakestack.contracts.batch import load_batch_contract
from lakestack.contracts.jsonschema import load_event_contract
from lakestack.contracts.model import Contract
from lakestack.contracts.validate import RecordValidator
from lakestack.contracts.vector import ColumnValidator, Verdict
from lakestack.ingest.readers import read_ndjson
from lakestack.ingest.vectorised import _JSON_READ_BYTES, _json_block, _piece

BATCH = """\
source: p
version: 1
file: {pattern: "p_*.ndjson", format: ndjson}
columns:
  - {name: id, type: string, nullable: false, regex: "^[a-c]", max_length: 4}
  - {name: n, type: integer, min: -5, max: 1000}
  - {name: x, type: double, min: -1.5}
  - {name: amount, type: "decimal(5,2)", min: 0}
  - {name: kind, type: string, enum: [a, b]}
  - {name: flag, type: boolean}
  - {name: day, type: date}
  - {name: at, type: timestamp}
"""
EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "at", "n"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "at": {"type": "string", "format": "date-time"},
        "n": {"type": ["integer", "null"], "minimum": 0},
        "x": {"type": "number", "exclusiveMinimum": 0},
        "kind": {"type": "string", "enum": ["a", "b"]},
    },
}

GOOD: dict[str, list[Any]] = {
    "id": ["a1", "b", "cccc"],
    "n": [0, 12, -5, 1000],
    "x": [0.5, -1.5, 3, 1e10],
    "amount": ["12.50", "0", "999.99"],
    "kind": ["a", "b"],
    "flag": [True, False],
    "day": ["2026-01-31", "2024-02-29"],
    "at": ["2026-01-31T10:00:00Z", "2026-01-31T10:00:00.5+02:00", "2026-01-31T10:00:00"],
}
ODD = [
    None, "", "d", "abcde", "NA", -6, 1001, 1.0, 1.5, 2**63, -0.0, 0, "-0", 1e300, "1", "12.5", "12.505",
    "1000.00", 12.5, -1, True, "true", "2026-02-30", "2026-01-31T25:00:00Z", "2026-01-31 10:00:00",
    "2026-01-31t10:00:00z", "\u00e9", [1], {"a": 1},
]  # fmt: skip
RAW_ODD = ['"n":NaN', '"x":-0', '"x":1e400', '"id" :"a"', '"id":"\\ud800"', '"id":"a","id":"b"', '"other":1']


@st.composite
def records(draw: st.DrawFn, names: list[str]) -> str:
    doc: dict[str, Any] = {}
    for name in names:
        if draw(st.integers(0, 9)) == 0:
            continue  # the key is absent
        doc[name] = draw(st.sampled_from(GOOD.get(name) or GOOD["id"]))
    for name in draw(st.lists(st.sampled_from(names), max_size=2)):
        doc[name] = draw(st.sampled_from(ODD))
    text = json.dumps(doc, separators=(",", ":"))
    if draw(st.integers(0, 5)) == 0:
        text = text[:-1] + ("," if doc else "") + draw(st.sampled_from(RAW_ODD)) + "}"
    return text


def _agree(contract: Contract, lines: list[str]) -> Verdict:
    block = ("\n".join(lines) + "\n").encode()
    chunk = _json_block(block, 0, contract)
    verdict = ColumnValidator(contract).validate(chunk.kind, chunk.table, chunk.raws)
    expected = RecordValidator(contract).validate_json([line.encode() for line in lines])
    assert verdict.valid.to_pylist() == expected.valid_positions
    typed = records_to_arrow(expected.valid, contract)
    assert verdict.typed.schema == typed.schema
    assert repr(verdict.typed.to_pylist()) == repr(typed.to_pylist())  # repr: -0.0 is not 0.0 here
    assert verdict.invalid == expected.invalid
    return verdict


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Contract]:
    folder = tmp_path_factory.mktemp("c")
    (folder / "p.v1.yaml").write_text(BATCH)
    (folder / "e.v1.json").write_text(json.dumps(EVENT))
    return {
        "batch": load_batch_contract(folder / "p.v1.yaml", "p", 1, "p.v1.yaml"),
        "event": load_event_contract(folder / "e.v1.json", "e", 1, "e.v1.json"),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.sampled_from(["batch", "event"]), count=st.integers(1, 10))
def test_vectorised_and_record_paths_agree_on_json(
    contracts: dict[str, Contract], data: st.DataObject, which: str, count: int
) -> None:
    contract = contracts[which]
    names = list(contract.column_names)
    lines = [data.draw(records(names)) for _ in range(count)]
    _agree(contract, lines)


def test_each_odd_value_in_each_column(contracts: dict[str, Contract]) -> None:
    for which, contract in contracts.items():
        base = {n: (GOOD.get(n) or GOOD["id"])[0] for n in contract.column_names}
        lines = []
        for name in contract.column_names:
            for value in ODD:
                lines.append(json.dumps({**base, name: value}))
            for raw in RAW_ODD:
                key = raw.split('"')[1]
                rest = json.dumps({k: v for k, v in base.items() if k != key})
                lines.append(rest[:-1] + ("," if rest != "{}" else "") + raw + "}")
        lines += [json.dumps(base)] * 5
        # one block per line (a refused block would hide the rest), as the whole block at the end
        for line in lines:
            _agree(contract, [line, json.dumps(base)])
        assert _agree(contract, [json.dumps(base)] * 3).vectorised == 3, which


def test_a_block_pyarrow_refuses_goes_to_the_record_path(contracts: dict[str, Contract]) -> None:
    contract = contracts["batch"]
    lines = ['{"id":"a","n":1}', '{"id":"a","n":"1"}', '{"id":"b","id":"c"}', "not json", '{"id":"c"}']
    verdict = _agree(contract, lines)
    assert verdict.vectorised == 0
    assert verdict.valid.to_pylist() == [0, 4]


def test_block_reader_lines_skip_blank_lines(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    chunk = _json_block(b'{"id":"a"}\r\n\n   \n{"id":"b"}\n', 10, contracts["batch"])
    assert chunk.lines.to_pylist() == [11, 14]
    assert chunk.raws.to_pylist() == ['{"id":"a"}', '{"id":"b"}']


def test_block_lines_are_the_record_readers(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    """Line numbers and raw text as the record reader has them: indented records, lines of white
    space alone, CRLF, and a last line without its newline."""
    contract = contracts["batch"]
    body = b'  {"id":"a"}\n\t\n\x0b\x0c\n{"id":"b"}\r\n\r\n \t{"id":"c"} \n\n{"id":"c","n":1}'
    path = tmp_path / "p_1.ndjson"
    path.write_bytes(body)
    assert contract.file is not None
    chunks = list(read_ndjson(path, None, contract, contract.file))
    chunk = _json_block(body, 0, contract)
    assert chunk.lines.to_pylist() == [p for c in chunks for p in c.positions] == [1, 4, 6, 8]
    assert chunk.raws.to_pylist() == [r for c in chunks for r in c.raws]
    assert _agree(contract, body.decode().split("\n")[:1]).vectorised == 1


def test_a_line_longer_than_a_piece_of_the_json_reader(contracts: dict[str, Contract]) -> None:
    contract = contracts["batch"]
    long = '{"id":"a",' + " " * (_JSON_READ_BYTES + 10) + '"n":1}'
    assert _agree(contract, ['{"id":"b"}', long, '{"id":"c"}']).vectorised == 3


def test_the_json_reader_piece_holds_the_longest_line_within_int32() -> None:
    import pyarrow.json as pajson

    for longest in (0, 10, _JSON_READ_BYTES, 3 << 30):
        piece = _piece(longest)
        pajson.ReadOptions(block_size=piece)  # pyarrow takes an int32
        assert min(longest + 1, (1 << 31) - 1) <= piece <= (1 << 31) - 1

"""Property test: for typed rows (Parquet), the vectorised path and the record path
(RecordValidator.validate_objects) agree on every row: verdict, values, errors."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakestack.contracts.arrow import records_to_arrow
from lakestack.contracts.batch import load_batch_contract
from lakestack.contracts.jsonschema import load_event_contract
from lakestack.contracts.model import Contract
from lakestack.contracts.validate import RecordValidator
from lakestack.contracts.vector import ColumnValidator
from lakestack.ingest.readers import read_parquet
from lakestack.ingest.vectorised import read_parquet_columns

BATCH = """\
source: p
version: 1
file: {pattern: "p_*.parquet", format: parquet}
columns:
  - {name: id, type: string, nullable: false, regex: "^[a-c]", max_length: 4}
  - {name: n, type: integer, min: -5, max: 1000}
  - {name: x, type: double, min: -1.5}
  - {name: amount, type: "decimal(5,2)", min: 0}
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
    },
}
UTC = dt.UTC
# (Arrow type, values) per column: each column's type is drawn, then its values
CHOICES: dict[str, list[tuple[pa.DataType, list[Any]]]] = {
    "id": [(pa.string(), ["a1", "b", "cccc", "ccccc", "d", "", None]), (pa.large_string(), ["a", "z"])],
    "n": [
        (pa.int64(), [0, 12, -5, -6, 1000, 1001, None]),
        (pa.int8(), [1, -5, 100, None]),
        (pa.uint64(), [1, 2**63 + 5]),
        (pa.float64(), [1.0, 2.5]),
        (pa.bool_(), [True]),
    ],
    "x": [
        (pa.float64(), [0.5, -1.5, -2.0, 1e300, float("nan"), float("inf"), -0.0, None]),
        (pa.float32(), [0.1, -1.5, 3.0]),
        (pa.int64(), [1, 2]),
    ],
    "amount": [
        (pa.decimal128(5, 2), [Decimal("12.50"), Decimal("0"), Decimal("-1.00"), None]),
        (pa.decimal128(10, 1), [Decimal("12.5"), Decimal("123456789.0")]),
        (pa.decimal128(10, 4), [Decimal("1.5000"), Decimal("1.2345")]),
        (pa.string(), ["12.50"]),
    ],
    "flag": [(pa.bool_(), [True, False, None]), (pa.int64(), [1, 0])],
    "day": [
        (pa.date32(), [dt.date(2026, 1, 31), None]),
        (pa.date64(), [dt.date(2024, 2, 29)]),
        (pa.string(), ["2026-01-31"]),
    ],
    "at": [
        (pa.timestamp("us", tz="UTC"), [dt.datetime(2026, 1, 31, 10, tzinfo=UTC), None]),
        (pa.timestamp("ms", tz="Europe/Paris"), [dt.datetime(2026, 1, 31, 10, tzinfo=UTC)]),
        (pa.timestamp("us"), [dt.datetime(2026, 1, 31, 10)]),
        (pa.timestamp("ns", tz="UTC"), [dt.datetime(2026, 1, 31, 10, tzinfo=UTC)]),
        (pa.string(), ["2026-01-31T10:00:00Z"]),
    ],
}


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Contract]:
    folder = tmp_path_factory.mktemp("c")
    (folder / "p.v1.yaml").write_text(BATCH)
    (folder / "e.v1.json").write_text(json.dumps(EVENT))
    return {
        "batch": load_batch_contract(folder / "p.v1.yaml", "p", 1, "p.v1.yaml"),
        "event": load_event_contract(folder / "e.v1.json", "e", 1, "e.v1.json"),
    }


def _agree(contract: Contract, table: pa.Table) -> None:
    verdict = ColumnValidator(contract).validate("objects", table, pa.nulls(table.num_rows, pa.string()))
    expected = RecordValidator(contract).validate_objects(table.to_pylist())
    assert verdict.valid.to_pylist() == expected.valid_positions
    typed = records_to_arrow(expected.valid, contract)
    assert verdict.typed.schema == typed.schema
    assert repr(verdict.typed.to_pylist()) == repr(typed.to_pylist())  # repr: -0.0 is not 0.0 here
    assert verdict.invalid == expected.invalid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.sampled_from(["batch", "event"]), count=st.integers(1, 8))
def test_vectorised_and_record_paths_agree_on_typed_rows(
    contracts: dict[str, Contract], data: st.DataObject, which: str, count: int
) -> None:
    contract = contracts[which]
    columns = {}
    for name in contract.column_names:
        kind, values = data.draw(st.sampled_from(CHOICES[name]))
        columns[name] = pa.array([data.draw(st.sampled_from(values)) for _ in range(count)], kind)
    _agree(contract, pa.table(columns))


def test_reader_renders_raw_rows_as_the_record_reader(contracts: dict[str, Contract], tmp_path: Path) -> None:
    contract = contracts["batch"]
    assert contract.file is not None
    table = pa.table({name: pa.array(CHOICES[name][0][1][:2], CHOICES[name][0][0]) for name in contract.column_names})
    path = tmp_path / "p_1.parquet"
    pq.write_table(table, path)
    fast = list(read_parquet_columns(path, None, contract, contract.file))
    exact = list(read_parquet(path, None, contract, contract.file))
    assert [c.lines.to_pylist() for c in fast] == [c.positions for c in exact]
    assert [c.raws.to_pylist() for c in fast] == [c.raws for c in exact]

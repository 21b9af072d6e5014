"""Every validation rule, on JSON records and on text rows, with exact paths and rules."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lakestack.contracts.batch import load_batch_contract
from lakestack.contracts.jsonschema import load_event_contract
from lakestack.contracts.model import Contract
from lakestack.contracts.validate import MAX_DEPTH, RecordValidator

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "ts", "page"],
    "properties": {
        "id": {"type": "string", "minLength": 3, "maxLength": 8, "pattern": "^e"},
        "ts": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 10},
        "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "amount": {"type": "number", "x-lakestack-type": "decimal(6,2)", "minimum": 0},
        "kind": {"type": "string", "enum": ["a", "b"]},
        "level": {"type": "integer", "enum": [1, 2, 3]},
        "flag": {"type": "boolean"},
        "email": {"type": "string", "format": "email"},
        "uid": {"type": "string", "format": "uuid"},
        "page": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {"url": {"type": "string", "format": "uri"}, "ref": {"type": ["string", "null"]}},
        },
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 2}, "minItems": 1, "maxItems": 2},
        "meta": {"type": "object"},
    },
}
VALID: dict[str, Any] = {"id": "e-1", "ts": "2026-01-01T10:00:00Z", "page": {"url": "https://x.io/a"}}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> RecordValidator:
    path: Path = tmp_path_factory.mktemp("c") / "ev.v1.json"
    path.write_text(json.dumps(SCHEMA))
    return RecordValidator(load_event_contract(path, "ev", 1, "ev.v1.json"))


def _issues(validator: RecordValidator, doc: Any) -> list[tuple[str, str]]:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    outcome = validator.validate_json([raw])
    if outcome.valid:
        return []
    return [(i.path, i.rule) for i in outcome.invalid[0][1]]


CASES = [
    ({}, [("$.id", "required"), ("$.ts", "required"), ("$.page", "required")]),
    ({"id": None}, [("$.id", "not_null")]),
    ({"id": 5}, [("$.id", "type")]),
    ({"id": "e"}, [("$.id", "min_length")]),
    ({"id": "e123456789"}, [("$.id", "max_length")]),
    ({"id": "x-1"}, [("$.id", "pattern")]),
    ({"ts": "2026-01-01T10:00:00"}, [("$.ts", "type")]),
    ({"ts": "2026-13-45T99:00:00Z"}, [("$.ts", "type")]),
    ({"ts": 1767261600}, [("$.ts", "type")]),
    ({"day": "2026-02-30"}, [("$.day", "type")]),
    ({"n": 0}, [("$.n", "minimum")]),
    ({"n": 11}, [("$.n", "maximum")]),
    ({"n": 1.5}, [("$.n", "type")]),
    ({"n": True}, [("$.n", "type")]),
    ({"x": 0}, [("$.x", "exclusive_minimum")]),
    ({"x": 1}, [("$.x", "exclusive_maximum")]),
    ({"amount": 1.234}, [("$.amount", "scale")]),
    ({"amount": 12345.5}, [("$.amount", "precision")]),
    ({"amount": -1}, [("$.amount", "minimum")]),
    ({"kind": "c"}, [("$.kind", "enum")]),
    ({"level": 4}, [("$.level", "enum")]),
    ({"flag": "true"}, [("$.flag", "type")]),
    ({"email": "not-an-email"}, [("$.email", "format")]),
    ({"uid": "1234"}, [("$.uid", "format")]),
    ({"page": {"url": "no scheme"}}, [("$.page.url", "format")]),
    ({"page": {}}, [("$.page.url", "required")]),
    ({"page": {"url": "https://x", "zz": 1}}, [("$.page.zz", "unknown_field")]),
    ({"page": "x"}, [("$.page", "type")]),
    ({"tags": []}, [("$.tags", "min_items")]),
    ({"tags": ["a", "b", "c"]}, [("$.tags", "max_items")]),
    ({"tags": ["abc"]}, [("$.tags[0]", "max_length")]),
    ({"tags": "a"}, [("$.tags", "type")]),
    ({"other": 1}, [("$.other", "unknown_field")]),
]


@pytest.mark.parametrize(("patch", "expected"), CASES, ids=[str(c[0])[:40] for c in CASES])
def test_each_rule_is_reported_with_path_and_rule(
    events: RecordValidator, patch: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    doc = {**VALID, **patch} if patch else {}
    assert _issues(events, doc) == expected


def test_a_valid_record_passes_with_typed_values(events: RecordValidator) -> None:
    doc = {
        **VALID,
        "n": None,
        "amount": 12.5,
        "kind": "a",
        "level": 2,
        "flag": True,
        "email": "a@b.io",
        "uid": "123e4567-e89b-12d3-a456-426614174000",
        "tags": ["ab"],
        "meta": {"free": [1, 2]},
        "day": "2026-01-02",
    }
    outcome = events.validate_json([json.dumps(doc).encode()])
    assert outcome.invalid == []
    record = outcome.valid[0]
    assert record.amount == Decimal("12.5")
    assert record.ts.utcoffset().total_seconds() == 0


def test_every_error_of_one_record_is_listed(events: RecordValidator) -> None:
    doc = {"id": "x", "ts": "nope", "page": {"url": 3}, "kind": "z", "extra": True}
    assert _issues(events, doc) == [
        ("$.id", "min_length"),
        ("$.id", "pattern"),
        ("$.ts", "type"),
        ("$.kind", "enum"),
        ("$.page.url", "type"),
        ("$.extra", "unknown_field"),
    ]


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b'{"id": "e-1", "ts": "2026-01-01T10:00:00Z"', "json"),
        (b"not json", "json"),
        (b'{"id": "e-1", "ts": "2026-01-01T10:00:00Z", "page": {"url": "https://x"}, "x": NaN}', "json"),
        (b'{"id": "e-1", "ts": "2026-01-01T10:00:00Z", "page": {"url": "https://x"}, "x": 1e400}', "type"),
        (b'{"id": "e-1", "id": "e-2", "ts": "2026-01-01T10:00:00Z", "page": {"url": "https://x"}}', "duplicate_key"),
        (b'{"id": "e-1" , "id" : "e-2", "ts": "2026-01-01T10:00:00Z", "page": {"url": "https://x"}}', "duplicate_key"),
        (b'{"id": "\xff\xfe", "ts": "2026-01-01T10:00:00Z", "page": {"url": "https://x"}}', "encoding"),
        (b'{"id": "e-\\ud800x", "ts": "2026-01-01T10:00:00Z", "page": {"url": "https://x"}}', "encoding"),
        (b'{"meta": ' + b'{"a": ' * (MAX_DEPTH + 5) + b"1" + b"}" * (MAX_DEPTH + 5) + b"}", "max_depth"),
        (b"[" * 100_000 + b"]" * 100_000, "max_depth"),
    ],
)
def test_bad_json_is_rejected_at_ingress(events: RecordValidator, raw: bytes, rule: str) -> None:
    outcome = events.validate_json([raw])
    assert outcome.valid == []
    assert rule in [i.rule for i in outcome.invalid[0][1]]


def test_oversized_record_is_rejected_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "ev.v1.json"
    path.write_text(json.dumps(SCHEMA))
    validator = RecordValidator(load_event_contract(path, "ev", 1, "ev"), max_record_bytes=100)
    outcome = validator.validate_json([json.dumps({**VALID, "id": "e" + "x" * 200}).encode()])
    assert [i.rule for i in outcome.invalid[0][1]] == ["max_record_bytes"]


def test_positions_of_valid_and_invalid_records_are_kept(events: RecordValidator) -> None:
    raws = [json.dumps(VALID).encode(), b"{", json.dumps(VALID).encode(), json.dumps({**VALID, "n": 0}).encode()]
    outcome = events.validate_json(raws)
    assert outcome.valid_positions == [0, 2]
    assert [i for i, _ in outcome.invalid] == [1, 3]


# -- text rows (CSV) -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    from tests_support import ORDERS

    path: Path = tmp_path_factory.mktemp("b") / "orders.v1.yaml"
    path.write_text(ORDERS)
    return load_batch_contract(path, "orders", 1, "orders.v1.yaml")


def _row(contract: Contract, values: dict[str, str | None]) -> list[str | None]:
    return [values.get(name) for name in contract.column_names]


GOOD_ROW = {
    "order_id": "ORD-0001",
    "qty": "2",
    "price": "9.99",
    "currency": "USD",
    "order_ts": "2026-01-01 10:00:00",
    "paid": "true",
    "ship_date": "2026-01-03",
    "weight": "1.5",
}

ROW_CASES = [
    ({"order_id": None}, [("$.order_id", "not_null")]),
    ({"order_id": "ORD-1"}, [("$.order_id", "pattern")]),
    ({"qty": "two"}, [("$.qty", "type")]),
    ({"qty": "2.5"}, [("$.qty", "type")]),
    ({"qty": "0"}, [("$.qty", "minimum")]),
    ({"qty": "101"}, [("$.qty", "maximum")]),
    ({"price": "abc"}, [("$.price", "type")]),
    ({"price": "-1.00"}, [("$.price", "minimum")]),
    ({"price": "1.999"}, [("$.price", "scale")]),
    ({"price": "NaN"}, [("$.price", "type")]),
    ({"currency": "JPY"}, [("$.currency", "enum")]),
    ({"order_ts": "2026-13-45T99:00:00"}, [("$.order_ts", "type")]),
    ({"paid": "maybe"}, [("$.paid", "type")]),
    ({"ship_date": "2026-02-30"}, [("$.ship_date", "type")]),
    ({"weight": "inf"}, [("$.weight", "type")]),
    ({"weight": "heavy"}, [("$.weight", "type")]),
    ({"note": "x" * 11}, [("$.note", "max_length")]),
    ({"note": "a"}, [("$.note", "min_length")]),
]


@pytest.mark.parametrize(("patch", "expected"), ROW_CASES, ids=[str(c[0])[:40] for c in ROW_CASES])
def test_text_rows_report_each_rule(orders: Contract, patch: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    outcome = RecordValidator(orders).validate_rows([_row(orders, {**GOOD_ROW, **patch})])
    assert outcome.valid == []
    assert [(i.path, i.rule) for i in outcome.invalid[0][1]] == expected


def test_text_rows_convert_to_types(orders: Contract) -> None:
    second_row = {**GOOD_ROW, "paid": None, "order_ts": "2026-01-01T10:00:00+02:00"}
    outcome = RecordValidator(orders).validate_rows([_row(orders, GOOD_ROW), _row(orders, second_row)])
    assert outcome.invalid == []
    first, second = outcome.valid
    assert (first.qty, first.price, first.paid, first.weight) == (2, Decimal("9.99"), True, 1.5)
    assert first.order_ts.tzinfo is None  # naive text timestamps are read as UTC when written to Arrow
    assert second.order_ts.utcoffset().total_seconds() == 7200

"""Property test: the fast path accepts a record exactly when the exhaustive walk finds no issue."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakestack.contracts.jsonschema import load_event_contract
from lakestack.contracts.validate import RecordValidator

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "ts"],
    "properties": {
        "id": {"type": "string", "minLength": 2, "maxLength": 6, "pattern": "^[a-c]"},
        "ts": {"type": "string", "format": "date-time"},
        "n": {"type": ["integer", "null"], "minimum": -5, "maximum": 5},
        "x": {"type": "number", "exclusiveMinimum": 0},
        "amount": {"type": "number", "x-lakestack-type": "decimal(5,2)", "maximum": 100},
        "kind": {"type": "string", "enum": ["a", "b"]},
        "flag": {"type": "boolean"},
        "page": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {"url": {"type": "string", "maxLength": 4}},
        },
        "tags": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 2},
    },
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10),
    st.floats(-200, 200, allow_nan=False),
    st.sampled_from(
        ["a", "b", "c", "ab", "abcdefg", "zz", "2026-01-01T10:00:00Z", "2026-01-01T10:00:00", "12.5", "1.005", "http"]
    ),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(["url", "zz"]), scalars, max_size=2)
)
documents = st.dictionaries(st.sampled_from([*SCHEMA["properties"], "other"]), values, max_size=9)  # type: ignore[list-item]


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(doc=documents)
def test_fast_path_and_error_walk_agree(tmp_path: Path, doc: dict[str, object]) -> None:
    path = tmp_path / "p.v1.json"
    if not path.exists():
        path.write_text(json.dumps(SCHEMA))
    validator = RecordValidator(load_event_contract(path, "p", 1, "p"))
    raw = json.dumps(doc).encode()
    outcome = validator.validate_json([raw])
    issues = validator.explain_json(raw, None)
    if outcome.valid:
        assert issues == [], f"accepted but the walk found {issues}"
    else:
        assert issues, f"rejected ({outcome.invalid[0][1]}) but the walk found nothing"

"""Regular-expression denial of service: contract regexes run on RE2 (linear time), so a pattern that
makes Python's backtracking `re` run for minutes checks a long value in milliseconds; syntax RE2
cannot run (backreferences, lookaround) is refused when the contract loads, naming where."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CLICKS_CONTRACT, ORDERS_CONTRACT, ORDERS_HEADER
from lakestack import Lake
from security_support import lake_fingerprint, run_capped

Land = Callable[[str, str, "str | bytes"], Path]
ROW_TAIL = ",2,9.99,USD,2026-01-01 10:00:00,"
BOUND_S = 45  # a backtracking engine needs hours on these values; RE2 needs milliseconds

# pattern → (value, lands?) rows; the non-matching values are the ones that make `re` backtrack.
CASES = {
    "^(a+)+$": [("a" * 40 + "!", False), ("a" * 5000 + "!", False), ("a" * 40, True)],
    "(a|aa)+$": [("a" * 40 + "!", False), ("a" * 5000 + "!", False), ("b" + "a" * 40, True)],
    "(.*a){20}": [("a" * 19 + "b" * 5000, False), ("ab" * 20, True)],
}


def _orders_contract(project: Path, regex: str) -> None:
    text = ORDERS_CONTRACT.replace('regex: "^ORD-[0-9]{4}$"', f"regex: {json.dumps(regex)}")
    assert text != ORDERS_CONTRACT
    (project / "contracts" / "orders.v1.yaml").write_text(text)


def _ingest(project: Path) -> dict[str, dict[str, int]]:
    started = time.monotonic()
    out = run_capped("ingest", "--json", cwd=project, timeout=120)
    assert out.code == 0, out.output
    assert time.monotonic() - started < BOUND_S
    report = json.loads(out.stdout)
    return {s["source"]: s for s in report["sources"]}


@pytest.mark.parametrize("pattern", list(CASES))
def test_pathological_contract_regex_finishes_fast(project: Path, land: Land, pattern: str) -> None:
    _orders_contract(project, pattern)
    rows = CASES[pattern]
    land("orders", "orders_20260101.csv", ORDERS_HEADER + "".join(f"{v}{ROW_TAIL}\n" for v, _ in rows))
    orders = _ingest(project)["orders"]
    expected_landed = sum(1 for _, lands in rows if lands)
    assert (orders["rows_in"], orders["landed"], orders["quarantined"]) == (
        len(rows),
        expected_landed,
        len(rows) - expected_landed,
    )
    again = run_capped("ingest", "--json", cwd=project, timeout=120)  # a later run does not hang either
    assert again.code == 0, again.output


def test_pathological_json_schema_pattern_top_level_and_nested(project: Path, land: Land) -> None:
    contract = json.loads(json.dumps(CLICKS_CONTRACT))
    contract["properties"]["event_id"]["pattern"] = "^(a+)+$"
    contract["properties"]["page"]["properties"]["url"]["pattern"] = "(a|aa)+$"
    contract["properties"]["items"]["items"]["pattern"] = "^(a+)+$"
    (project / "contracts" / "clicks.v1.json").write_text(json.dumps(contract))
    evil = "a" * 3000 + "!"
    records = [
        {"event_id": evil, "ts": "2026-01-01T00:00:00Z", "kind": "view"},  # top level misses
        {"event_id": "aaa", "ts": "2026-01-01T00:00:00Z", "kind": "view", "page": {"url": evil}},  # nested
        {"event_id": "aaa", "ts": "2026-01-01T00:00:00Z", "kind": "view", "items": ["aa", evil]},  # list item
        {"event_id": "aaa", "ts": "2026-01-01T00:00:00Z", "kind": "buy", "page": {"url": "xa"}, "items": ["a"]},
    ]
    land("clicks", "clicks_20260101.ndjson", "".join(json.dumps(r) + "\n" for r in records))
    clicks = _ingest(project)["clicks"]
    assert (clicks["rows_in"], clicks["landed"], clicks["quarantined"]) == (4, 1, 3)
    rows = Lake.open(project).read("quarantine.clicks").sort_by("_source_line").to_pylist()
    paths = [[(e["path"], e["rule"]) for e in r["_errors"]] for r in rows]
    assert paths == [[("$.event_id", "pattern")], [("$.page.url", "pattern")], [("$.items[1]", "pattern")]]


@pytest.mark.parametrize(
    ("regex", "why"),
    [
        ("(a)\\1", "backreferences are not supported"),
        ("(?=ORD)ORD-[0-9]+", "lookahead and lookbehind are not supported"),
        ("(?<!x)ORD", "lookahead and lookbehind are not supported"),
        ("ORD-[0-9]++", "possessive quantifiers are not supported"),
        ("ORD\\Z", "write \\z for the end of the text"),
        ("a{1001}", "invalid repetition size"),
        ("(ORD", "missing )"),
    ],
)
def test_batch_regex_re2_cannot_run_is_refused_at_load(project: Path, land: Land, regex: str, why: str) -> None:
    _orders_contract(project, regex)
    land("orders", "orders_20260101.csv", ORDERS_HEADER + "ORD-0001" + ROW_TAIL + "\n")
    before = lake_fingerprint(project)
    out = run_capped("ingest", cwd=project, timeout=120)
    assert out.code == 2, out.output
    text = " ".join(out.output.split())
    assert "contracts/orders.v1.yaml:10" in text, text
    assert "columns.0.regex" in text and "RE2" in text and why in text, text
    assert lake_fingerprint(project) == before


def test_json_schema_pattern_re2_cannot_run_is_refused_with_its_pointer(project: Path) -> None:
    contract = json.loads(json.dumps(CLICKS_CONTRACT))
    contract["properties"]["page"]["properties"]["url"]["pattern"] = "^(?!javascript:).*"
    (project / "contracts" / "clicks.v1.json").write_text(json.dumps(contract))
    out = run_capped("ingest", "clicks", cwd=project, timeout=120)
    assert out.code == 2, out.output
    text = " ".join(out.output.split())
    assert "clicks.v1.json" in text and "/properties/page/properties/url/pattern" in text, text
    assert "lookahead and lookbehind are not supported" in text, text

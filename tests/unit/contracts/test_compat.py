"""Compatibility verdicts: a table of contract changes, each with the verdict expected under every mode.

Every case writes two real contract files (v1, v2), loads them with the registry and compares them;
the expected kinds and verdicts are written down here by hand, from the rules in contracts/compat.py's
docstring (readers project fields by name and must accept every value the other version allows).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestack.contracts import ContractRegistry
from lakestack.contracts.compat import check_history, compare
from lakestack.errors import ContractError

BATCH: dict[str, Any] = {
    "source": "t",
    "version": 1,
    "compatibility": "backward",
    "key": ["id"],
    "event_time": "ts",
    "strict": True,
    "file": {"pattern": "t_{date:%Y%m%d}.csv", "format": "csv"},
    "columns": [
        {"name": "id", "type": "string", "nullable": False},
        {"name": "ts", "type": "timestamp", "nullable": False},
        {"name": "region", "type": "string", "nullable": False},
        {"name": "qty", "type": "integer", "min": 1, "max": 100},
        {"name": "price", "type": "decimal(10,2)"},
        {"name": "status", "type": "string", "enum": ["a", "b", "c"]},
        {"name": "code", "type": "string", "regex": "^[A-Z]+$", "max_length": 10},
        {"name": "email", "type": "string", "pii": "email"},
        {"name": "note", "type": "string"},
    ],
}

EVENT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "x-lakestack-key": ["event_id"],
    "required": ["event_id", "page"],
    "properties": {
        "event_id": {"type": "string", "format": "uuid"},
        "user": {"type": "string", "format": "email"},
        "page": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {"url": {"type": "string"}, "title": {"type": ["string", "null"]}},
        },
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}},
        "score": {"type": "integer"},
    },
}

Edit = Callable[[dict[str, Any]], None]


def col(column: str, /, **changes: Any) -> Edit:
    """Change (or with `_drop`, remove) one column of a batch contract."""

    def edit(doc: dict[str, Any]) -> None:
        for i, c in enumerate(doc["columns"]):
            if c["name"] == column:
                if changes.get("_drop"):
                    del doc["columns"][i]
                    return
                c.update(changes)
                for k in [k for k, v in c.items() if v is None]:
                    del c[k]
                return
        raise AssertionError(f"no column {column}")

    return edit


def add(**column: Any) -> Edit:
    return lambda doc: doc["columns"].append(column)


def top(**changes: Any) -> Edit:
    return lambda doc: doc.update(changes)


def prop(path: str, value: Any, required: bool | None = None) -> Edit:
    """Set (or with value None, remove) an event property at `a/b` (nested objects)."""

    def edit(doc: dict[str, Any]) -> None:
        *parents, name = path.split("/")
        node = doc
        for p in parents:
            node = node["properties"][p]
        if value is None:
            del node["properties"][name]
        else:
            node["properties"][name] = value
        req = [r for r in node.get("required", []) if r != name or value is not None]
        if required is True and name not in req:
            req.append(name)
        if required is False and name in req:
            req.remove(name)
        node["required"] = req

    return edit


# (case, contract kind, edits to v2, edits to v1 first, expected kinds, breaks (backward, forward, full))
CASES: list[tuple[str, str, list[Edit], list[Edit], set[str], tuple[bool, ...]]] = [
    ("add optional column", "batch", [add(name="channel", type="string")], [], {"field_added"}, (False, False, False)),
    (
        "add required column",
        "batch",
        [add(name="channel", type="string", nullable=False)],
        [],
        {"required_field_added"},
        (True, False, True),
    ),
    (
        "add optional column to an open (non-strict) contract",
        "batch",
        [add(name="channel", type="string")],
        [top(strict=False)],
        {"field_added"},
        (True, False, True),
    ),
    ("remove optional column", "batch", [col("note", _drop=True)], [], {"field_removed"}, (False, False, False)),
    (
        "remove required column",
        "batch",
        [col("region", _drop=True)],
        [],
        {"required_field_removed"},
        (False, True, True),
    ),
    (
        "widen decimal precision",
        "batch",
        [col("price", type="decimal(12,2)")],
        [],
        {"type_widened"},
        (False, True, True),
    ),
    (
        "narrow decimal precision",
        "batch",
        [col("price", type="decimal(8,2)")],
        [],
        {"type_narrowed"},
        (True, False, True),
    ),
    ("change decimal scale", "batch", [col("price", type="decimal(10,3)")], [], {"type_changed"}, (True, True, True)),
    ("integer to double", "batch", [col("qty", type="double")], [], {"type_changed"}, (True, True, True)),
    ("string to integer", "batch", [col("note", type="integer")], [], {"type_changed"}, (True, True, True)),
    ("int to long is the same type", "batch", [col("qty", type="long")], [col("qty", type="int")], set(), (False,) * 3),
    ("nullable to required", "batch", [col("note", nullable=False)], [], {"made_required"}, (True, False, True)),
    ("required to nullable", "batch", [col("region", nullable=True)], [], {"made_optional"}, (False, True, True)),
    (
        "enum value added",
        "batch",
        [col("status", enum=["a", "b", "c", "d"])],
        [],
        {"enum_values_added"},
        (False, True, True),
    ),
    ("enum value removed", "batch", [col("status", enum=["a", "b"])], [], {"enum_values_removed"}, (True, False, True)),
    ("enum dropped (any value)", "batch", [col("status", enum=None)], [], {"enum_values_added"}, (False, True, True)),
    ("key changed", "batch", [top(key=["id", "region"])], [], {"key_changed"}, (True, True, True)),
    (
        "event time changed",
        "batch",
        [add(name="ts2", type="timestamp"), top(event_time="ts2")],
        [],
        {"field_added", "event_time_changed"},
        (True, True, True),
    ),
    ("minimum raised", "batch", [col("qty", min=5)], [], {"bound_tightened"}, (True, False, True)),
    ("maximum raised", "batch", [col("qty", max=1000)], [], {"bound_loosened"}, (False, True, True)),
    ("maximum removed", "batch", [col("qty", max=None)], [], {"bound_loosened"}, (False, True, True)),
    ("max_length lowered", "batch", [col("code", max_length=5)], [], {"bound_tightened"}, (True, False, True)),
    ("min_length added", "batch", [col("note", min_length=2)], [], {"bound_tightened"}, (True, False, True)),
    ("regex added", "batch", [col("note", regex="^[a-z]+$")], [], {"bound_tightened"}, (True, False, True)),
    ("regex removed", "batch", [col("code", regex=None)], [], {"bound_loosened"}, (False, True, True)),
    ("regex changed", "batch", [col("code", regex="^[A-Z0-9]+$")], [], {"pattern_changed"}, (True, True, True)),
    ("pii class changed", "batch", [col("email", pii="other")], [], {"pii_changed"}, (False, False, False)),
    ("pii class added", "batch", [col("note", pii="name")], [], {"pii_changed"}, (False, False, False)),
    (
        "rename with renamed_from",
        "batch",
        [col("region", name="area", renamed_from="region")],
        [],
        {"field_renamed"},
        (False, True, True),
    ),
    (
        "rename without renamed_from",
        "batch",
        [col("region", name="area")],
        [],
        {"required_field_removed", "required_field_added"},
        (True, True, True),
    ),
    (
        "rename and widen",
        "batch",
        [col("price", name="amount", renamed_from="price", type="decimal(14,2)")],
        [],
        {"field_renamed", "type_widened"},
        (False, True, True),
    ),
    ("strict to open", "batch", [top(strict=False)], [], {"strictness_changed"}, (False, False, False)),
    ("open to strict", "batch", [top(strict=True)], [top(strict=False)], {"strictness_changed"}, (True, False, True)),
    (
        "file pattern changed",
        "batch",
        [top(file={"pattern": "t2_*.csv", "format": "csv"})],
        [],
        {"file_changed"},
        (False,) * 3,
    ),
    ("mode changed", "batch", [top(compatibility="full")], [], {"compatibility_changed"}, (False,) * 3),
    ("description only", "batch", [col("note", description="free text")], [], set(), (False,) * 3),
    (
        "nested optional property added",
        "event",
        [prop("page/referrer", {"type": "string"})],
        [],
        {"field_added"},
        (False, False, False),
    ),
    (
        "nested required property removed",
        "event",
        [prop("page/url", None)],
        [],
        {"required_field_removed"},
        (False, True, True),
    ),
    (
        "required property becomes nullable",
        "event",
        [prop("page", {**EVENT["properties"]["page"], "type": ["object", "null"]}, required=True)],
        [],
        {"made_nullable"},
        (False, True, True),
    ),
    (
        "optional property becomes required",
        "event",
        [prop("score", {"type": "integer"}, required=True)],
        [],
        {"made_required"},
        (True, False, True),
    ),
    (
        "string format changed",
        "event",
        [prop("user", {"type": "string", "format": "uri"})],
        [],
        {"format_changed"},
        (True, True, True),
    ),
    ("string format dropped", "event", [prop("user", {"type": "string"})], [], {"bound_loosened"}, (False, True, True)),
    (
        "list item bound tightened",
        "event",
        [prop("tags", {"type": "array", "items": {"type": "string", "maxLength": 10}})],
        [],
        {"bound_tightened"},
        (True, False, True),
    ),
    (
        "json object to struct",
        "event",
        [prop("score", {"type": "object", "properties": {"v": {"type": "integer"}}})],
        [prop("score", {"type": "object"})],
        {"type_changed"},
        (True, True, True),
    ),
]


def _write(folder: Path, kind: str, version: int, doc: dict[str, Any]) -> None:
    if kind == "batch":
        (folder / f"t.v{version}.yaml").write_text(yaml.safe_dump({**doc, "version": version}))
    else:
        (folder / f"t.v{version}.json").write_text(json.dumps(doc))


def _registry(tmp_path: Path, kind: str, v1_edits: list[Edit], v2_edits: list[Edit]) -> ContractRegistry:
    folder = tmp_path / "contracts"
    folder.mkdir()
    base = copy.deepcopy(BATCH if kind == "batch" else EVENT)
    for edit in v1_edits:
        edit(base)
    new = copy.deepcopy(base)
    for edit in v2_edits:
        edit(new)
    _write(folder, kind, 1, base)
    _write(folder, kind, 2, new)
    return ContractRegistry.load(folder, tmp_path)


def test_the_table_has_at_least_twenty_changes() -> None:
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("case", "kind", "v2", "v1", "kinds", "breaks"), CASES, ids=[c[0] for c in CASES])
def test_verdict_under_every_mode(
    tmp_path: Path,
    case: str,
    kind: str,
    v2: list[Edit],
    v1: list[Edit],
    kinds: set[str],
    breaks: tuple[bool, ...],
) -> None:
    registry = _registry(tmp_path, kind, v1, v2)
    old, new = registry.get("t.v1"), registry.get("t.v2")
    assert {c.kind for c in compare(old, new).changes} == kinds
    for mode, expected in zip(("backward", "forward", "full", "none"), (*breaks, False), strict=True):
        verdict = compare(old, new, mode)
        assert verdict.compatible is not expected, (mode, [c.to_dict(mode) for c in verdict.changes])
        transitive = compare(old, new, f"{mode}_transitive") if mode != "none" else verdict
        assert transitive.compatible is verdict.compatible
    for change in compare(old, new).changes:
        assert change.path and change.reason and (change.old or change.new)


def test_a_change_names_its_path_and_both_sides(tmp_path: Path) -> None:
    registry = _registry(tmp_path, "event", [], [prop("page/url", {"type": "string", "maxLength": 100})])
    [change] = compare(registry.get("t.v1"), registry.get("t.v2")).changes
    assert (change.path, change.kind, change.old, change.new) == ("page.url", "bound_tightened", None, "maxLength 100")
    assert change.breaking("backward") and not change.breaking("forward")


def test_transitive_checks_every_earlier_version(tmp_path: Path) -> None:
    """v1→v2 drops an optional column, v2→v3 adds it back as another type: each step is backward
    compatible, but v3 cannot read v1's data, which only the transitive mode sees."""
    folder = tmp_path / "contracts"
    folder.mkdir()
    v1 = copy.deepcopy(BATCH)
    v2 = copy.deepcopy(v1)
    col("note", _drop=True)(v2)
    for mode, expected in (("backward", True), ("backward_transitive", False)):
        v3 = copy.deepcopy(v2)
        add(name="note", type="integer")(v3)
        v3["compatibility"] = mode
        for version, doc in ((1, v1), (2, v2), (3, v3)):
            _write(folder, "batch", version, doc)
        results = check_history(ContractRegistry.load(folder, tmp_path).history("t"))
        assert [(r.old.version, r.new.version) for r in results] == ([(2, 3)] if expected else [(2, 3), (1, 3)])
        assert all(r.compatible for r in results) is expected


def test_single_version_has_nothing_to_check(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    _write(folder, "batch", 1, BATCH)
    assert check_history(ContractRegistry.load(folder, tmp_path).history("t")) == []


def test_renamed_from_a_column_that_still_exists_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="renamed from 'note', which is still a column"):
        _registry(tmp_path, "batch", [], [add(name="memo", type="string", renamed_from="note")])


def test_event_contract_reads_renamed_from(tmp_path: Path) -> None:
    registry = _registry(
        tmp_path,
        "event",
        [],
        [prop("score", None), prop("points", {"type": "integer", "x-lakestack-renamed-from": "score"})],
    )
    kinds = [c.kind for c in compare(registry.get("t.v1"), registry.get("t.v2")).changes]
    assert kinds == ["field_renamed"]


def test_records_of_a_previous_version_take_the_newest_columns(tmp_path: Path) -> None:
    import pyarrow as pa

    from lakestack.contracts.arrow import as_version

    registry = _registry(
        tmp_path,
        "batch",
        [],
        [
            col("region", name="area", renamed_from="region"),
            col("note", _drop=True),
            add(name="channel", type="string"),
        ],
    )
    old, new = registry.get("t.v1"), registry.get("t.v2")
    price = pa.array([Decimal("1.5")], pa.decimal128(10, 2))
    typed = pa.table({"id": ["a"], "region": ["EU"], "note": ["kept in _raw"], "price": price})
    out = as_version(typed, old, new)
    assert out.column_names == list(new.column_names)
    row = out.to_pylist()[0]
    assert (row["id"], row["area"], row["channel"], row["price"]) == ("a", "EU", None, Decimal("1.50"))
    numeric = replace(new, fields=(replace(new.field("id"), type="integer"),))
    with pytest.raises(ValueError, match=r"'id' of t\.v1 does not fit t\.v2's integer"):
        as_version(pa.table({"id": ["x"]}), old, numeric)


@pytest.mark.parametrize(("value", "ok"), [("2026-03-01", True), ("next week", False), (20260301, False)])
def test_accept_previous_until_is_a_date(tmp_path: Path, value: Any, ok: bool) -> None:
    doc = {**EVENT, "x-lakestack-accept-previous-until": value}
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "t.v1.json").write_text(json.dumps(doc))
    if ok:
        assert str(ContractRegistry.load(folder, tmp_path).get("t").accept_previous_until) == value
    else:
        with pytest.raises(ContractError, match="x-lakestack-accept-previous-until is a date"):
            ContractRegistry.load(folder, tmp_path)


def test_the_previous_version_is_accepted_until_the_window_closes(tmp_path: Path) -> None:
    from datetime import date

    from lakestack.ingest.versions import accepted_previous

    registry = _registry(tmp_path, "batch", [], [top(accept_previous_until="2026-03-01")])
    versions = registry.history("t")
    assert accepted_previous(versions, date(2026, 3, 1)) is versions[0]
    assert accepted_previous(versions, date(2026, 3, 2)) is None
    assert accepted_previous(versions[:1], date(2026, 1, 1)) is None

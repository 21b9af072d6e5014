"""Drafting an event contract (JSON Schema 2020-12, `contracts/<source>.v1.json`) from NDJSON records.

The same rules as batch drafts (contracts/infer.py): the dominant JSON type per property, a few
values of another type are defects (quarantined, and said), a key in only a few records is an
unknown field the contract refuses (`additionalProperties: false`), nested objects and arrays are
described property by property.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lakestack.contracts.infer import (
    _PII_NAMES,
    MISSING,
    NULL_TOLERANCE,
    TOLERANCE,
    UUID,
    ColumnDraft,
    Draft,
    Sample,
    _email_regex,
    _enum,
    _id_like,
    _outliers,
    _shape_regex,
    _text_type,
    _uuid_regex,
    _zone_note,
)

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
_FORMAT_OF = {"timestamp": "date-time", "date": "date"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "null"


def _property(path: str, values: Sequence[Any], notes: list[str]) -> tuple[dict[str, Any], bool]:
    """The schema of one property over its values (MISSING: the key is absent), and whether required."""
    present = [v for v in values if v is not MISSING and v is not None]
    missing = len(values) - len(present)
    kinds = Counter(_kind(v) for v in present)
    if kinds.get("integer") and kinds.get("number"):
        kinds = Counter({**kinds, "number": kinds["number"] + kinds.pop("integer")})
    kind = kinds.most_common(1)[0][0] if kinds else "string"
    fits: list[Any] = []
    bad: list[Any] = []
    for v in present:
        (fits if _kind(v) == kind or (kind == "number" and _kind(v) == "integer") else bad).append(v)
    if bad:
        notes.append(f"{path}: " + _outliers(bad, len(present), f"{kind}s"))
    schema = _typed(path, kind, fits, notes)
    leaf = path.rpartition(".")[2]
    tolerance = TOLERANCE if _id_like(leaf) else NULL_TOLERANCE
    required = missing <= tolerance * len(values)
    if missing and required:
        notes.append(f"{path}: missing in {missing:,} of {len(values):,} records: required (quarantined)")
    if not required and any(v is None for v in values):
        schema["type"] = [schema["type"], "null"]
    if leaf.lower() in _PII_NAMES:
        schema["x-lakestack-pii"] = _PII_NAMES[leaf.lower()]
    return schema, required


def _typed(path: str, kind: str, values: Sequence[Any], notes: list[str]) -> dict[str, Any]:
    if kind == "object":
        return _object(path, values, notes)
    if kind == "array":
        return _array(path, values, notes)
    schema: dict[str, Any] = {"type": kind}
    if kind in ("integer", "number") and values and min(values) >= 0:
        schema["minimum"] = 0
        notes.append(f"{path}: minimum 0 (no negative value seen)")
    if kind == "string" and values:
        schema |= _string(path, values, notes)
    return schema


def _string(path: str, values: Sequence[str], notes: list[str]) -> dict[str, Any]:
    found: list[str] = []
    text_kind, more = _text_type(values)
    if text_kind in _FORMAT_OF:
        notes += [f"{path}: {n}" for n in more if n]
        if text_kind == "timestamp":
            notes.append(f"{path}: {_zone_note(values)}")
        return {"format": _FORMAT_OF[text_kind]}
    enum = _enum(Counter(values), len(values), found)
    if enum is not None:
        notes += [f"{path}: {n}" for n in found]
        return {"enum": list(enum)}
    uuid = _uuid_regex(values, found)
    if uuid is not None:
        notes += [f"{path}: {n}" for n in found]
        return {"format": "uuid"} if uuid == UUID and len(found) == 1 else {"pattern": uuid}
    regex = _shape_regex(values, found) or _email_regex(values, found)
    notes += [f"{path}: {n}" for n in found]
    return {"pattern": regex} if regex else {}


def _object(path: str, values: Sequence[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """Properties in first-seen order; one present in at most TOLERANCE of the records (and fewer
    than a tenth of the next rarest) is an unknown field: left out, so the contract refuses it."""
    seen: Counter[str] = Counter()
    for v in values:
        seen.update(v.keys())
    rare = _rare_keys(seen, len(values))
    for key in rare:
        notes.append(
            f"{_join(path, key)}: present in only {seen[key]:,} of {len(values):,} records: left out "
            "(an unknown field: those records will be quarantined)"
        )
    properties, required = {}, []
    for key in seen:
        if key in rare:
            continue
        schema, needed = _property(_join(path, key), [v.get(key, MISSING) for v in values], notes)
        properties[key] = schema
        if needed:
            required.append(key)
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def _rare_keys(seen: Counter[str], total: int) -> set[str]:
    ranked = sorted(seen.values())
    common = [n for n in ranked if n > TOLERANCE * total]
    floor = min(common) if common else 0
    return {k for k, n in seen.items() if n <= TOLERANCE * total and n * 10 < floor}


def _array(path: str, values: Sequence[list[Any]], notes: list[str]) -> dict[str, Any]:
    items = [x for v in values for x in v]
    schema: dict[str, Any] = {"type": "array"}
    if items:
        item, _ = _property(f"{path}[]", items, notes)
        schema["items"] = item
    lengths = sorted(len(v) for v in values)
    regular = lengths[: max(1, int(len(lengths) * (1 - TOLERANCE)))]
    longest = regular[-1] if regular else 0
    bound = max(10, 2 * longest)
    over = [n for n in lengths if n > bound]
    if over and lengths[-1] > 4 * max(longest, 1):
        schema["maxItems"] = bound
        notes.append(f"{path}: maxItems {bound} (guessed: {len(over):,} records hold more, up to {lengths[-1]})")
    return schema


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def event_draft(source: str, pattern: str, sample: Sample, notes: list[str]) -> Draft:
    """The JSON Schema draft for NDJSON records (`sample.columns`: property → values, MISSING when absent)."""
    records = [dict(zip(sample.columns, row, strict=True)) for row in zip(*sample.columns.values(), strict=True)]
    records = [{k: v for k, v in r.items() if v is not MISSING} for r in records]
    found: list[str] = []
    top = _object("", records, found)
    props, required = top["properties"], top["required"]
    key = _event_key(props, required, sample)
    event_time = next((k for k, s in props.items() if s.get("format") in ("date-time", "date")), None)
    notes = [*notes, f"key [{key}] (guessed: unique in the sample)" if key else "no key found: set one for Silver"]
    if event_time:
        notes.append(f"event_time {event_time} (the first timestamp or date property)")
    doc: dict[str, Any] = {
        "$schema": SCHEMA_URI,
        "title": source,
        "description": f"Drafted by `lakestack contracts infer` from {sample.rows:,} records "
        f"of {len(sample.names)} file(s); review the guesses it printed.",
        "type": "object",
        "additionalProperties": False,
    }
    if key:
        doc["x-lakestack-key"] = [key]
    if event_time:
        doc["x-lakestack-event-time"] = event_time
    doc |= {"x-lakestack-compatibility": "backward", "x-lakestack-file": {"pattern": pattern, "format": "ndjson"}}
    doc |= {"required": required, "properties": props}
    columns = tuple(ColumnDraft(k, _type_name(s), k not in required) for k, s in props.items())
    draft = Draft(source, "ndjson", pattern, columns, (key,) if key else (), event_time, (), ",", "utf-8",
                  sample.rows, len(sample.names), tuple([*notes, *found]), kind="event")  # fmt: skip
    return replace(draft, text=json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def _event_key(props: dict[str, Any], required: list[str], sample: Sample) -> str | None:
    for name in required:
        if (name == "id" or name.endswith("_id")) and props[name].get("type") in ("string", "integer"):
            values = [v for v in sample.columns[name] if v is not MISSING]
            if len(set(map(str, values))) == len(values):
                return name
    return None


def _type_name(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    return str(schema.get("format", kind)) if kind == "string" else str(kind)

"""JSON Schema 2020-12 event contracts → :class:`Contract`.

Only the keywords lakestack can enforce are accepted; anything else (`oneOf`, `$ref`,
`patternProperties`, ...) is refused when the contract loads, so no rule is silently ignored.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from lakestack.contracts.model import (
    COMPATIBILITY,
    FORMATS,
    MAX_ENUM,
    MAX_NESTING,
    PII_CLASSES,
    Constraints,
    Contract,
    CsvOptions,
    Field,
    FileSpec,
    parse_type,
)
from lakestack.errors import ContractError, Location

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly"}
_COMMON = {"type", "enum", "const", "x-lakestack-pii", "x-lakestack-type", "x-lakestack-renamed-from"} | _ANNOTATIONS
_BY_TYPE = {
    "string": {"minLength", "maxLength", "pattern", "format"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "boolean": set(),
    "object": {"properties", "required", "additionalProperties"},
    "array": {"items", "minItems", "maxItems"},
}
_TOP_LEVEL = {
    "x-lakestack-key",
    "x-lakestack-event-time",
    "x-lakestack-compatibility",
    "x-lakestack-accept-previous-until",
    "x-lakestack-file",
    "x-lakestack-owner",
}
_FORMATS = {"date-time": "timestamp", "date": "date"}
_STRING_FORMATS = ("email", "uuid", "uri")


class _Loader:
    def __init__(self, display: str) -> None:
        self.display = display

    def fail(self, message: str, pointer: str) -> ContractError:
        return ContractError(message, Location(self.display, key=pointer or "/"))

    def field(self, name: str, schema: Any, pointer: str, required: bool) -> Field:
        if not isinstance(schema, dict):
            raise self.fail("a property schema must be an object", pointer)
        if pointer.count("/properties/") + pointer.count("/items") > MAX_NESTING:
            raise self.fail(f"objects and arrays nest deeper than {MAX_NESTING} levels", pointer)
        type_name, nullable = self._type(schema, pointer)
        allowed = _COMMON | _BY_TYPE[type_name]
        for key in schema:
            if key not in allowed:
                where = f"{pointer}/{key}"
                if key in _BY_TYPE.get(type_name, set()) or any(key in v for v in _BY_TYPE.values()):
                    raise self.fail(f"'{key}' does not apply to type '{type_name}'", where)
                raise self.fail(f"keyword '{key}' is not supported by lakestack contracts", where)
        pii = schema.get("x-lakestack-pii")
        if pii is not None and pii not in PII_CLASSES:
            raise self.fail(f"unknown PII class '{pii}' (expected one of: {', '.join(PII_CLASSES)})", pointer)
        renamed_from = schema.get("x-lakestack-renamed-from")
        if renamed_from is not None and not isinstance(renamed_from, str):
            raise self.fail("x-lakestack-renamed-from is the property's previous name", pointer)
        common: dict[str, Any] = {
            "name": name,
            "required": required,
            "nullable": nullable,
            "pii": pii,
            "description": schema.get("description"),
            "renamed_from": renamed_from,
        }
        if type_name == "object":
            return self._object(schema, pointer, common)
        if type_name == "array":
            if "items" not in schema:
                raise self.fail("an array needs 'items'", pointer)
            items = self.field("item", schema["items"], f"{pointer}/items", required=True)
            c = Constraints(min_items=schema.get("minItems"), max_items=schema.get("maxItems"))
            return Field(type="list", items=items, constraints=c, **common)
        kind, precision, scale = self._scalar(schema, type_name, pointer)
        return Field(
            type=kind, precision=precision, scale=scale, constraints=self._constraints(schema, pointer), **common
        )

    def _type(self, schema: dict[str, Any], pointer: str) -> tuple[str, bool]:
        declared = schema.get("type")
        types = declared if isinstance(declared, list) else [declared]
        nullable = "null" in types
        rest = [t for t in types if t != "null"]
        if declared is None or len(rest) != 1 or rest[0] not in _BY_TYPE:
            raise self.fail(
                "each property needs one 'type' (string, integer, number, boolean, object, array), "
                'optionally with "null"',
                pointer,
            )
        return str(rest[0]), nullable

    def _scalar(self, schema: dict[str, Any], type_name: str, pointer: str) -> tuple[str, int | None, int | None]:
        override = schema.get("x-lakestack-type")
        if override is not None:
            try:
                kind, precision, scale = parse_type(str(override))
            except ValueError as exc:
                raise self.fail(str(exc), f"{pointer}/x-lakestack-type") from None
            if kind != "decimal" or type_name not in ("number", "string"):
                raise self.fail("x-lakestack-type only turns a number or string into decimal(P,S)", pointer)
            return kind, precision, scale
        fmt = schema.get("format")
        if type_name == "string" and fmt is not None:
            if fmt in _FORMATS:
                return _FORMATS[fmt], None, None
            if fmt not in _STRING_FORMATS:
                raise self.fail(
                    f"format '{fmt}' is not supported (expected one of: date-time, date, {', '.join(_STRING_FORMATS)})",
                    f"{pointer}/format",
                )
        return (
            {"string": "string", "integer": "integer", "number": "double", "boolean": "boolean"}[type_name],
            None,
            None,
        )

    def _constraints(self, schema: dict[str, Any], pointer: str) -> Constraints:
        enum = schema.get("enum")
        if "const" in schema:
            enum = [schema["const"]]
        if enum is not None and (not isinstance(enum, list) or not enum):
            raise self.fail("'enum' must be a non-empty list", f"{pointer}/enum")
        if enum is not None and len(enum) > MAX_ENUM:
            raise self.fail(_enum_too_long(len(enum)), f"{pointer}/enum")
        num = {k: _number(schema.get(k)) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")}
        for k in ("minLength", "maxLength"):
            if k in schema and (not isinstance(schema[k], int) or schema[k] < 0):
                raise self.fail(f"'{k}' must be a non-negative integer", f"{pointer}/{k}")
        pattern = schema.get("pattern")
        if pattern is not None:
            _check_regex(pattern, lambda msg: self.fail(msg, f"{pointer}/pattern"))
        fmt = schema.get("format")
        return Constraints(
            enum=tuple(enum) if enum is not None else None,
            minimum=num["minimum"],
            maximum=num["maximum"],
            exclusive_minimum=num["exclusiveMinimum"],
            exclusive_maximum=num["exclusiveMaximum"],
            pattern=pattern,
            min_length=schema.get("minLength"),
            max_length=schema.get("maxLength"),
            format=fmt if fmt in _STRING_FORMATS else None,
        )

    def _object(self, schema: dict[str, Any], pointer: str, common: dict[str, Any]) -> Field:
        props = schema.get("properties")
        extra = schema.get("additionalProperties", True)
        if not isinstance(extra, bool):
            raise self.fail(
                "additionalProperties must be true or false (schemas there are not supported)",
                f"{pointer}/additionalProperties",
            )
        if not props:
            return Field(type="json", **common)
        fields = self.fields(schema, pointer)
        return Field(
            type="struct", fields=fields, constraints=Constraints(format="strict" if not extra else None), **common
        )

    def fields(self, schema: dict[str, Any], pointer: str) -> tuple[Field, ...]:
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise self.fail("'properties' must be an object", f"{pointer}/properties")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise self.fail("'required' must be a list of property names", f"{pointer}/required")
        for r in required:
            if r not in props:
                raise self.fail(f"'{r}' is required but not among the properties", f"{pointer}/required")
        return tuple(self.field(n, s, f"{pointer}/properties/{n}", n in required) for n, s in props.items())


def _enum_too_long(count: int) -> str:
    return (
        f"an enum of {count:,} values; at most {MAX_ENUM:,} (check a longer list against a table "
        "with a referential_integrity check)"
    )


def _number(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a bound must be a number")
    return Decimal(str(value))


def _check_regex(pattern: str, fail: Any) -> None:
    from lakestack.contracts.regex import problem

    why = problem(pattern)
    if why is not None:
        raise fail(why)


def load_event_contract(path: Path, source: str, version: int, display: str) -> Contract:
    """Read a `contracts/<source>.v<N>.json` file."""
    from lakestack._yaml import MAX_YAML_BYTES, read_capped

    text = read_capped(path, MAX_YAML_BYTES, ContractError, display)  # the same size cap as YAML contracts
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"invalid JSON: {exc.msg}", Location(display, exc.lineno, exc.colno)) from None
    except RecursionError:
        raise ContractError("invalid JSON: nested too deeply", Location(display)) from None
    loader = _Loader(display)
    if not isinstance(doc, dict) or doc.get("type") != "object":
        raise loader.fail("an event contract is a JSON Schema whose top-level 'type' is \"object\"", "/")
    schema_uri = doc.get("$schema")
    if schema_uri is not None and schema_uri.rstrip("#") != SCHEMA_URI:
        raise loader.fail(f"only JSON Schema 2020-12 is supported ($schema: {SCHEMA_URI})", "/$schema")
    for key in doc:
        if key.startswith("x-lakestack-") and key not in _TOP_LEVEL | {"x-lakestack-pii", "x-lakestack-type"}:
            raise loader.fail(
                f"unknown lakestack keyword '{key}' (expected one of: {', '.join(sorted(_TOP_LEVEL))})", f"/{key}"
            )
        if key not in _TOP_LEVEL and key not in _COMMON | _BY_TYPE["object"]:
            raise loader.fail(f"keyword '{key}' is not supported by lakestack contracts", f"/{key}")
    try:
        fields = loader.fields(doc, "")
    except ValueError as exc:
        raise loader.fail(str(exc), "/") from None
    extra = doc.get("additionalProperties", True)
    if not isinstance(extra, bool):
        raise loader.fail("additionalProperties must be true or false", "/additionalProperties")
    return Contract(
        source=source,
        version=version,
        kind="event",
        fields=fields,
        key=_key(doc, loader),
        event_time=doc.get("x-lakestack-event-time"),
        compatibility=_compat(doc.get("x-lakestack-compatibility", "backward"), loader),
        accept_previous_until=_until(doc.get("x-lakestack-accept-previous-until"), loader),
        strict=not extra,
        file=_file_spec(doc.get("x-lakestack-file"), loader),
        description=doc.get("description"),
        owner=doc.get("x-lakestack-owner"),
        path=display,
    )


def _key(doc: dict[str, Any], loader: _Loader) -> tuple[str, ...]:
    key = doc.get("x-lakestack-key", [])
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        raise loader.fail("x-lakestack-key is a property name or a list of them", "/x-lakestack-key")
    return tuple(key)


def _compat(value: Any, loader: _Loader) -> str:
    if value not in COMPATIBILITY:
        raise loader.fail(f"compatibility must be one of: {', '.join(COMPATIBILITY)}", "/x-lakestack-compatibility")
    return str(value)


def _until(value: Any, loader: _Loader) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise loader.fail("x-lakestack-accept-previous-until is a date (YYYY-MM-DD)", "/x-lakestack-accept-previous-until")


def _file_spec(value: Any, loader: _Loader) -> FileSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"pattern", "format"} or "pattern" not in value:
        raise loader.fail('x-lakestack-file is {"pattern": ..., "format": "ndjson"}', "/x-lakestack-file")
    fmt = value.get("format", "ndjson")
    if fmt not in FORMATS or fmt == "csv":
        raise loader.fail("event files are ndjson or parquet", "/x-lakestack-file/format")
    return FileSpec(pattern=value["pattern"], format=fmt, csv=CsvOptions())

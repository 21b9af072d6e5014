"""Per-record contract validation: a compiled fast path and an exhaustive error report.

Valid records take the fast path: one `msgspec` decode into a Struct type compiled from the
contract (types, enums, ranges and lengths are checked in C), plus what msgspec cannot express:
decimal precision, duplicate keys, and regexes, matched a column at a time on RE2 (linear time;
msgspec's own `pattern` would run Python's backtracking `re`, see contracts/regex.py). Only a
record that fails is walked again in Python to list *every* error with its JSON path and rule.
The fast path decides validity; the slow path only explains, so the two can never disagree about
which records land.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import msgspec

from lakestack.contracts import regex
from lakestack.contracts.model import INT64_MAX, INT64_MIN, Contract, Field

FLOAT_MAX = 1.7976931348623157e308
MAX_DEPTH = 64
FORMAT_PATTERNS = {
    "email": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "uri": r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$",
}
_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Issue:
    """One broken rule of one record: where (`$.page.url`), which rule, and why."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


@dataclass(slots=True)
class Outcome:
    """Valid records (typed, in input order) and the positions of invalid ones with their issues."""

    valid: list[Any]
    valid_positions: list[int]
    invalid: list[tuple[int, list[Issue]]]


def _patterns(field: Field) -> tuple[str, ...]:
    """The regexes a string value must match: the contract's pattern and its format's."""
    c = field.constraints
    if field.type != "string":
        return ()
    fmt = FORMAT_PATTERNS.get(c.format or "")
    return tuple(p for p in (c.pattern, fmt) if p is not None)


def _scalar_type(field: Field, mode: str) -> Any:
    c = field.constraints
    if field.type == "string":
        if c.enum is not None and _all_str(c.enum):
            return Literal[tuple(c.enum)]
        meta = msgspec.Meta(min_length=c.min_length, max_length=c.max_length)  # patterns: _column_pass
        return Annotated[str, meta]
    if field.type == "integer":
        return Annotated[int, msgspec.Meta(**_bounds(c, INT64_MIN, INT64_MAX, int))]
    if field.type == "double":
        return Annotated[float, msgspec.Meta(**_bounds(c, -FLOAT_MAX, FLOAT_MAX, float))]
    if field.type == "timestamp":
        return Annotated[dt.datetime, msgspec.Meta(tz=True)] if mode == "event" else dt.datetime
    return {"boolean": bool, "date": dt.date, "decimal": Decimal, "json": Any}[field.type]


def _bounds(c: Any, lowest: Any, highest: Any, cast: Any) -> dict[str, Any]:
    """msgspec bounds: the tighter of the contract's bound and the type's range (which also rejects NaN/inf)."""
    low = _bound(c.minimum, c.exclusive_minimum, lowest, cast, "ROUND_CEILING", max, ("ge", "gt"))
    high = _bound(c.maximum, c.exclusive_maximum, highest, cast, "ROUND_FLOOR", min, ("le", "lt"))
    return {**low, **high}


def _bound(
    inclusive: Decimal | None,
    exclusive: Decimal | None,
    limit: Any,
    cast: Any,
    rounding: str,
    tighter: Any,
    names: tuple[str, str],
) -> dict[str, Any]:
    """One side of a range; integer bounds round inward so `minimum: 1.5` means `>= 2`."""

    def convert(value: Decimal, rounding: str) -> Any:
        return float(value) if cast is float else int(value.to_integral_value(rounding))

    if exclusive is not None:
        outward = "ROUND_FLOOR" if rounding == "ROUND_CEILING" else "ROUND_CEILING"
        return {names[1]: convert(exclusive, outward)}
    return {names[0]: tighter(limit, convert(inclusive, rounding)) if inclusive is not None else limit}


def _field_type(field: Field, mode: str, names: Iterable[str]) -> Any:
    if field.type == "struct":
        base: Any = compile_struct(
            field.fields, mode, strict=field.constraints.format == "strict", name="_".join((*names, field.name))
        )
    elif field.type == "list":
        assert field.items is not None
        item = _field_type(field.items, mode, (*names, field.name))
        c = field.constraints
        base = Annotated[list[item], msgspec.Meta(min_length=c.min_items, max_length=c.max_items)]  # type: ignore[valid-type]
    else:
        base = _scalar_type(field, mode)
    return base | None if field.nullable else base


def compile_struct(
    fields: Sequence[Field], mode: str, *, strict: bool, name: str = "Record", array_like: bool = False
) -> type:
    """A msgspec Struct type that decodes exactly the records the fields allow (decimal bounds aside).

    Absent optional keys decode to UNSET, so duplicate keys can be detected by counting. With
    `array_like`, records are lists in the contract's column order (rows of a CSV file).
    """
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in fields:
        typ = _field_type(f, mode, (name,))
        if f.required and not array_like:  # array-like rows always carry every column
            spec.append((f.name, typ))
        else:
            spec.append((f.name, typ | msgspec.UnsetType, msgspec.UNSET))
    return msgspec.defstruct(name, spec, forbid_unknown_fields=strict, kw_only=not array_like, array_like=array_like)


class RecordValidator:
    """Validates records against one contract: JSON documents, rows of text (CSV) or typed rows."""

    def __init__(self, contract: Contract, *, max_record_bytes: int = 8 * 1024 * 1024) -> None:
        self.contract = contract
        self.max_record_bytes = max_record_bytes
        mode = "event" if contract.kind == "event" else "batch"
        self._text_mode = mode == "batch"
        self._json_type = compile_struct(contract.fields, mode, strict=contract.strict)
        self._text_type = compile_struct(contract.fields, "batch", strict=False, array_like=True)
        self._decode: Callable[[bytes], Any] = msgspec.json.Decoder(self._json_type).decode
        self._post = _post_checks(contract.fields)
        self._decimals = [f for f in contract.fields if f.type == "decimal"]
        self._patterned = [(f.name, _patterns(f)) for f in contract.fields if _patterns(f)]
        self._nested = _key_counter(contract.fields) if any(_has_objects(f) for f in contract.fields) else None
        self._nfields = len(contract.fields)
        self._names = contract.column_names

    # -- JSON documents ------------------------------------------------------------------------
    def validate_json(self, raws: Sequence[bytes]) -> Outcome:
        """Validate JSON documents (one record each, as bytes)."""
        decode, post, limit = self._decode, self._post, self.max_record_bytes
        astuple, unset, nfields, nested = msgspec.structs.astuple, msgspec.UNSET, self._nfields, self._nested
        spaced = _SPACED_KEY
        valid: list[Any] = []
        positions: list[int] = []
        invalid: list[tuple[int, list[Issue]]] = []
        for i, raw in enumerate(raws):
            if len(raw) > limit:
                invalid.append(
                    (i, [Issue("$", "max_record_bytes", f"record is {len(raw):,} bytes; the limit is {limit:,}")])
                )
                continue
            try:
                record = decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                invalid.append((i, self.explain_json(raw, exc)))
                continue
            # Every key is followed by `":` unless whitespace sits before the colon; when the count
            # of `":` equals the keys decoded, no key can have appeared twice.
            present = nested(record) if nested else nfields - astuple(record).count(unset)
            if raw.count(b'":') != present or spaced(raw) is not None or (post is not None and not post(record)):
                issues = self.explain_json(raw, None)
                if issues:
                    invalid.append((i, issues))
                    continue
            valid.append(record)
            positions.append(i)
        return self._column_pass(Outcome(valid, positions, invalid), lambda i: self.explain_json(raws[i], None))

    def explain_json(self, raw: bytes, exc: BaseException | None) -> list[Issue]:
        """Every issue of one JSON record (the slow, exhaustive walk)."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return [Issue("$", "encoding", f"not valid UTF-8 ({err.reason} at byte {err.start})")]
        duplicates: list[Issue] = []
        try:
            doc = json.loads(text, object_pairs_hook=_pairs_hook(duplicates), parse_constant=_reject_constant)
        except RecursionError:
            return [Issue("$", "max_depth", f"nesting deeper than {MAX_DEPTH} levels")]
        except (json.JSONDecodeError, ValueError) as err:
            return [Issue("$", "json", f"invalid JSON: {err}")]
        if _depth(doc) > MAX_DEPTH:
            return [Issue("$", "max_depth", f"nesting deeper than {MAX_DEPTH} levels")]
        issues = duplicates + _check_fields(
            self.contract.fields, doc, "$", self.contract.strict, text=False, tz=not self._text_mode
        )
        if not issues and exc is not None:
            issues.append(_from_msgspec(exc))
        return issues

    # -- rows of text (CSV) --------------------------------------------------------------------
    def validate_rows(self, rows: Sequence[list[str | None]]) -> Outcome:
        """Validate rows of text values in the contract's column order (None for an empty field)."""
        convert, typ, post = msgspec.convert, self._text_type, self._post
        valid: list[Any] = []
        positions: list[int] = []
        invalid: list[tuple[int, list[Issue]]] = []
        for i, row in enumerate(rows):
            try:
                record: Any = convert(row, typ, strict=False)
            except msgspec.ValidationError as exc:
                invalid.append((i, self.explain_row(row, exc)))
                continue
            if post is not None and not post(record):
                issues = self.explain_row(row, None)
                if issues:
                    invalid.append((i, issues))
                    continue
            valid.append(record)
            positions.append(i)
        return self._column_pass(Outcome(valid, positions, invalid), lambda i: self.explain_row(rows[i], None))

    def explain_row(self, row: list[str | None], exc: BaseException | None) -> list[Issue]:
        doc = dict(zip(self._names, row, strict=True))
        issues = _check_fields(self.contract.fields, doc, "$", False, text=True, tz=False)
        if not issues and exc is not None:
            issues.append(_from_msgspec(exc))
        return issues

    # -- typed objects (Parquet rows) -----------------------------------------------------------
    def validate_objects(self, rows: Sequence[dict[str, Any]]) -> Outcome:
        """Validate rows of Python values (as read from a typed file such as Parquet)."""
        convert, typ, post = msgspec.convert, self._json_type, self._post
        valid: list[Any] = []
        positions: list[int] = []
        invalid: list[tuple[int, list[Issue]]] = []
        for i, row in enumerate(rows):
            try:
                record: Any = convert(row, typ, strict=True)
            except msgspec.ValidationError as exc:
                invalid.append((i, self.explain_object(row, exc)))
                continue
            if post is not None and not post(record):
                issues = self.explain_object(row, None)
                if issues:
                    invalid.append((i, issues))
                    continue
            valid.append(record)
            positions.append(i)
        return self._column_pass(Outcome(valid, positions, invalid), lambda i: self.explain_object(rows[i], None))

    def explain_object(self, row: dict[str, Any], exc: BaseException | None) -> list[Issue]:
        issues = _check_fields(self.contract.fields, row, "$", self.contract.strict, text=False, tz=not self._text_mode)
        if not issues and exc is not None:
            issues.append(_from_msgspec(exc))
        return issues

    # -- decimals and regexes, checked a column at a time ----------------------------------------
    def _column_pass(self, outcome: Outcome, explain: Callable[[int], list[Issue]]) -> Outcome:
        """Move records whose top-level decimals break scale, precision or bounds, or whose strings
        miss a pattern, to `invalid`.

        Arrow refuses a decimal that would lose scale or overflow precision, so a whole column is
        checked in one call; only a column that fails is checked value by value. Patterns run on
        RE2 over the whole column.
        """
        if not (self._decimals or self._patterned) or not outcome.valid:
            return outcome
        bad: set[int] = set()
        for f in self._decimals:
            bad |= _bad_decimals(f, [getattr(r, f.name) for r in outcome.valid])
        for name, patterns in self._patterned:
            values = [_plain_str(getattr(r, name)) for r in outcome.valid]
            for pattern in patterns:
                bad.update(regex.misses(values, pattern))
        if not bad:
            return outcome
        keep = [i for i in range(len(outcome.valid)) if i not in bad]
        moved = [(outcome.valid_positions[i], explain(outcome.valid_positions[i])) for i in sorted(bad)]
        invalid = sorted(outcome.invalid + moved, key=lambda item: item[0])
        return Outcome([outcome.valid[i] for i in keep], [outcome.valid_positions[i] for i in keep], invalid)


def _plain_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _has_objects(field: Field) -> bool:
    return field.type == "struct" or (field.type == "list" and field.items is not None and _has_objects(field.items))


def _key_counter(fields: Sequence[Field]) -> Callable[[Any], int]:
    """A function counting the keys present in a decoded record, nested objects included."""
    width = len(fields)
    structs = [(f.name, _key_counter(f.fields)) for f in fields if f.type == "struct"]
    lists = [(f.name, _item_counter(f.items)) for f in fields if f.type == "list" and f.items and _has_objects(f.items)]
    astuple, unset = msgspec.structs.astuple, msgspec.UNSET

    def count(record: Any) -> int:
        total = width - astuple(record).count(unset)
        for name, inner in structs:
            value = getattr(record, name)
            if value is not None and value is not unset:
                total += inner(value)
        for name, item in lists:
            value = getattr(record, name)
            if value:
                total += sum(item(v) for v in value if v is not None)
        return total

    return count


def _item_counter(field: Field) -> Callable[[Any], int]:
    if field.type == "struct":
        return _key_counter(field.fields)
    assert field.items is not None
    inner = _item_counter(field.items)
    return lambda values: sum(inner(v) for v in values if v is not None)


_SPACED_KEY = re.compile(rb'"[ \t\r\n]+:').search


def _bad_decimals(field: Field, values: list[Any]) -> set[int]:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = [None if v is msgspec.UNSET else v for v in values]
    try:
        column = pa.array(values, pa.decimal128(field.precision, field.scale))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return {i for i, v in enumerate(values) if v is not None and _decimal_issues(field, v, "$")}
    c = field.constraints
    masks = []
    for bound, op in (
        (c.minimum, pc.less),
        (c.maximum, pc.greater),
        (c.exclusive_minimum, pc.less_equal),
        (c.exclusive_maximum, pc.greater_equal),
    ):
        if bound is not None:
            masks.append(op(column, pa.scalar(bound, pa.decimal128(38, max(field.scale or 0, _scale(bound))))))
    bad: set[int] = set()
    for mask in masks:
        bad.update(pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist())
    return bad


def _scale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _from_msgspec(exc: BaseException) -> Issue:
    text = str(exc)
    m = _MSGSPEC_PATH.search(text)
    return Issue(m.group(1) if m else "$", "type", _MSGSPEC_PATH.sub("", text))


def _pairs_hook(duplicates: list[Issue]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                duplicates.append(Issue(f"$.{key}", "duplicate_key", f"key '{key}' appears more than once"))
            out[key] = value
        return out

    return hook


def _reject_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not valid JSON")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


# -- post checks: what msgspec cannot express --------------------------------------------------
def _post_checks(fields: Sequence[Field]) -> Callable[[Any], bool] | None:
    checks: list[Callable[[Any], bool]] = []
    for f in fields:
        if f.type == "decimal":
            continue  # checked a column at a time, see RecordValidator._decimal_pass
        if f.constraints.enum is not None and not (f.type == "string" and _all_str(f.constraints.enum)):
            checks.append(_enum_check(f.name, set(f.constraints.enum)))
        elif f.type in ("struct", "list") and _needs_post(f):
            checks.append(_nested_check(f))
    if not checks:
        return None
    return lambda record: all(check(record) for check in checks)


def _all_str(values: Sequence[Any]) -> bool:
    return all(isinstance(v, str) for v in values)


def _enum_check(name: str, allowed: set[Any]) -> Callable[[Any], bool]:
    def check(record: Any) -> bool:
        value = getattr(record, name)
        return value is None or value is msgspec.UNSET or value in allowed

    return check


def _nested_check(field: Field) -> Callable[[Any], bool]:
    def check(record: Any) -> bool:
        return not _check_value(field, _to_plain(getattr(record, field.name)), "$", False, False)

    return check


def _needs_post(field: Field) -> bool:
    if field.type == "decimal" or (field.constraints.enum is not None and field.type != "string"):
        return True
    if _patterns(field):
        return True
    children = field.fields if field.type == "struct" else ((field.items,) if field.items else ())
    return any(_needs_post(c) for c in children)


def _to_plain(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return {k: _to_plain(v) for k, v in msgspec.structs.asdict(value).items() if v is not msgspec.UNSET}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return None if value is msgspec.UNSET else value


def _decimal_issues(field: Field, value: Decimal, path: str) -> list[Issue]:
    if not value.is_finite():
        return [Issue(path, "type", f"{value} is not a finite decimal")]
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    scale = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent)
    out = []
    assert field.precision is not None and field.scale is not None
    if scale > field.scale:
        out.append(Issue(path, "scale", f"{value} has {scale} decimal places; at most {field.scale} allowed"))
    if integer_digits > field.precision - field.scale:
        out.append(Issue(path, "precision", f"{value} does not fit decimal({field.precision},{field.scale})"))
    return out + _range_issues(field, value, path)


# -- the exhaustive walk -----------------------------------------------------------------------
def _check_fields(fields: Sequence[Field], doc: Any, path: str, strict: bool, *, text: bool, tz: bool) -> list[Issue]:
    if not isinstance(doc, dict):
        return [Issue(path, "type", f"expected an object, got {_json_type(doc)}")]
    issues: list[Issue] = []
    known = set()
    for f in fields:
        known.add(f.name)
        issues += _check_value(f, doc.get(f.name, _MISSING), f"{path}.{f.name}", text, tz)
    if strict:
        issues += [
            Issue(f"{path}.{k}", "unknown_field", f"'{k}' is not in the contract") for k in doc if k not in known
        ]
    return issues


def _check_value(f: Field, value: Any, path: str, text: bool, tz: bool) -> list[Issue]:
    if value is _MISSING:
        return [Issue(path, "required", "is required")] if f.required else []
    if value is None:
        return [] if f.nullable else [Issue(path, "not_null", "must not be null")]
    if f.type == "struct":
        return _check_fields(f.fields, value, path, f.constraints.format == "strict", text=text, tz=tz)
    if f.type == "list":
        return _check_list(f, value, path, text, tz)
    try:
        typed = _coerce(f, value, text, tz)
    except _TypeProblem as problem:
        return [Issue(path, problem.rule, str(problem))]
    return _constraint_issues(f, typed, path)


def _check_list(f: Field, value: Any, path: str, text: bool, tz: bool) -> list[Issue]:
    if not isinstance(value, list):
        return [Issue(path, "type", f"expected an array, got {_json_type(value)}")]
    c, issues = f.constraints, []
    if c.min_items is not None and len(value) < c.min_items:
        issues.append(Issue(path, "min_items", f"has {len(value)} items; at least {c.min_items} required"))
    if c.max_items is not None and len(value) > c.max_items:
        issues.append(Issue(path, "max_items", f"has {len(value)} items; at most {c.max_items} allowed"))
    assert f.items is not None
    for i, item in enumerate(value):
        issues += _check_value(f.items, item, f"{path}[{i}]", text, tz)
    return issues


class _TypeProblem(Exception):
    rule = "type"


class _Encoding(_TypeProblem):
    rule = "encoding"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}.get(
        type(value), type(value).__name__
    )


def _coerce(f: Field, value: Any, text: bool, tz: bool) -> Any:
    """The typed value, or _TypeProblem saying why it is not of the field's type."""
    expected = f.type_name
    if f.type == "json":
        return value
    if text:
        return _coerce_text(f, str(value))
    if f.type == "string":
        if not isinstance(value, str):
            raise _TypeProblem(f"expected a string, got {_json_type(value)}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Encoding("contains a lone UTF-16 surrogate, which is not valid Unicode") from None
        return value
    if f.type == "boolean":
        if not isinstance(value, bool):
            raise _TypeProblem(f"expected a boolean, got {_json_type(value)}")
        return value
    if f.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _TypeProblem(f"expected an integer, got {_json_type(value)}")
        return value
    if f.type == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _TypeProblem(f"expected a number, got {_json_type(value)}")
        return value
    if f.type == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise _TypeProblem(f"expected a {expected}, got {_json_type(value)}")
        return _parse_decimal(str(value), expected)
    if f.type == "timestamp" and isinstance(value, dt.datetime):
        return value
    if f.type == "date" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise _TypeProblem(
            f"expected a {'RFC 3339 ' if f.type == 'timestamp' else 'ISO '}{f.type} string, got {_json_type(value)}"
        )
    return _parse_temporal(f.type, value, tz)


def _coerce_text(f: Field, value: str) -> Any:
    kind = f.type
    if kind == "string":
        return value
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise _TypeProblem(f"'{value}' is not a boolean (true/false)")
    if kind == "integer":
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise _TypeProblem(f"'{value}' is not an integer") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise _TypeProblem(f"'{value}' is not an integer")
        return int(number)
    if kind == "double":
        try:
            return float(value)
        except ValueError:
            raise _TypeProblem(f"'{value}' is not a number") from None
    if kind == "decimal":
        return _parse_decimal(value, f.type_name)
    return _parse_temporal(kind, value, tz=False)


def _parse_decimal(value: str, expected: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise _TypeProblem(f"'{value}' is not a {expected}") from None


def _parse_temporal(kind: str, value: str, tz: bool) -> Any:
    try:
        parsed: Any = msgspec.convert(value, dt.date if kind == "date" else dt.datetime)
    except msgspec.ValidationError:
        example = "2026-01-31" if kind == "date" else "2026-01-31T12:00:00Z"
        raise _TypeProblem(f"'{value}' is not a valid {kind} (expected like {example})") from None
    if kind == "timestamp" and tz and parsed.tzinfo is None:
        raise _TypeProblem(f"'{value}' has no UTC offset (expected like 2026-01-31T12:00:00Z)")
    return parsed


def _constraint_issues(f: Field, value: Any, path: str) -> list[Issue]:
    c = f.constraints
    issues: list[Issue] = []
    if c.enum is not None and value not in c.enum:
        shown = ", ".join(map(str, c.enum[:10])) + (", ..." if len(c.enum) > 10 else "")
        issues.append(Issue(path, "enum", f"{value!r} is not one of: {shown}"))
    if f.type == "decimal":
        return issues + _decimal_issues(f, value, path)
    if f.type in ("integer", "double"):
        if f.type == "double" and not math.isfinite(value):
            return [*issues, Issue(path, "type", f"{value} is not a finite number")]
        if f.type == "integer" and not INT64_MIN <= value <= INT64_MAX:
            issues.append(Issue(path, "range", f"{value} does not fit a 64-bit integer"))
        return issues + _range_issues(f, value, path)
    if f.type == "string":
        issues += _string_issues(f, value, path)
    return issues


def _range_issues(f: Field, value: Any, path: str) -> list[Issue]:
    c, issues = f.constraints, []
    number = Decimal(str(value)) if isinstance(value, float) else value
    if c.minimum is not None and number < c.minimum:
        issues.append(Issue(path, "minimum", f"{value} is less than the minimum {c.minimum}"))
    if c.maximum is not None and number > c.maximum:
        issues.append(Issue(path, "maximum", f"{value} is greater than the maximum {c.maximum}"))
    if c.exclusive_minimum is not None and number <= c.exclusive_minimum:
        issues.append(Issue(path, "exclusive_minimum", f"{value} must be greater than {c.exclusive_minimum}"))
    if c.exclusive_maximum is not None and number >= c.exclusive_maximum:
        issues.append(Issue(path, "exclusive_maximum", f"{value} must be less than {c.exclusive_maximum}"))
    return issues


def _string_issues(f: Field, value: str, path: str) -> list[Issue]:
    c, issues = f.constraints, []
    if c.min_length is not None and len(value) < c.min_length:
        issues.append(Issue(path, "min_length", f"is {len(value)} characters; at least {c.min_length} required"))
    if c.max_length is not None and len(value) > c.max_length:
        issues.append(Issue(path, "max_length", f"is {len(value)} characters; at most {c.max_length} allowed"))
    if c.pattern is not None and not regex.search(c.pattern, value):
        issues.append(Issue(path, "pattern", f"{value!r} does not match {c.pattern}"))
    fmt = FORMAT_PATTERNS.get(c.format or "")
    if fmt is not None and not regex.search(fmt, value):
        issues.append(Issue(path, "format", f"{value!r} is not a valid {c.format}"))
    return issues

"""Vectorised validation: a contract checked a column at a time with Arrow compute.

The record path (contracts/validate.py, :class:`RecordValidator`) is the definition of a valid
record. This path only *accepts*: a row is accepted here when every one of its values has a form
the record path certainly accepts with the same typed value (an integer `^-?(0|[1-9]\\d{0,17})$`,
a timestamp in RFC 3339 with `T`, a decimal with no more digits than its type holds, ...) and
every constraint holds (enums, bounds, lengths, RE2 patterns, nullability). Every other row (a
bad value, or only an unusual spelling such as `1e3` for an integer) is handed to the record path,
which decides and lists every error with its field. So the verdicts and errors of the two paths
are the same by construction; tests/unit/test_vectorised_properties.py checks it on generated rows.

Only flat contracts (no struct, list or json columns) are validated here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakestack.contracts.arrow import arrow_schema, arrow_type, records_to_arrow
from lakestack.contracts.csvtext import TextRules
from lakestack.contracts.model import INT64_MAX, INT64_MIN, Contract, CsvOptions, Field
from lakestack.contracts.validate import FLOAT_MAX, Issue, RecordValidator, _bounds, _patterns

SCALARS = frozenset({"string", "integer", "double", "boolean", "date", "timestamp", "decimal"})
_INTEGER = r"^-?(0|[1-9][0-9]{0,17})$"
_DOUBLE = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$"
_DATE = r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}$"
_CLOCK = r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
_ZONE = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
_BOOLEANS = {
    "true": True,
    "True": True,
    "TRUE": True,
    "1": True,
    "false": False,
    "False": False,
    "FALSE": False,
    "0": False,
}
# a key with space before its colon, or an escaped UTF-16 surrogate: the record path decides
_ODD_JSON = re.compile(rb'"[ \t\r\n]+:|\\u[dD][89a-fA-F]')
_COMPARE = (("ge", pc.greater_equal), ("gt", pc.greater), ("le", pc.less_equal), ("lt", pc.less))


@dataclass(slots=True)
class Verdict:
    """The rows of a batch that passed (typed, with the contract's schema, in input order), their
    indexes, and the indexes of the rows that failed with every issue of each."""

    typed: pa.Table
    valid: pa.Array  # int64 indexes into the batch
    invalid: list[tuple[int, list[Issue]]]
    vectorised: int  # rows accepted without the record path


def supports(contract: Contract) -> bool:
    """Whether this path can validate `contract` (flat columns of scalar types)."""
    return all(f.type in SCALARS for f in contract.fields)


class ColumnValidator:
    """Validates batches of one contract's rows held as Arrow columns."""

    def __init__(
        self, contract: Contract, validator: RecordValidator | None = None, csv: CsvOptions | None = None
    ) -> None:
        if not supports(contract):
            raise ValueError(f"{contract.ref} has nested columns; validate it record by record")
        self.contract = contract
        self.validator = validator or RecordValidator(contract)
        self.rules = TextRules(contract, csv)
        self.schema = arrow_schema(contract)

    def validate_text(self, table: pa.Table) -> Verdict:
        """Rows of CSV text: `table` holds one string column per contract column (contract order),
        each field's text as read (no nulls: null markers are applied here)."""
        fields = self.contract.fields
        texts = [self.rules.column(i, table.column(i).combine_chunks()) for i in range(len(fields))]
        ok: Any = None
        typed = []
        for f, text in zip(fields, texts, strict=True):
            values, good = _text_column(f, text)
            typed.append(values)
            ok = good if ok is None else pc.and_(ok, good)
        n = table.num_rows
        ok = _constant(True, n) if ok is None else ok

        def fallback(rows: pa.Array) -> list[list[Any]]:
            picked = [t.take(rows).to_pylist() for t in texts]
            return [list(r) for r in zip(*picked, strict=True)] if picked else [[] for _ in range(len(rows))]

        return self._merge(typed, ok, n, lambda idx: self.validator.validate_rows(fallback(idx)))

    def validate(self, kind: str, table: pa.Table | None, raws: pa.Array) -> Verdict:
        """A block of CSV rows (`kind` "text") or JSON records ("json"), with their raw text."""
        if kind == "text":
            return self.validate_text(table)
        if kind == "objects":
            return self.validate_objects(table)
        return self.validate_json(table, raws)

    def validate_objects(self, table: pa.Table) -> Verdict:
        """Typed rows (a Parquet row batch with the contract's columns). A column accepts a value
        when its Arrow type converts to the contract's without any doubt (integers of any width,
        floats, dates, timestamps in s/ms/us with a zone, or without one in a batch contract,
        decimals of no larger scale); a column of another type sends its rows to the record path."""
        n = table.num_rows
        ok: Any = _constant(True, n)
        typed = []
        event = self.contract.kind == "event"
        for f in self.contract.fields:
            values, good = _object_column(f, table.column(f.name).combine_chunks(), event)
            typed.append(values)
            ok = pc.and_(ok, good)

        def record_path(rows: pa.Array) -> Any:
            return self.validator.validate_objects(table.take(rows).to_pylist())

        return self._merge(typed, ok, n, record_path)

    def validate_json(self, table: pa.Table | None, raws: pa.Array) -> Verdict:
        """JSON records: `raws` their text, `table` their columns as pyarrow's JSON reader typed them
        with :func:`json_schema` (None when it refused the block: every record takes the record path).

        A record is accepted only when its text holds exactly one `":` per non-null value (so no key
        is repeated and none is null), no space before a colon, no escaped surrogate, and it is no
        longer than the record limit; the record path decides every other one."""
        n = len(raws)

        def record_path(rows: pa.Array) -> Any:
            return self.validator.validate_json([r.encode() for r in raws.take(rows).to_pylist()])

        fields = self.contract.fields
        if table is None:
            nothing = [pa.nulls(n, arrow_type(f)) for f in fields]
            return self._merge(nothing, _false(n), n, record_path)
        ok = pc.less_equal(pc.binary_length(raws), self.validator.max_record_bytes)
        odd, keys = _json_marks(raws)
        if odd:
            ok = pc.and_(ok, pc.invert(pc.match_substring_regex(raws, _ODD_JSON.pattern.decode())))
        present: Any = None
        typed = []
        event = self.contract.kind == "event"
        for f in fields:
            column = table.column(f.name).combine_chunks()
            values, good = _json_column(f, column, event)
            typed.append(values)
            ok = pc.and_(ok, good)
            valid = pc.cast(pc.is_valid(column), pa.int64())
            present = valid if present is None else pc.add(present, valid)
        present = pa.array(np.zeros(n, np.int64)) if present is None else present
        # Without a spaced key, each present value's key puts a `":` in its record, so no record has
        # fewer than it has values: equal sums over the block mean equal counts in every record.
        if odd or keys != (pc.sum(present).as_py() or 0):
            ok = pc.and_(ok, pc.equal(pc.count_substring(raws, '":'), present))
        return self._merge(typed, ok, n, record_path)

    def _merge(self, typed: list[pa.Array], ok: pa.Array, n: int, record_path: Any) -> Verdict:
        """The accepted rows, plus what the record path says of the rest, in input order."""
        if pc.all(ok).as_py() is not False:
            return Verdict(pa.Table.from_arrays(typed, schema=self.schema), _arange(0, n), [], n)
        accepted = pc.indices_nonzero(ok).cast(pa.int64())
        table = pa.Table.from_arrays([a.filter(ok) for a in typed], schema=self.schema)
        rest = pc.indices_nonzero(pc.invert(ok)).cast(pa.int64())
        outcome = record_path(rest)
        rescued = records_to_arrow(outcome.valid, self.contract)
        back = rest.to_pylist()
        invalid = [(back[i], issues) for i, issues in outcome.invalid]
        if not outcome.valid:
            return Verdict(table, accepted, invalid, len(accepted))
        where = pa.concat_arrays([accepted, pa.array([back[i] for i in outcome.valid_positions], pa.int64())])
        order = pc.sort_indices(where)
        merged = pa.concat_tables([table, rescued]).take(order)
        return Verdict(merged, where.take(order), invalid, len(accepted))


# -- one column of text --------------------------------------------------------------------------
def _text_column(f: Field, text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(typed values, null where the row is not accepted; whether each row's value is accepted)."""
    present = pc.is_valid(text)
    if f.type == "string":
        typed, good = text, _string_rules(f, text)
    elif f.type == "boolean":
        typed, good = _booleans(text)
    else:
        form = pc.fill_null(pc.match_substring_regex(text, _form(f)), False)
        if f.type == "double":  # the record path reads "-0" as 0.0 but "-0.0" as -0.0: leave "-0" to it
            form = pc.and_(form, pc.invert(pc.fill_null(pc.match_substring_regex(text, r"^-0([eE]|$)"), False)))
        typed = _cast(_only(form, text), f)
        good = pc.and_(form, _value_rules(f, typed))
    good = pc.fill_null(good, False)
    if f.nullable:
        good = pc.or_(good, pc.invert(present))
    return typed, good


def _json_marks(raws: pa.Array) -> tuple[bool, int]:
    """(whether any record may hold a spaced key or an escaped surrogate, the `":` in all records)
    in one numpy pass over the block's bytes: a colon after white space, or a backslash before `u`,
    makes the block odd (a superset; the regex then decides per record)."""
    data = _text_bytes(raws)
    if not len(data):
        return False, 0
    u8 = data.to_numpy(zero_copy_only=True)
    before = u8[np.flatnonzero(u8[1:] == ord(":"))]  # the byte before each colon
    odd = bool(_SPACED[before].any())
    if not odd and ord("\\") in u8[:-1]:
        slashes = np.flatnonzero(u8[:-1] == ord("\\"))
        odd = bool((u8[slashes + 1] == ord("u")).any())
    return odd, int(np.count_nonzero(before == ord('"')))


_SPACED = np.zeros(256, np.bool_)  # white space before a colon: maybe a spaced key
_SPACED[list(b" \t\r\n")] = True


def _text_bytes(raws: pa.Array) -> pa.Array:
    """The bytes of a string array's values, as uint8 (no copy)."""
    if not len(raws):
        return pa.array([], pa.uint8())
    _, offsets, data = raws.buffers()
    ends = pa.Array.from_buffers(pa.int32(), len(raws) + 1, [None, offsets], offset=raws.offset)
    start, end = ends[0].as_py(), ends[-1].as_py()
    if data is None or end <= start:
        return pa.array([], pa.uint8())
    return pa.Array.from_buffers(pa.uint8(), end - start, [None, data.slice(start, end - start)])


def json_schema(contract: Contract) -> pa.Schema:
    """What pyarrow's JSON reader is told each column holds: numbers and booleans as such, the
    rest (dates, timestamps, decimals) as the strings JSON carries them in."""
    kinds = {"integer": pa.int64(), "double": pa.float64(), "boolean": pa.bool_()}
    return pa.schema([pa.field(f.name, kinds.get(f.type, pa.string())) for f in contract.fields])


def _json_column(f: Field, column: pa.Array, event: bool) -> tuple[pa.Array, pa.Array]:
    """(typed values; whether each record's value is accepted) for one column of JSON records. A
    missing or null value is accepted only where the key may be absent (`present` counts catch an
    explicit null)."""
    if f.type == "string":
        typed, good = column, _string_rules(f, column)
    elif f.type == "boolean":
        typed, good = column, pc.is_valid(column)
    elif f.type in ("integer", "double"):
        typed, good = column, _value_rules(f, column)
        if f.type == "double":  # JSON -0 decodes to 0.0 on the record path, to -0.0 here: leave it to it
            negative_zero = pc.and_(pc.equal(column, 0.0), pc.less(pc.divide(1.0, column), 0))
            good = pc.and_(good, pc.invert(negative_zero))
    else:
        pattern = _form(f)
        if f.type == "timestamp" and event:  # an event timestamp carries its offset
            pattern = pattern.replace(")?$", ")$")
        form = pc.fill_null(pc.match_substring_regex(column, pattern), False)
        typed = _cast(_only(form, column), f)
        good = pc.and_(form, _value_rules(f, typed))
    good = pc.fill_null(good, False)
    if not f.required:
        good = pc.or_(good, pc.is_null(column))
    return typed, good


def _only(keep: pa.Array, text: pa.Array) -> pa.Array:
    """`text` where `keep` holds, null elsewhere (no copy when it holds everywhere)."""
    if pc.all(pc.or_(keep, pc.is_null(text))).as_py():  # a null stays null either way
        return text
    return pc.if_else(keep, text, pa.scalar(None, pa.string()))


def _object_column(f: Field, column: pa.Array, event: bool) -> tuple[pa.Array, pa.Array]:
    """(typed values; whether each row's value is accepted) for one typed column."""
    target, kind, n = arrow_type(f), column.type, len(column)
    fits = (
        (f.type == "string" and kind in (pa.string(), pa.large_string()))
        or (f.type == "integer" and pa.types.is_integer(kind))
        or (f.type == "double" and pa.types.is_floating(kind))
        or (f.type == "boolean" and kind == pa.bool_())
        or (f.type == "date" and pa.types.is_date(kind))
        or (
            f.type == "timestamp"
            and pa.types.is_timestamp(kind)
            and kind.unit in ("s", "ms", "us")
            and (kind.tz is not None or not event)
        )
        or (f.type == "decimal" and pa.types.is_decimal(kind) and kind.scale <= (f.scale or 0))
    )
    if not fits:
        return pa.nulls(n, target), pc.is_null(column) if f.nullable else _false(n)
    if f.type == "timestamp" and kind.tz is None:
        column = pc.assume_timezone(column, "UTC")
    values = column if column.type == target else _cast_each(column, target)
    if f.type == "string":
        good = _string_rules(f, values)
    elif f.type == "boolean":
        good = pc.is_valid(values)
    else:
        good = _value_rules(f, values)
    good = pc.fill_null(good, False)
    if f.nullable:
        good = pc.or_(good, pc.is_null(column))
    return values, good


def _arange(start: int, stop: int) -> pa.Array:
    """start, start + 1, ..., stop - 1 as int64 (numpy: no Python int per row)."""
    import numpy as np

    return pa.array(np.arange(start, stop, dtype=np.int64))


def _false(n: int) -> pa.Array:
    return _constant(False, n)


def _constant(value: bool, n: int) -> pa.Array:
    import numpy as np

    return pa.array(np.full(n, value, dtype=np.bool_))


def _form(f: Field) -> str:
    if f.type == "integer":
        return _INTEGER
    if f.type == "double":
        return _DOUBLE
    if f.type == "date":
        return _DATE
    if f.type == "timestamp":
        return _DATE[:-1] + _CLOCK + "(" + _ZONE[:-1] + ")?$"
    assert f.precision is not None and f.scale is not None
    whole = f.precision - f.scale
    integer = f"[0-9]{{1,{whole}}}" if whole else "0"
    return f"^-?{integer}" + (f"(\\.[0-9]{{1,{f.scale}}})?$" if f.scale else "$")


def _cast(text: pa.Array, f: Field) -> pa.Array:
    """Text already of the right form, as the column's type; null where Arrow refuses a value
    (31 February), which then goes to the record path."""
    # a value without an offset is UTC in a batch file; one of the form ending in Z has its offset
    if f.type == "timestamp" and not pc.all(pc.fill_null(pc.ends_with(text, "Z"), True)).as_py():
        zoned = pc.fill_null(pc.match_substring_regex(text, _ZONE), True)
        if not pc.all(zoned).as_py():
            text = pc.if_else(zoned, text, pc.binary_join_element_wise(text, pa.scalar("Z"), ""))
    return _cast_each(text, arrow_type(f))


def _cast_each(text: pa.Array, target: pa.DataType) -> pa.Array:
    """One cast of the whole column; when a value fails, halves are cast until each refused value
    stands alone (a few refused values cost a few dozen casts, not one per row)."""
    try:
        return text.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(text) == 1:
            return pa.nulls(1, target)
    half = len(text) // 2
    return pa.concat_arrays([_cast_each(text.slice(0, half), target), _cast_each(text.slice(half), target)])


def _booleans(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    words = pa.array(list(_BOOLEANS), pa.string())
    at = pc.index_in(text, value_set=words)
    typed = pa.array(list(_BOOLEANS.values()), pa.bool_()).take(at)
    return typed, pc.is_valid(at)


def _string_rules(f: Field, text: pa.Array) -> pa.Array:
    c = f.constraints
    good = pc.is_valid(text)
    if c.enum is not None:
        allowed = [v for v in c.enum if isinstance(v, str)]
        good = pc.and_(good, pc.is_in(text, value_set=pa.array(allowed, pa.string())))
    if c.min_length is not None or c.max_length is not None:
        length = pc.utf8_length(text)
        if c.min_length is not None:
            good = pc.and_(good, pc.greater_equal(length, c.min_length))
        if c.max_length is not None:
            good = pc.and_(good, pc.less_equal(length, c.max_length))
    for pattern in _patterns(f):
        good = pc.and_(good, pc.match_substring_regex(text, pattern))
    return good


def _value_rules(f: Field, typed: pa.Array) -> pa.Array:
    """Bounds and enums of a typed number, date or timestamp column (True where a value keeps them)."""
    good = pc.is_valid(typed)
    c = f.constraints
    if f.type == "integer":
        for name, op in _COMPARE:
            bound = _bounds(c, INT64_MIN, INT64_MAX, int).get(name)
            if bound is not None:
                good = pc.and_(good, op(typed, pa.scalar(bound, pa.int64())))
    elif f.type == "double":
        for name, op in _COMPARE:
            bound = _bounds(c, -FLOAT_MAX, FLOAT_MAX, float).get(name)
            if bound is not None:
                good = pc.and_(good, op(typed, pa.scalar(bound, pa.float64())))
    elif f.type == "decimal":
        good = pc.and_(good, _decimal_bounds(f, typed))
    if c.enum is not None:
        good = pc.and_(good, _enum(f, typed))
    return good


def _decimal_bounds(f: Field, typed: pa.Array) -> pa.Array:
    c = f.constraints
    good = pc.is_valid(typed)
    for bound, op in (
        (c.minimum, pc.greater_equal),
        (c.maximum, pc.less_equal),
        (c.exclusive_minimum, pc.greater),
        (c.exclusive_maximum, pc.less),
    ):
        if bound is not None:
            scale = max(f.scale or 0, _scale(bound))
            good = pc.and_(good, op(typed, pa.scalar(bound, pa.decimal128(38, scale))))
    return good


def _scale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _enum(f: Field, typed: pa.Array) -> pa.Array:
    """Membership in a non-string enum; an enum holding a value of another Python type (where
    Python's `in` compares across types) sends every row to the record path."""
    exact = {"integer": (int,), "double": (float, int), "decimal": (Decimal,)}.get(f.type)
    values: Sequence[Any] = f.constraints.enum or ()
    if exact is None or not all(type(v) in exact for v in values):
        return _false(len(typed))
    return pc.is_in(typed, value_set=pa.array(list(values), typed.type))

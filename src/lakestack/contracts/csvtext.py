"""How a CSV file spells its values: null markers, boolean words, separators and date formats.

A contract's `file.csv` section sets them for the file (`null_values`, `true_values`,
`false_values`, `thousands`, `decimal`), and a column may set its own (`null_values`,
`true_values`, `false_values`, `format`). They rewrite a field's text *before* it is validated,
the same way on both validation paths: per value in Python (:meth:`TextRules.row`, the record
path) and per column in Arrow (:meth:`TextRules.column`, the vectorised path), so the two can
never disagree. The raw record kept in Bronze and quarantine is the text as it was in the file.

Order, per value: a null marker becomes null (whatever the column's type, strings included);
then a boolean column maps its declared words to `true`/`false`; a number column drops the
thousands separator and reads the decimal separator as `.`; a date or timestamp column with a
`format` is parsed with `datetime.strptime` and rewritten in ISO form (a value that does not
match the format is left as it is, so an ISO value is still read).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lakestack.contracts.model import ColumnText, Contract, CsvOptions

_NUMBERS = ("integer", "double", "decimal")


@dataclass(frozen=True, slots=True)
class ColumnRules:
    """The spelling rules of one column, resolved from the file's and the column's options."""

    name: str
    kind: str
    nulls: frozenset[str]
    trues: frozenset[str] = frozenset()
    falses: frozenset[str] = frozenset()
    thousands: str | None = None
    decimal: str = "."
    format: str | None = None

    @property
    def rewrites(self) -> bool:
        """Whether a non-null value can change (else only null markers apply)."""
        return bool(self.trues or self.falses or self.format or self._separators)

    @property
    def _separators(self) -> bool:
        return self.kind in _NUMBERS and (self.thousands is not None or self.decimal != ".")

    def value(self, text: str) -> str | None:
        """One field's text as validation reads it (None: null)."""
        if text in self.nulls:
            return None
        if self.kind == "boolean":
            if text in self.trues:
                return "true"
            if text in self.falses:
                return "false"
            return text
        if self._separators:
            if self.thousands is not None:
                text = text.replace(self.thousands, "")
            return text.replace(self.decimal, ".") if self.decimal != "." else text
        if self.format is not None:
            return reformat(text, self.format, self.kind)
        return text


def reformat(text: str, fmt: str, kind: str) -> str:
    """`text` read with the strptime format `fmt`, in ISO form; unchanged when it does not match."""
    try:
        parsed = dt.datetime.strptime(text, fmt)
    except ValueError:
        return text
    return parsed.date().isoformat() if kind == "date" else parsed.isoformat()


class TextRules:
    """The spelling rules of a contract's columns, in contract order."""

    def __init__(self, contract: Contract, options: CsvOptions | None = None) -> None:
        opts = options or (contract.file.csv if contract.file is not None else CsvOptions())
        overrides: dict[str, ColumnText] = {c.name: c for c in opts.columns}
        self.columns = tuple(_rules(f.name, f.type, opts, overrides.get(f.name)) for f in contract.fields)
        # the default (only the empty field is null, nothing rewritten): readers keep their fastest loop
        self.plain = all(c.nulls == frozenset({""}) and not c.rewrites for c in self.columns)

    def row(self, values: Sequence[str]) -> list[str | None]:
        """A row of field texts (contract order) as validation reads it."""
        if self.plain:
            return [v or None for v in values]
        return [rules.value(v) for rules, v in zip(self.columns, values, strict=True)]

    def column(self, i: int, values: Any) -> Any:
        """Column `i` (an Arrow string array without nulls) as validation reads it, in Arrow."""
        import pyarrow as pa
        import pyarrow.compute as pc

        rules = self.columns[i]
        is_null = pc.is_in(values, value_set=pa.array(sorted(rules.nulls), pa.string())) if rules.nulls else None
        out = values
        if rules.kind == "boolean" and (rules.trues or rules.falses):
            for words, word in ((rules.trues, "true"), (rules.falses, "false")):
                if words:
                    hit = pc.is_in(out, value_set=pa.array(sorted(words), pa.string()))
                    out = pc.if_else(hit, pa.scalar(word), out)
        elif rules._separators:
            if rules.thousands is not None:
                out = pc.replace_substring(out, rules.thousands, "")
            if rules.decimal != ".":
                out = pc.replace_substring(out, rules.decimal, ".")
        elif rules.format is not None:
            out = _reformat_column(out, rules.format, rules.kind)
        if is_null is not None:
            out = pc.if_else(is_null, pa.scalar(None, pa.string()), out)
        return out


def _reformat_column(values: Any, fmt: str, kind: str) -> Any:
    """:func:`reformat` over a column, once per distinct value (dates repeat; Python does the parsing,
    so both paths read a value the same way)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct = pc.unique(values)
    rewritten = pa.array([reformat(v, fmt, kind) for v in distinct.to_pylist()], pa.string())
    return rewritten.take(pc.index_in(values, value_set=distinct))


def _rules(name: str, kind: str, opts: CsvOptions, own: ColumnText | None) -> ColumnRules:
    def pick(column: tuple[str, ...] | None, file: tuple[str, ...]) -> frozenset[str]:
        return frozenset(file if column is None else column)

    own = own or ColumnText(name)
    return ColumnRules(
        name,
        kind,
        pick(own.null_values, opts.null_values),
        pick(own.true_values, opts.true_values) if kind == "boolean" else frozenset(),
        pick(own.false_values, opts.false_values) if kind == "boolean" else frozenset(),
        opts.thousands,
        opts.decimal,
        own.format if kind in ("date", "timestamp") else None,
    )

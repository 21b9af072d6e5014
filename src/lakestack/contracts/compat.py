"""Compatibility between two versions of a contract, as a schema registry judges it.

Each difference between an old and a new version is a :class:`Change` that says whether it breaks
*backward* compatibility (a reader on the new version cannot read data written under the old one)
and whether it breaks *forward* compatibility (a reader on the old version cannot read data written
under the new one). A contract's mode picks which of the two matter:

| mode | breaking when |
|---|---|
| `backward` (default) | a change breaks backward: upgrade the readers first |
| `forward` | a change breaks forward: upgrade the writers first |
| `full` | a change breaks either |
| `none` | never |

The `_transitive` variants check the newest version against every earlier one instead of only the
one before it. Readers project fields by name (by field id in Iceberg): a field a reader does not know
is ignored, a field it knows but the data lacks reads as null, and the values it reads must be ones its
own version allows (its type, nullability, enum and bounds), as in Avro's resolution rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lakestack.contracts.model import Contract, Field

# The kinds of change, each a short stable name (shown by `lakestack contracts diff`, kept in JSON).
ADDED = "field_added"
ADDED_REQUIRED = "required_field_added"
REMOVED = "field_removed"
REMOVED_REQUIRED = "required_field_removed"
RENAMED = "field_renamed"
WIDENED = "type_widened"
NARROWED = "type_narrowed"
TYPE_CHANGED = "type_changed"
MADE_REQUIRED = "made_required"
MADE_OPTIONAL = "made_optional"
MADE_NOT_NULL = "made_not_null"
MADE_NULLABLE = "made_nullable"
ENUM_ADDED = "enum_values_added"
ENUM_REMOVED = "enum_values_removed"
TIGHTENED = "bound_tightened"
LOOSENED = "bound_loosened"
PATTERN_CHANGED = "pattern_changed"
FORMAT_CHANGED = "format_changed"
STRICT = "strictness_changed"
PII = "pii_changed"
KEY = "key_changed"
EVENT_TIME = "event_time_changed"
MODE = "compatibility_changed"
FILE = "file_changed"

# bound → True when a larger value accepts fewer records
_BOUNDS = (
    ("minimum", "minimum", True),
    ("exclusive_minimum", "exclusiveMinimum", True),
    ("maximum", "maximum", False),
    ("exclusive_maximum", "exclusiveMaximum", False),
    ("min_length", "minLength", True),
    ("max_length", "maxLength", False),
    ("min_items", "minItems", True),
    ("max_items", "maxItems", False),
)


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two contract versions and what it breaks."""

    path: str  # `status`, `page.url`, `product_ids[]`; `(contract)` for contract-wide settings
    kind: str
    old: str | None
    new: str | None
    breaks_backward: bool
    breaks_forward: bool
    reason: str

    def breaking(self, mode: str) -> bool:
        """Whether this change is refused under a compatibility mode."""
        base = mode.removesuffix("_transitive")
        if base == "backward":
            return self.breaks_backward
        if base == "forward":
            return self.breaks_forward
        if base == "full":
            return self.breaks_backward or self.breaks_forward
        return False

    def to_dict(self, mode: str) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "breaking": self.breaking(mode),
            "breaks_backward": self.breaks_backward,
            "breaks_forward": self.breaks_forward,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """What changed from `old` to `new`, judged under `mode` (the new version's, unless overridden)."""

    old: Contract
    new: Contract
    mode: str
    changes: tuple[Change, ...]

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.breaking(self.mode))

    @property
    def compatible(self) -> bool:
        return not self.breaking

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.new.source,
            "from": self.old.version,
            "to": self.new.version,
            "mode": self.mode,
            "compatible": self.compatible,
            "changes": [c.to_dict(self.mode) for c in self.changes],
        }


def compare(old: Contract, new: Contract, mode: str | None = None) -> Comparison:
    """Every change from `old` to `new`, judged under `mode` (default: the new version's mode)."""
    changes = [*_contract_changes(old, new), *_field_changes(old.fields, new.fields, "", old.strict, old.version)]
    return Comparison(old, new, mode or new.compatibility, tuple(changes))


def check_history(versions: Sequence[Contract]) -> list[Comparison]:
    """The newest version against the one before it, or against every earlier one when its mode is
    transitive; empty when there is only one version. `versions` is oldest first."""
    if len(versions) < 2:
        return []
    newest = versions[-1]
    earlier = versions[:-1] if newest.compatibility.endswith("_transitive") else versions[-2:-1]
    return [compare(old, newest) for old in reversed(earlier)]


# -- contract-wide settings -------------------------------------------------------------------------
def _contract_changes(old: Contract, new: Contract) -> Iterator[Change]:
    where = "(contract)"
    if old.key != new.key:
        yield Change(
            where,
            KEY,
            _names(old.key),
            _names(new.key),
            True,
            True,
            "Silver deduplicates by the key: rows change identity",
        )
    if old.event_time != new.event_time:
        yield Change(
            where,
            EVENT_TIME,
            old.event_time,
            new.event_time,
            True,
            True,
            "Silver partitions and orders versions by the event time",
        )
    if old.strict != new.strict:
        yield _strictness(old.strict, new.strict, where)
    if old.compatibility != new.compatibility:
        yield Change(where, MODE, old.compatibility, new.compatibility, False, False, "applies from this version on")
    old_file = (old.file.pattern, old.file.format) if old.file else None
    new_file = (new.file.pattern, new.file.format) if new.file else None
    if old_file != new_file:
        yield Change(
            where,
            FILE,
            " ".join(old_file) if old_file else None,
            " ".join(new_file) if new_file else None,
            False,
            False,
            "which landing files are read, and how; not what a record holds",
        )


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) or "(none)"


# -- fields ---------------------------------------------------------------------------------------
def _field_changes(
    old: tuple[Field, ...], new: tuple[Field, ...], prefix: str, old_strict: bool, old_version: int
) -> Iterator[Change]:
    before = {f.name: f for f in old}
    now = {f.name: f for f in new}
    renamed = {f.renamed_from for f in new if f.renamed_from in before and f.renamed_from not in now}
    for f in new:
        path = prefix + f.name
        if f.name in before:
            yield from _compare_field(before[f.name], f, path, old_version)
        elif f.renamed_from in renamed:
            assert f.renamed_from is not None
            was = before[f.renamed_from]
            yield Change(
                path,
                RENAMED,
                prefix + was.name,
                path,
                False,
                True,
                "new readers find it by its old name (field id); old readers do not know the new name",
            )
            yield from _compare_field(was, f, path, old_version)
        else:
            yield _added(f, path, old_strict, old_version)
    for f in old:
        if f.name not in now and f.name not in renamed:
            yield _removed(f, prefix + f.name)


def _added(f: Field, path: str, old_strict: bool, old_version: int) -> Change:
    if f.required:
        return Change(
            path,
            ADDED_REQUIRED,
            None,
            f.type_name,
            True,
            False,
            "data written before it has no value for a required field",
        )
    if not old_strict:
        return Change(
            path,
            ADDED,
            None,
            f.type_name,
            True,
            False,
            f"v{old_version} was not strict: its records may already carry '{f.name}' with any value",
        )
    return Change(path, ADDED, None, f.type_name, False, False, "optional: old data reads it as null")


def _removed(f: Field, path: str) -> Change:
    if f.required:
        return Change(
            path, REMOVED_REQUIRED, f.type_name, None, False, True, "old readers require it; new data lacks it"
        )
    return Change(path, REMOVED, f.type_name, None, False, False, "optional: old readers read it as null")


def _compare_field(old: Field, new: Field, path: str, old_version: int) -> Iterator[Change]:
    type_change = _type_change(old, new, path)
    if type_change is not None:
        yield type_change
        if type_change.kind == TYPE_CHANGED:
            return  # the rules of one type say nothing about another's
    yield from _presence(old, new, path)
    yield from _constraints(old, new, path)
    if old.pii != new.pii:
        yield Change(
            path, PII, old.pii, new.pii, False, False, "the data is the same; masking and access follow the new class"
        )
    if old.type == new.type == "struct":
        old_strict, new_strict = old.constraints.format == "strict", new.constraints.format == "strict"
        if old_strict != new_strict:
            yield _strictness(old_strict, new_strict, path)
        yield from _field_changes(old.fields, new.fields, f"{path}.", old_strict, old_version)
    if old.type == new.type == "list" and old.items is not None and new.items is not None:
        yield from _compare_field(old.items, new.items, f"{path}[]", old_version)


def _type_change(old: Field, new: Field, path: str) -> Change | None:
    if old.type != new.type:
        why = (
            "long → double is not an Iceberg type promotion: one column cannot hold both"
            if (old.type, new.type) == ("integer", "double")
            else "values of one type are not values of the other"
        )
        return Change(path, TYPE_CHANGED, old.type_name, new.type_name, True, True, why)
    if old.type != "decimal" or (old.precision, old.scale) == (new.precision, new.scale):
        return None
    assert old.precision is not None and new.precision is not None
    if old.scale != new.scale:
        return Change(
            path, TYPE_CHANGED, old.type_name, new.type_name, True, True, "a decimal's scale cannot change in place"
        )
    if new.precision > old.precision:
        return Change(
            path, WIDENED, old.type_name, new.type_name, False, True, "old readers cannot hold the larger values"
        )
    return Change(path, NARROWED, old.type_name, new.type_name, True, False, "old values may not fit the new precision")


def _presence(old: Field, new: Field, path: str) -> Iterator[Change]:
    must_be_there = (not old.required and new.required, old.required and not new.required)
    not_null = (old.nullable and not new.nullable, not old.nullable and new.nullable)
    if must_be_there[0] or not_null[0]:
        kind = MADE_REQUIRED if must_be_there[0] else MADE_NOT_NULL
        yield Change(
            path, kind, _presence_text(old), _presence_text(new), True, False, "old data may hold nulls or lack it"
        )
    if must_be_there[1] or not_null[1]:
        kind = MADE_OPTIONAL if must_be_there[1] else MADE_NULLABLE
        yield Change(
            path, kind, _presence_text(old), _presence_text(new), False, True, "old readers do not expect nulls"
        )


def _presence_text(f: Field) -> str:
    return ("required" if f.required else "optional") + ("" if f.nullable else ", not null")


def _constraints(old: Field, new: Field, path: str) -> Iterator[Change]:
    o, n = old.constraints, new.constraints
    yield from _enum(o.enum, n.enum, path)
    for attr, label, larger_is_tighter in _BOUNDS:
        yield from _bound(getattr(o, attr), getattr(n, attr), label, larger_is_tighter, path)
    if o.pattern != n.pattern:
        yield _rule(o.pattern, n.pattern, "pattern", PATTERN_CHANGED, path)
    if old.type != "struct" and o.format != n.format:
        yield _rule(o.format, n.format, "format", FORMAT_CHANGED, path)


def _enum(old: tuple[Any, ...] | None, new: tuple[Any, ...] | None, path: str) -> Iterator[Change]:
    if old == new:
        return
    if new is None:  # any value now
        yield Change(path, ENUM_ADDED, _values(old), "(any)", False, True, "old readers do not know the new values")
        return
    if old is None:
        yield Change(path, ENUM_REMOVED, "(any)", _values(new), True, False, "old data may hold other values")
        return
    added, removed = [v for v in new if v not in old], [v for v in old if v not in new]
    if added:
        yield Change(path, ENUM_ADDED, None, _values(added), False, True, "old readers do not know the new values")
    if removed:
        yield Change(path, ENUM_REMOVED, _values(removed), None, True, False, "old data may hold the removed values")


def _values(values: Sequence[Any] | None) -> str:
    return ", ".join(str(v) for v in values or ())


def _bound(old: Any, new: Any, label: str, larger_is_tighter: bool, path: str) -> Iterator[Change]:
    if old == new:
        return
    # no bound → a bound tightens; otherwise the direction of the move decides
    tighter = old is None if old is None or new is None else (Decimal(new) > Decimal(old)) == larger_is_tighter
    old_text, new_text = _bound_text(label, old), _bound_text(label, new)
    if tighter:
        yield Change(path, TIGHTENED, old_text, new_text, True, False, "old data may be outside the new bound")
    else:
        yield Change(path, LOOSENED, old_text, new_text, False, True, "new data may be outside the old bound")


def _bound_text(label: str, value: Any) -> str | None:
    return None if value is None else f"{label} {value}"


def _rule(old: str | None, new: str | None, label: str, kind: str, path: str) -> Change:
    """A pattern or format: added tightens, removed loosens, replaced may do both."""
    old_text, new_text = (f"{label} {old}" if old else None), (f"{label} {new}" if new else None)
    if old is None:
        return Change(path, TIGHTENED, old_text, new_text, True, False, f"old data may not match the new {label}")
    if new is None:
        return Change(path, LOOSENED, old_text, new_text, False, True, f"new data may not match the old {label}")
    return Change(
        path, kind, old_text, new_text, True, True, f"neither {label} can be shown to accept all the other accepts"
    )


def _strictness(old_strict: bool, new_strict: bool, path: str) -> Change:
    if new_strict:
        return Change(
            path, STRICT, "open", "strict", True, False, "old data may carry properties the new version refuses"
        )
    return Change(path, STRICT, "strict", "open", False, False, "readers ignore properties they do not know")

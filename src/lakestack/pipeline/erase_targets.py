"""What an erasure looks at: the columns a subject may be named by, and for each table which rows
are the subject's (a `Target`: a dataset and a match over its rows). See `pipeline/erase.py`."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from lakestack.errors import UsageError

log = logging.getLogger(__name__)

CHECK_FAILURES = "_lakestack.check_failures"
_DELIMITERS = (",", ";", "\t", "|")
FOLDED = frozenset({"email"})  # PII classes whose values match without regard to case


@dataclass(frozen=True, slots=True)
class Subject:
    column: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Subject:
        column, sep, value = text.partition("=")
        if not sep or not column.strip() or value == "":
            raise UsageError(f"--subject must be COLUMN=VALUE (got '{text}')")
        return cls(column.strip(), value)

    @property
    def digest(self) -> str:
        """What the receipt keeps of the subject: never the value itself."""
        return "sha256:" + hashlib.sha256(f"{self.column}={self.value}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Target:
    dataset: str
    kind: str
    matched_on: tuple[str, ...]
    match: Any  # storage.rewrite.Match


def subject_columns(lake: Any) -> dict[str, str | None]:
    """Columns a subject may be named by: every PII column (→ its class) and the key columns of the
    sources whose contracts carry PII (→ None: an identifier, matched by name)."""
    from lakestack.pipeline.access import table_pii

    out: dict[str, str | None] = {}
    for identifier in lake.warehouse.tables():
        if not identifier.startswith("_lakestack."):
            for column, cls in table_pii(lake.warehouse.load(identifier)).items():
                out.setdefault(column, cls)
    for source in lake.project.config.sources:
        contract = lake.project.contract(source)
        pii = contract.pii_columns()
        for column, cls in pii.items():
            out.setdefault(column, cls)
        if pii:
            for key in contract.key:
                out.setdefault(key, None)
    return out


def targets(lake: Any, subject: Subject) -> list[Target]:
    from lakestack.pipeline.access import table_pii

    columns = subject_columns(lake)
    if subject.column not in columns:
        names = ", ".join(sorted(columns)) or "none (no contract declares a PII column)"
        raise UsageError(f"'{subject.column}' is not a PII or subject-key column; the columns are: {names}")
    cls = columns[subject.column]
    same_class = cls is not None and {c for c, k in columns.items() if k == cls} == {subject.column}
    fold = cls in FOLDED
    hashed = _hashed_forms(lake, subject.value, cls)
    if fold and subject.value.lower() != subject.value:
        hashed += _hashed_forms(lake, subject.value.lower(), cls)
    tables = lake.warehouse.tables()
    order = ("bronze.", "quarantine.", "silver.", "gold.")
    out: list[Target] = []
    for prefix in order:
        for identifier in sorted(t for t in tables if t.startswith(prefix)):
            table = lake.warehouse.load(identifier)
            schema = table.schema().as_arrow()
            if prefix == "quarantine.":
                fields = {subject.column} | ({c for c, k in columns.items() if k == cls} if same_class else set())
                raw = json_match("_raw", fields, {subject.value}, fold=fold)
                out.append(Target(identifier, "raw records", ("_raw",), raw))
                continue
            pii = table_pii(table)
            named = [
                f.name
                for f in schema
                if f.name == subject.column or (same_class and pii.get(f.name) == cls and f.name in pii)
            ]
            text = [f.name for f in schema if _is_text(f.type) and not f.name.startswith("_")] if hashed else []
            if named or text:
                out.append(
                    Target(
                        identifier,
                        "rows",
                        tuple(named) + tuple(f"{c} (hashed)" for c in text),
                        column_match(named, subject.value, text, hashed, fold=fold),
                    )
                )
    if CHECK_FAILURES in tables:
        from lakestack.pipeline.quality import mask_value

        values = {subject.value} | ({mask_value(subject.value)} if cls is not None else set())
        out.append(Target(CHECK_FAILURES, "check samples", ("row",), json_match("row", None, values)))
    return out


def _hashed_forms(lake: Any, value: str, cls: str | None) -> list[str]:
    """The value's HMAC and token under the project's masking key (none without a key)."""
    from lakestack.governance.masking import mask_value

    if cls is None:
        return []
    try:
        key = lake.policy.key()
    except Exception as exc:  # a policy file or secret that cannot be read: say so, match clear values only
        log.warning("erase: the masking key cannot be read (%s); hashed forms are not searched", exc)
        return []
    if key is None:
        return []
    return [str(mask_value("hash", value, cls, key)), str(mask_value("tokenize", value, cls, key))]


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def column_match(named: list[str], value: str, text: list[str], hashed: list[str], *, fold: bool = False) -> Any:
    """Rows whose `named` columns equal `value` (as text; `fold`: in any case) or whose `text`
    columns hold one of `hashed` (the value's HMAC or token)."""

    def match(data: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        hit = pa.array([False] * data.num_rows)
        for column in named:
            cast = pc.cast(data[column], pa.string(), safe=False)
            if fold:
                cast = pc.utf8_lower(cast)
            hit = pc.or_(hit, pc.fill_null(pc.equal(cast, value.lower() if fold else value), False))
        for column in text:
            hit = pc.or_(hit, pc.fill_null(pc.is_in(data[column], value_set=pa.array(hashed)), False))
        return hit

    return match


def json_match(column: str, fields: set[str] | None, values: set[str], *, fold: bool = False) -> Any:
    """Rows whose text column (a raw record, a JSON sample) holds one of `values` in a field: in a
    field named in `fields` (any field when None) of a JSON object, or any field of a delimited line
    (`fold`: in any case)."""
    wanted = {v.lower() for v in values} if fold else values
    keys = {f.lower() for f in fields} if fold and fields is not None else fields

    def match(data: Any) -> Any:
        import pyarrow as pa

        texts = data[column].to_pylist()
        return pa.array([_holds(t.lower() if fold and t else t, keys, wanted) for t in texts], pa.bool_())

    return match


def _holds(text: str | None, fields: set[str] | None, values: set[str]) -> bool:
    if not text or not any(v in text for v in values):
        return False
    try:
        record = json.loads(text)
    except ValueError:
        return _line_holds(text, values)
    return _walk(record, fields, values)


def _walk(node: Any, fields: set[str] | None, values: set[str], key: str | None = None) -> bool:
    if isinstance(node, dict):
        return any(_walk(v, fields, values, k) for k, v in node.items())
    if isinstance(node, list):
        return any(_walk(v, fields, values, key) for v in node)
    return (fields is None or key in fields) and node is not None and str(node) in values


def _line_holds(text: str, values: set[str]) -> bool:
    for delimiter in _DELIMITERS:
        for row in csv.reader(text.splitlines(), delimiter=delimiter):
            if any(cell.strip() in values for cell in row):
                return True
    return False


def vault_target(lake: Any, done: list[Any], *, dry: bool) -> Target | None:
    """The vault rows of the subject's PII values that no remaining row holds any more."""
    from lakestack.pipeline.vault import VAULT

    if not lake.warehouse.exists(VAULT):
        return None
    candidates: set[tuple[str, str]] = set()
    from lakestack.pipeline.access import table_pii

    for d in done:
        if d.found.kind != "rows" or d.rows is None:
            continue
        for column, cls in table_pii(lake.warehouse.load(d.found.dataset)).items():
            if column in d.rows.column_names:
                candidates |= {(cls, str(v)) for v in d.rows[column].to_pylist() if v is not None}
    gone = candidates - _still_held(lake, candidates, done if dry else [])
    if not gone:
        return None

    def match(data: Any) -> Any:
        import pyarrow as pa

        pairs = zip(data["pii"].to_pylist(), data["value"].to_pylist(), strict=True)
        return pa.array([(p, v) in gone for p, v in pairs], pa.bool_())

    return Target(VAULT, "tokens", ("value",), match)


def _still_held(lake: Any, candidates: set[tuple[str, str]], dry: list[Any]) -> set[tuple[str, str]]:
    """The (class, value) candidates some row outside the erased ones still holds (dry: the rows
    the erasure would remove do not count)."""
    import pyarrow.compute as pc

    from lakestack.pipeline.access import table_pii

    pending = {d.found.dataset: d.match for d in dry}
    classes = {cls for cls, _v in candidates}
    held: set[tuple[str, str]] = set()
    for identifier in lake.warehouse.tables():
        if identifier.startswith(("_lakestack.", "quarantine.")):
            continue
        table = lake.warehouse.load(identifier)
        pii = {c: k for c, k in table_pii(table).items() if k in classes}
        if not pii:
            continue
        if identifier in pending:
            data = table.scan().to_arrow()
            data = data.filter(pc.invert(pc.fill_null(pending[identifier](data), False))).select(list(pii))
        else:
            data = table.scan(selected_fields=tuple(pii)).to_arrow()
        for column, cls in pii.items():
            values = {str(v) for v in data[column].to_pylist() if v is not None}
            held |= {(k, v) for k, v in candidates if k == cls and v in values}
    return held

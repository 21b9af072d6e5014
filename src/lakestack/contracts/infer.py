"""Drafting a batch contract from a sample of landing files (`lakestack contracts infer`).

The draft is a starting point a person reviews, so every choice that is a guess says so (`notes`).
Inference tolerates a few bad values: the narrowest type, enum, shape (regex) or bound that all but
`TOLERANCE` of the sampled values satisfy is chosen, and the values that break it are named in a
note ("4 of 2,575 values are not integers, e.g. 'two': those rows will be quarantined"). A column
that is mostly empty is nullable; one empty only in a few rows is not.

Reading the files is in ingest/sampling.py and the command in pipeline/drafting.py; this module
works on plain values (a `Sample`), without touching disk.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lakestack.errors import UsageError

TOLERANCE = 0.01  # share of sampled values that may break a guessed rule (they are quarantined)
NULL_TOLERANCE = 0.005  # share of rows a required column may miss (a column missing more is optional)
SAMPLE_ROWS = 20_000
MAX_FILES = 50
ENUM_MAX = 20  # at most this many distinct values make an enum
ENUM_MAX_LENGTH = 40
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()  # a key a record lacks
NULL_MARKERS = ("NA", "N/A", "NULL", "null", "None", "NaN", "nan", "-")
FORMATS = {".csv": "csv", ".tsv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson"}
FORMATS |= {".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = (",", ";", "\t", "|")
_DATES = (  # file-name date captures, longest first
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "%Y-%m-%d"),
    (re.compile(r"\d{4}_\d{2}_\d{2}"), "%Y_%m_%d"),
    (re.compile(r"(?<!\d)\d{8}(?!\d)"), "%Y%m%d"),
)
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d*)\.(\d+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
_PII_NAMES = {
    "email": "email", "email_address": "email", "phone": "phone", "phone_number": "phone", "mobile": "phone",
    "first_name": "name", "last_name": "name", "full_name": "name", "surname": "name", "given_name": "name",
    "address": "address", "street": "address", "ip": "ip", "ip_address": "ip", "dob": "dob",
    "date_of_birth": "dob", "birth_date": "dob", "ssn": "ssn",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ColumnDraft:
    """One inferred column: what the contract will say, and what of it was guessed."""

    name: str
    type: str
    nullable: bool
    enum: tuple[Any, ...] | None = None
    regex: str | None = None
    minimum: int | None = None
    pii: str | None = None
    notes: tuple[str, ...] = ()
    null_values: tuple[str, ...] = ()  # markers read as missing in this column, beyond the empty string


@dataclass(frozen=True, slots=True)
class Sample:
    """What was read: columns (name → values, None for missing), and how the files were spelled."""

    format: str
    names: tuple[str, ...]  # the file names sampled
    columns: dict[str, list[Any]]
    arrow_types: dict[str, str] = field(default_factory=dict)  # Parquet: column → Arrow type text
    delimiter: str = ","
    encoding: str = "utf-8"
    notes: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()), []))


@dataclass(frozen=True, slots=True)
class Draft:
    """A drafted contract: its YAML text and the guesses a person should review."""

    source: str
    format: str
    pattern: str
    columns: tuple[ColumnDraft, ...]
    key: tuple[str, ...]
    event_time: str | None
    null_values: tuple[str, ...]  # markers read as missing (beyond the empty string)
    delimiter: str
    encoding: str
    rows_sampled: int
    files_sampled: int
    notes: tuple[str, ...]
    text: str = ""
    kind: str = "batch"  # "batch": contracts/<source>.v1.yaml; "event" (NDJSON): contracts/<source>.v1.json

    @property
    def file_name(self) -> str:
        return f"{self.source}.v1.{'json' if self.kind == 'event' else 'yaml'}"

    @property
    def guessed(self) -> list[str]:
        """Every guess, file-level first, then per column (`column: why`)."""
        return [*self.notes, *(f"{c.name}: {n}" for c in self.columns for n in c.notes)]


# -- the file pattern -------------------------------------------------------------------------------
def file_pattern(names: Sequence[str]) -> tuple[str, list[str]]:
    """A pattern matching every name, with a `{date:...}` capture where the names carry a date."""
    from lakestack.contracts.patterns import FilePattern

    stems = [n.removesuffix(".gz") for n in names]
    for regex, fmt in _DATES:
        parts = [_split_date(s, regex, fmt) for s in stems]
        if all(p is not None for p in parts):
            lefts = [p[0] for p in parts if p is not None]
            rights = [p[1] for p in parts if p is not None]
            pattern = _common(lefts, tail=False) + "{date:" + fmt + "}" + _common(rights, tail=True)
            break
    else:
        head = _prefix(list(stems))
        tail = _prefix([s[len(head) :][::-1] for s in stems])[::-1]
        pattern = stems[0] if len(set(stems)) == 1 else f"{head}*{tail}"
    notes = []
    try:
        matcher = FilePattern(pattern)
        if not all(matcher.match(n) for n in names):
            raise ValueError("does not match every file")
    except ValueError:
        suffix = "".join(Path(stems[0]).suffixes[-1:])
        notes.append(f"no common file-name pattern: '*{suffix}' (narrow it)")
        return f"*{suffix}", notes
    if "{date:" in pattern:
        notes.append(f"file pattern {pattern}: the date in the names read as {fmt}")
    return pattern, notes


def _split_date(name: str, regex: re.Pattern[str], fmt: str) -> tuple[str, str] | None:
    m = regex.search(name)
    if m is None:
        return None
    try:
        dt.datetime.strptime(m.group(0), fmt)
    except ValueError:
        return None
    return name[: m.start()], name[m.end() :]


def _common(texts: Sequence[str], tail: bool) -> str:
    """The text all share: itself when equal, else their common prefix (or `*` + common suffix)."""
    if len(set(texts)) <= 1:
        return texts[0] if texts else ""
    if tail:
        rev = _prefix([t[::-1] for t in texts])[::-1]
        return "*" + rev
    return _prefix(list(texts)) + "*"


def _prefix(texts: list[str]) -> str:
    out = []
    for chars in zip(*texts, strict=False):
        if len(set(chars)) != 1:
            break
        out.append(chars[0])
    return "".join(out)


# -- columns ------------------------------------------------------------------------------------------
def infer_column(name: str, values: Sequence[Any], arrow_type: str | None = None) -> tuple[ColumnDraft, set[str]]:
    """A column's draft and the null markers it was read with (`NA`, `NULL`, beyond the empty string)."""
    if arrow_type is not None and arrow_type not in ("string", "large_string"):
        return _typed_column(name, values, arrow_type), set()
    if any(v is not None and not isinstance(v, str) for v in values):
        values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]  # NDJSON scalars
    markers = Counter(v for v in values if v in NULL_MARKERS)
    present = [v for v in values if v is not None and v != "" and v not in NULL_MARKERS]
    kind, notes = _text_type(present)
    used: set[str] = set()
    if kind == "string":
        present += [v for v in values if v in NULL_MARKERS]  # kept as text: said, not hidden
        for marker, n in markers.items():
            notes.append(f"{marker!r} appears {n:,} times: kept as text (add it to null_values if it means missing)")
        missing = sum(1 for v in values if v is None or v == "")
    else:
        used = set(markers)
        missing = sum(1 for v in values if v is None or v == "" or v in NULL_MARKERS)
        if markers:
            notes.append(f"read {', '.join(repr(m) for m in sorted(markers))} as missing (null_values)")
    nullable, more = _nullability(missing, len(values), _id_like(name))
    notes += more
    draft = ColumnDraft(name, kind, nullable, pii=_PII_NAMES.get(name.lower()))
    if kind == "string":
        draft = _string_rules(draft, present, notes)
    elif kind in ("integer", "double") or kind.startswith("decimal"):
        draft = _bound(draft, [Decimal(v) for v in present if _number(v)], notes)
    if kind == "timestamp":
        notes.append(_zone_note(present))
    return replace(_with(draft, notes), null_values=tuple(sorted(used))), used


def _with(draft: ColumnDraft, notes: list[str]) -> ColumnDraft:
    return replace(draft, notes=tuple(n for n in notes if n))


def _number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _id_like(name: str) -> bool:
    return name == "id" or name.endswith(("_id", "_key"))


def _nullability(missing: int, total: int, id_like: bool = False) -> tuple[bool, list[str]]:
    """Required when nothing is missing, or so little that it looks like a defect: at most
    NULL_TOLERANCE of the rows (TOLERANCE for an id column, which is rarely optional)."""
    if missing == 0:
        return False, []
    if missing <= (TOLERANCE if id_like else NULL_TOLERANCE) * total:
        return False, [f"missing in {missing:,} of {total:,} sampled rows: required (those rows will be quarantined)"]
    return True, []


def _text_type(values: Sequence[str]) -> tuple[str, list[str]]:
    """The narrowest type all but TOLERANCE of the values parse as, and a note on the rest."""
    if not values:
        return "string", ["no values in the sample: string (guessed)"]
    for kind, accepts in _LADDER:
        bad = [v for v in values if not accepts(v)]
        if len(bad) <= TOLERANCE * len(values):
            if kind in ("integer", "decimal", "double") and any(_zero_padded(v) for v in values):
                continue  # leading zeros: an identifier, kept as text
            if kind == "boolean" and not any(v.lower() in ("true", "false") for v in values):
                continue  # only 0 and 1: a number
            name = _decimal_type(values) if kind == "decimal" else kind
            if name is None:
                continue
            note = _outliers(bad, len(values), f"{name} values") if bad else ""
            return name, [note]
    return "string", []


def _zero_padded(value: str) -> bool:
    digits = value.lstrip("+-")
    return len(digits) > 1 and digits[0] == "0" and digits[1].isdigit()


def _decimal_type(values: Sequence[str]) -> str | None:
    """`decimal(P,S)`: S the most fraction digits seen, P with room for 10 more integer digits;
    None (a double) when the number of fraction digits varies too much or exceeds 18."""
    scales, digits = Counter[int](), 0
    for v in values:
        m = _DECIMAL.match(v)
        if m is not None:
            scales[len(m.group(2))] += 1
            digits = max(digits, len(m.group(1).lstrip("0")))
        elif _INTEGER.match(v):
            digits = max(digits, len(v.lstrip("+-").lstrip("0")))
    if not scales or len(scales) > 3 or max(scales) > 18:
        return None
    scale = max(scales)
    return f"decimal({min(38, scale + max(10, digits + 3))},{scale})"


def _is_timestamp(value: str) -> bool:
    import msgspec

    if len(value) < 16 or not value[:4].isdigit():
        return False
    try:
        msgspec.convert(value, dt.datetime)
    except msgspec.ValidationError:
        return False
    return True


def _is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


_LADDER = (
    ("boolean", lambda v: v.lower() in ("true", "false", "1", "0")),
    ("integer", lambda v: bool(_INTEGER.match(v)) and -(2**63) <= int(v) < 2**63),
    ("decimal", lambda v: bool(_DECIMAL.match(v) or _INTEGER.match(v))),
    ("double", lambda v: _number(v) or v.lower() in ("inf", "-inf")),
    ("date", _is_date),
    ("timestamp", _is_timestamp),
)


def _outliers(bad: Sequence[Any], total: int, what: str) -> str:
    examples = ", ".join(repr(v if isinstance(v, str) else str(v)) for v in list(dict.fromkeys(bad))[:3])
    return f"{len(bad):,} of {total:,} sampled values are not {what} (e.g. {examples}): those rows will be quarantined"


def _zone_note(values: Sequence[str]) -> str:
    values = [v for v in values if _is_timestamp(v)]
    zoned = sum(1 for v in values if v.endswith("Z") or re.search(r"[+-]\d{2}:?\d{2}$", v))
    if zoned == len(values):
        return "timestamp with a zone (stored in UTC)"
    if zoned == 0:
        return "timestamp without a zone: lakestack reads it as UTC (guessed)"
    return f"timestamp: {zoned:,} of {len(values):,} values carry a zone, the rest are read as UTC"


def _string_rules(draft: ColumnDraft, values: Sequence[str], notes: list[str]) -> ColumnDraft:
    counts = Counter(values)
    enum = _enum(counts, len(values), notes)
    if enum is not None:
        return ColumnDraft(draft.name, "string", draft.nullable, enum=enum, pii=draft.pii)
    regex = _uuid_regex(values, notes) or _shape_regex(values, notes) or _email_regex(values, notes)
    return ColumnDraft(draft.name, "string", draft.nullable, regex=regex, pii=draft.pii)


def _enum(counts: Counter[str], total: int, notes: list[str]) -> tuple[str, ...] | None:
    """Low-cardinality values as an enum; a rare value far below the next is a defect, not a member."""
    if total < 20 or max(len(v) for v in counts) > ENUM_MAX_LENGTH:
        return None
    ranked = counts.most_common()
    keep = list(ranked)
    while len(keep) > 1 and keep[-1][1] <= 0.005 * total and keep[-1][1] * 4 < keep[-2][1]:
        keep.pop()
    dropped = ranked[len(keep) :]
    if len(keep) > ENUM_MAX or len(keep) > max(2, total // 10) or sum(n for _, n in dropped) > TOLERANCE * total:
        return None
    notes.append(f"enum of the {len(keep)} values seen (guessed: a new value will be quarantined)")
    if dropped:
        notes.append(_outliers([v for v, n in dropped for _ in range(n)], total, "in the enum (rare)"))
    return tuple(sorted(v for v, _ in keep))


def _shape(value: str) -> tuple[tuple[str, int], ...]:
    """Runs of character classes: 'ORD-00000001' → (('A', 3), ('-', 1), ('9', 8))."""
    runs: list[list[Any]] = []
    for ch in value:
        cls = "A" if "A" <= ch <= "Z" else "a" if "a" <= ch <= "z" else "9" if "0" <= ch <= "9" else ch
        if runs and runs[-1][0] == cls and cls in "Aa9":
            runs[-1][1] += 1
        else:
            runs.append([cls, 1])
    return tuple((c, n) for c, n in runs)


def _shape_regex(values: Sequence[str], notes: list[str]) -> str | None:
    """A fixed shape (codes, ids) nearly every value has, as an anchored regex: `^ORD-[0-9]{8}$`."""
    shapes = Counter(_shape(v) for v in values)
    shape, n = shapes.most_common(1)[0]
    if len(set(values)) < 10 or n < (1 - TOLERANCE) * len(values) or len(shape) > 12:
        return None
    fitting = [v for v in values if _shape(v) == shape]
    parts, pos = [], 0
    for cls, width in shape:
        pieces = {v[pos : pos + width] for v in fitting}
        if len(pieces) == 1:
            parts.append(_escaped(pieces.pop()))
        else:
            char = {"A": "[A-Z]", "a": "[a-z]", "9": "[0-9]"}[cls]
            parts.append(char + (f"{{{width}}}" if width > 1 else ""))
        pos += width
    regex = "^" + "".join(parts) + "$"
    notes.append(f"every value shaped like {regex} (guessed from the sample)")
    if n < len(values):
        notes.append(_outliers([v for v in values if _shape(v) != shape], len(values), f"shaped like {regex}"))
    return regex


UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _uuid_regex(values: Sequence[str], notes: list[str]) -> str | None:
    pattern = re.compile(UUID)
    bad = [v for v in values if not pattern.match(v)]
    if len(bad) > TOLERANCE * len(values) or len(bad) == len(values):
        return None
    notes.append("UUIDs (guessed from the sample)")
    if bad:
        notes.append(_outliers(bad, len(values), "UUIDs"))
    return UUID


def _escaped(text: str) -> str:
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def _email_regex(values: Sequence[str], notes: list[str]) -> str | None:
    pattern = re.compile(_EMAIL)
    bad = [v for v in values if not pattern.match(v)]
    if len(bad) > TOLERANCE * len(values) or len(bad) == len(values):
        return None
    notes.append("e-mail addresses (guessed from the sample)")
    if bad:
        notes.append(_outliers(bad, len(values), "e-mail addresses"))
    return _EMAIL


def _bound(draft: ColumnDraft, numbers: Sequence[Decimal], notes: list[str]) -> ColumnDraft:
    negative = [n for n in numbers if n < 0]
    if not numbers or len(negative) > TOLERANCE * len(numbers):
        return draft
    notes.append("min: 0 (no negative value seen)" if not negative else _outliers(negative, len(numbers), "≥ 0"))
    return ColumnDraft(draft.name, draft.type, draft.nullable, minimum=0, pii=draft.pii)


def _typed_column(name: str, values: Sequence[Any], arrow_type: str) -> ColumnDraft:
    """A Parquet column: its type is the file's; nullability and bounds from the values."""
    kind = _arrow_kind(arrow_type)
    notes: list[str] = []
    if kind == "string":
        notes.append(f"{arrow_type} has no contract type: read as text")
    nullable, more = _nullability(sum(v is None for v in values), len(values), _id_like(name))
    draft = ColumnDraft(name, kind, nullable, pii=_PII_NAMES.get(name.lower()))
    if kind in ("integer", "double") or kind.startswith("decimal"):
        draft = _bound(draft, [Decimal(str(v)) for v in values if v is not None], notes)
    if arrow_type.startswith("timestamp") and "tz=" not in arrow_type:
        notes.append("timestamp without a zone in the file: lakestack reads it as UTC")
    return _with(draft, notes + more)


def _arrow_kind(arrow_type: str) -> str:
    if arrow_type.startswith(("int", "uint")):
        return "integer"
    if arrow_type in ("float", "double", "halffloat"):
        return "double"
    if arrow_type.startswith("decimal"):
        m = re.match(r"decimal\d*\((\d+), (\d+)\)", arrow_type)
        return f"decimal({m.group(1)},{m.group(2)})" if m else "double"
    if arrow_type.startswith("timestamp"):
        return "timestamp"
    if arrow_type.startswith("date"):
        return "date"
    if arrow_type == "bool":
        return "boolean"
    return "string"


# -- the contract ---------------------------------------------------------------------------------------
def draft_contract(sample: Sample, source: str) -> Draft:
    """The draft contract for a sample: a batch contract (YAML) for CSV and Parquet, an event
    contract (JSON Schema) for NDJSON."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", source):
        raise UsageError(f"'{source}' is not a valid source name (lower-case letters, digits and '_')")
    pattern, notes = file_pattern(sample.names)
    if sample.format == "ndjson":
        from lakestack.contracts.infer_events import event_draft

        return event_draft(source, pattern, sample, notes)
    markers: set[str] = set()
    columns = []
    for col, values in sample.columns.items():
        column, used = infer_column(col, values, sample.arrow_types.get(col))
        columns.append(column)
        markers |= used
    key, event_time = _key(columns, sample), _event_time(columns)
    notes = [*sample.notes, *notes]
    notes.append(f"key {list(key)} (guessed: unique in the sample)" if key else "no key found: set one for Silver")
    if event_time:
        notes.append(f"event_time {event_time} (the first timestamp or date column)")
    draft = Draft(source, sample.format, pattern, tuple(columns), key, event_time, tuple(sorted(markers)),
                  sample.delimiter, sample.encoding, sample.rows, len(sample.names), tuple(notes))  # fmt: skip
    return _rendered(draft)


def _key(columns: Sequence[ColumnDraft], sample: Sample) -> tuple[str, ...]:
    """An id column (`*_id`, `id`), with the line/sequence number after it; else the shortest run of
    leading columns unique in the sample."""
    names = [c.name for c in columns]
    required = {c.name for c in columns if not c.nullable}
    for i, n in enumerate(names):
        if n in required and (n == "id" or n.endswith("_id")):
            after = names[i + 1] if i + 1 < len(names) else ""
            line = re.search(r"(line|seq|no|number|item)$", after) and after in required
            return (n, after) if line else (n,)
    rows = list(zip(*(sample.columns[n] for n in names), strict=True))
    distinct = set(rows)
    for width in range(1, min(4, len(names)) + 1):
        lead = names[:width]
        if all(n in required for n in lead) and len({r[:width] for r in distinct}) == len(distinct):
            return tuple(lead)
    return ()


def _event_time(columns: Sequence[ColumnDraft]) -> str | None:
    temporal = [c for c in columns if c.type in ("timestamp", "date")]
    return temporal[0].name if temporal else None


def _rendered(draft: Draft) -> Draft:
    from dataclasses import replace

    return replace(draft, text=render_yaml(draft))


def null_values_supported() -> bool:
    """Whether this lakestack's batch contracts take `null_values` per column."""
    from lakestack.contracts.batch import ColumnSpec

    return "null_values" in ColumnSpec.model_fields


def render_yaml(draft: Draft) -> str:
    """The draft as `contracts/<source>.v1.yaml` text, its guesses as comments at the top."""
    q = json.dumps  # a JSON string is a valid YAML flow scalar: quoting done right for any text
    lines = [f"# Drafted by `lakestack contracts infer` from {draft.rows_sampled:,} records of "
             f"{draft.files_sampled} file(s). Review the guesses:"]  # fmt: skip
    lines += [f"#  - {g}" for g in draft.guessed]
    lines += [f"source: {draft.source}", "version: 1", "compatibility: backward"]
    if draft.key:
        lines.append(f"key: [{', '.join(draft.key)}]")
    if draft.event_time:
        lines.append(f"event_time: {draft.event_time}")
    lines += ["strict: true", "file:", f"  pattern: {q(draft.pattern)}", f"  format: {draft.format}"]
    if draft.format == "csv":
        csv_opts = [f"delimiter: {q(draft.delimiter)}", 'quote: "\\""', "header: true", f"encoding: {draft.encoding}"]
        lines.append(f"  csv: {{{', '.join(csv_opts)}}}")
    lines.append("columns:")
    markers = draft.format == "csv" and null_values_supported()
    lines += [f"  - {{{_column_yaml(c, markers)}}}" for c in draft.columns]
    return "\n".join(lines) + "\n"


def _column_yaml(c: ColumnDraft, markers: bool) -> str:
    q = json.dumps
    parts = [f"name: {q(c.name)}", f"type: {q(c.type)}"]
    if not c.nullable:
        parts.append("nullable: false")
    if markers and c.null_values:  # per column: a text column keeps 'NA' as text
        parts.append(f"null_values: [{', '.join(q(v) for v in ('', *c.null_values))}]")
    if c.pii:
        parts.append(f"pii: {c.pii}")
    if c.enum is not None:
        parts.append(f"enum: [{', '.join(q(v) for v in c.enum)}]")
    if c.regex is not None:
        parts.append(f"regex: {q(c.regex)}")
    if c.minimum is not None:
        parts.append(f"min: {c.minimum}")
    return ", ".join(parts)

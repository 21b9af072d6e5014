"""The one internal contract model that event (JSON Schema) and batch (YAML) contracts compile to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

TYPES = ("string", "integer", "double", "boolean", "date", "timestamp", "decimal", "struct", "list", "json")
PII_CLASSES = (
    "email", "phone", "name", "address", "ip", "id", "dob", "ssn", "card", "financial", "sensitive", "other",
)  # fmt: skip
# As in a schema registry; `_transitive` checks the newest version against every earlier one, not just
# the previous (contracts/compat.py).
COMPATIBILITY = (
    "backward",
    "forward",
    "full",
    "none",
    "backward_transitive",
    "forward_transitive",
    "full_transitive",
)
FORMATS = ("csv", "ndjson", "parquet")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A contract is reviewed text, but it is parsed before anyone reads it: bound what it may declare.
MAX_ENUM = 10_000  # values of one enum (a longer list belongs in a table: a referential_integrity check)
MAX_NESTING = 32  # levels of objects and arrays in an event contract (records past 64 are refused anyway)
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


@dataclass(frozen=True, slots=True)
class Constraints:
    """Value rules beyond the type. `None` means "no rule"."""

    enum: tuple[Any, ...] | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    exclusive_minimum: Decimal | None = None
    exclusive_maximum: Decimal | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    format: str | None = None


@dataclass(frozen=True, slots=True)
class Field:
    """One column (or nested property) of a contract.

    `required` means the key must be present; `nullable` means null is allowed as its value.
    A batch column declared `nullable: false` is required and not nullable.
    """

    name: str
    type: str
    required: bool = False
    nullable: bool = True
    constraints: Constraints = Constraints()
    precision: int | None = None
    scale: int | None = None
    fields: tuple[Field, ...] = ()
    items: Field | None = None
    pii: str | None = None
    description: str | None = None
    renamed_from: str | None = None  # the name this field had in the previous version (a rename by field id)

    @property
    def type_name(self) -> str:
        if self.type == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.type == "list" and self.items is not None:
            return f"list<{self.items.type_name}>"
        return self.type


@dataclass(frozen=True, slots=True)
class ColumnText:
    """How one CSV column's text is read, where it differs from the file's defaults (None: as the file)."""

    name: str
    null_values: tuple[str, ...] | None = None
    true_values: tuple[str, ...] | None = None
    false_values: tuple[str, ...] | None = None
    format: str | None = None  # a strptime format for a date or timestamp column, e.g. "%d/%m/%Y"


@dataclass(frozen=True, slots=True)
class CsvOptions:
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ("",)  # texts read as null (replaces the default, which is the empty field)
    true_values: tuple[str, ...] = ()  # boolean spellings accepted besides true/false/1/0
    false_values: tuple[str, ...] = ()
    thousands: str | None = None  # removed from integer, double and decimal columns
    decimal: str = "."  # read as the decimal point in double and decimal columns
    columns: tuple[ColumnText, ...] = ()  # per-column overrides


@dataclass(frozen=True, slots=True)
class FileSpec:
    """How a source's files are named and read."""

    pattern: str
    format: Literal["csv", "ndjson", "parquet"]
    csv: CsvOptions = CsvOptions()


@dataclass(frozen=True, slots=True)
class Contract:
    """A versioned schema for one source, whatever file it came from."""

    source: str
    version: int
    kind: Literal["event", "batch"]
    fields: tuple[Field, ...]
    key: tuple[str, ...] = ()
    event_time: str | None = None
    compatibility: str = "backward"
    accept_previous_until: date | None = None  # the previous version is still accepted until this day (UTC)
    strict: bool = True
    file: FileSpec | None = None
    description: str | None = None
    owner: str | None = None
    path: str = ""
    # the version before this one, attached by the registry when this one has accept_previous_until
    previous: Contract | None = field(default=None, compare=False, repr=False)
    _by_name: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})

    @property
    def ref(self) -> str:
        return f"{self.source}.v{self.version}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        return self._by_name[name]

    def pii_columns(self) -> dict[str, str]:
        """Top-level column → PII class, for columns that carry one."""
        return {f.name: f.pii for f in self.fields if f.pii}


def parse_type(text: str) -> tuple[str, int | None, int | None]:
    """`'decimal(12,2)'` → `('decimal', 12, 2)`; plain names pass through (aliases folded)."""
    name = text.strip().lower()
    aliases = {
        "int": "integer",
        "long": "integer",
        "bigint": "integer",
        "float": "double",
        "number": "double",
        "bool": "boolean",
        "str": "string",
        "text": "string",
        "timestamptz": "timestamp",
        "datetime": "timestamp",
    }
    name = aliases.get(name, name)
    m = _DECIMAL.match(name)
    if m:
        precision, scale = int(m.group(1)), int(m.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal({precision},{scale}) needs 1 ≤ precision ≤ 38 and scale ≤ precision")
        return "decimal", precision, scale
    if name not in TYPES or name in ("struct", "list", "json", "decimal"):
        raise ValueError(
            f"unknown type '{text}' (expected one of: string, integer, double, boolean, date, timestamp, decimal(P,S))"
        )
    return name, None, None

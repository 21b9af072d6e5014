"""Checks as declared in `checks/*.yaml`, and the result of evaluating one.

dataset: silver.orders
checks:
  - {type: not_null, columns: [order_id, customer_id]}
  - {type: accepted_values, column: status, values: [placed, paid], severity: warn}
  - {type: referential_integrity, column: customer_id, references: silver.customers.customer_id}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from lakestack.errors import Location

Severity = Literal["warn", "drop", "fail"]
Status = Literal["pass", "warn", "fail", "error", "skipped"]
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")


class _Check(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    severity: Severity = "fail"
    description: str | None = None
    _location: Location | None = PrivateAttr(default=None)  # where it was declared (set by the loader)

    @property
    def check_name(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        return str(getattr(self, "type", "check"))

    @property
    def row_level(self) -> bool:
        """Whether the check has failing rows (and so can `drop` them)."""
        return True


class NotNull(_Check):
    type: Literal["not_null"]
    columns: list[str]

    def default_name(self) -> str:
        return f"not_null({', '.join(self.columns)})"


class Unique(_Check):
    type: Literal["unique"]
    columns: list[str]

    def default_name(self) -> str:
        return f"unique({', '.join(self.columns)})"


class AcceptedValues(_Check):
    type: Literal["accepted_values"]
    column: str
    values: list[str | int | float | bool]

    def default_name(self) -> str:
        return f"accepted_values({self.column})"


class Range(_Check):
    type: Literal["range"]
    column: str
    min: float | None = None
    max: float | None = None

    def default_name(self) -> str:
        return f"range({self.column})"


class Regex(_Check):
    type: Literal["regex"]
    column: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        from lakestack.contracts.regex import problem  # the engine checks run on: DuckDB's RE2, as contracts

        why = problem(value)
        if why is not None:
            raise ValueError(why)
        return value

    def default_name(self) -> str:
        return f"regex({self.column})"


class RowCount(_Check):
    type: Literal["row_count"]
    min: int | None = None
    max: int | None = None

    @property
    def row_level(self) -> bool:
        return False


class NullPct(_Check):
    type: Literal["null_pct"]
    column: str
    max: float = Field(ge=0, le=100)

    def default_name(self) -> str:
        return f"null_pct({self.column})"

    @property
    def row_level(self) -> bool:
        return False


class Freshness(_Check):
    type: Literal["freshness"]
    column: str = "_ingested_at"
    max_age: str

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    def default_name(self) -> str:
        return f"freshness({self.column})"

    @property
    def row_level(self) -> bool:
        return False


class VolumeAnomaly(_Check):
    type: Literal["volume_anomaly"]
    method: Literal["zscore", "pct"] = "zscore"
    threshold: float = 3.0
    min_history: int = Field(default=5, ge=2)

    @property
    def row_level(self) -> bool:
        return False


class ReferentialIntegrity(_Check):
    type: Literal["referential_integrity"]
    column: str
    references: str  # layer.table.column

    @field_validator("references")
    @classmethod
    def _three_parts(cls, value: str) -> str:
        if len(value.split(".")) != 3:
            raise ValueError("references is layer.table.column, like silver.customers.customer_id")
        return value

    def default_name(self) -> str:
        return f"referential_integrity({self.column} → {self.references})"


class SchemaMatches(_Check):
    type: Literal["schema"]

    @property
    def row_level(self) -> bool:
        return False


class CustomSql(_Check):
    type: Literal["custom_sql"]
    sql: str  # a SELECT returning the failing rows

    def default_name(self) -> str:
        return "custom_sql"


Check = Annotated[
    NotNull
    | Unique
    | AcceptedValues
    | Range
    | Regex
    | RowCount
    | NullPct
    | Freshness
    | VolumeAnomaly
    | ReferentialIntegrity
    | SchemaMatches
    | CustomSql,
    Field(discriminator="type"),
]


class CheckFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    checks: list[Check]

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        layer, _, name = value.partition(".")
        if layer not in ("bronze", "silver", "gold") or not name:
            raise ValueError("a dataset is named layer.name, like silver.orders")
        return value


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a duration (like 30m, 48h, 7d)")
    amount, unit = int(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One evaluation of one check."""

    dataset: str
    check: str
    check_type: str
    severity: str
    status: Status
    observed: float | None
    threshold: str
    failing_rows: int
    snapshot_id: int | None
    duration_s: float
    message: str = ""

    @property
    def blocks(self) -> bool:
        """A failed `fail` check blocks its gate; so does a `fail` check that could not run."""
        return self.status == "fail" or (self.status == "error" and self.severity == "fail")

"""`slas.yaml`: the service levels a project promises, as frozen pydantic models.

    evaluate_every: 5m            # how often `lakestack serve` evaluates them (default 5m)
    objective: 99%                # share of the time each SLA must be met: its error budget (default 99%)
    slas:
      silver_orders_fresh:        # the SLA's name (unique: a second one of that name is an error)
        kind: freshness
        dataset: silver.orders
        max_age: 15m              # of its last data commit, or of the newest `column` value
      metrics_by_3am:
        kind: deadline
        dataset: gold.daily_order_metrics
        by: "03:00"               # a successful build recorded in the 24 h before 03:00 UTC, each day
      orders_every_day:
        kind: completeness
        dataset: silver.orders
        column: order_ts
        days: 14                  # each of the 14 days up to `through` has rows
        rows_within: 50%          # and the `through` day's rows are within ±50 % of the median of the
        history: 7d               # 7 days before it
        through: yesterday        # today | yesterday (default) | latest (the newest day present)
      builds_succeed:
        kind: availability
        job: build                # a job type (ingest, promote, build, check, run, stream) or job (build.fact_sales)
        min_success: 99%
        window: 7d

The file is optional. Errors name the file, line and key (exit 2), like every project file.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakestack.errors import Location, ProjectError

SLA_FILE = "slas.yaml"
KINDS = ("freshness", "deadline", "completeness", "availability")
JOB_TYPES = ("run", "ingest", "stream", "promote", "build", "check")
RESERVED = ("history",)  # `lakestack sla history NAME` would not reach an SLA of this name
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `2h`, `7d`, `2w` as a timedelta (more than zero)."""
    m = _DURATION.match(str(text))
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"'{text}' is not a duration (a positive number and a unit: 30s, 15m, 2h, 7d, 2w)")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def parse_percent(value: Any) -> float:
    """`99%`, `99.5%` or a bare number (percent) as a fraction: 0.99."""
    m = _PERCENT.match(str(value)) if not isinstance(value, bool) else None
    if not m or not 0 < float(m.group(1)) <= 100:
        raise ValueError(f"'{value}' is not a percentage above 0 and at most 100 (like 99% or 99.5%)")
    return float(m.group(1)) / 100


def _duration(value: Any) -> str:
    parse_duration(value)
    return str(value).strip()


def _percent(value: Any) -> str:
    parse_percent(value)
    return str(value).strip().removesuffix("%").strip() + "%"


Duration = Annotated[str, Field(description="30s, 15m, 2h, 7d, 2w")]
Percent = Annotated[str | float, Field(description="99% or 99.5%")]


class _Sla(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str | None = None
    objective: Percent | None = None  # this SLA's own objective (default: the file's)

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: Any) -> Any:
        if value is not None and parse_percent(value) >= 1:
            raise ValueError("an objective below 100% leaves an error budget (like 99% or 99.9%)")
        return None if value is None else _percent(value)

    @property
    def dataset_name(self) -> str | None:
        return getattr(self, "dataset", None)


class _OnDataset(_Sla):
    dataset: str

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        layer, _, name = value.partition(".")
        if layer not in ("bronze", "silver", "gold") or not name:
            raise ValueError(f"'{value}' is not a dataset: name one as layer.name, like silver.orders")
        return value


class FreshnessSla(_OnDataset):
    """The newest data is at most `max_age` old: its last data commit, or the newest `column` value."""

    kind: Literal["freshness"]
    max_age: Duration
    column: str | None = None

    _max_age = field_validator("max_age", mode="before")(lambda cls, v: _duration(v))


class DeadlineSla(_OnDataset):
    """Each day, a successful job for the dataset (ingest, promote or build) ends by `by` (UTC)."""

    kind: Literal["deadline"]
    by: str

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, value: Any) -> str:
        if isinstance(value, int) and 0 <= value < 24 * 60:  # YAML 1.1 reads an unquoted 03:00 as 180
            value = f"{value // 60:02d}:{value % 60:02d}"
        try:
            parsed = time.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"'{value}' is not a time of day (HH:MM, UTC)") from None
        return parsed.strftime("%H:%M")

    @property
    def at(self) -> time:
        return time.fromisoformat(self.by)


class CompletenessSla(_OnDataset):
    """Every day of the last `days` has rows (on `column`), and/or the last day's row count is within
    `rows_within` of the median of the `history` days before it."""

    kind: Literal["completeness"]
    column: str
    days: Annotated[int, Field(ge=1, le=3660)] | None = None
    rows_within: Percent | None = None
    history: Duration = "7d"
    through: Literal["today", "yesterday", "latest"] = "yesterday"

    _history = field_validator("history", mode="before")(lambda cls, v: _duration(v))

    @field_validator("rows_within", mode="before")
    @classmethod
    def _within(cls, value: Any) -> Any:
        return None if value is None else _percent(value)

    @model_validator(mode="after")
    def _something(self) -> CompletenessSla:
        if self.days is None and self.rows_within is None:
            raise ValueError("a completeness SLA needs days (partitions present) or rows_within (a row-count band)")
        if parse_duration(self.history) < timedelta(days=1):
            raise ValueError(f"history {self.history}: at least 1d (the band compares whole days)")
        return self


class AvailabilitySla(_Sla):
    """At least `min_success` of the runs of `job` (a job type or one job) in `window` succeed."""

    kind: Literal["availability"]
    job: str
    min_success: Percent
    window: Duration = "7d"

    _window = field_validator("window", mode="before")(lambda cls, v: _duration(v))
    _min = field_validator("min_success", mode="before")(lambda cls, v: _percent(v))

    @field_validator("job")
    @classmethod
    def _job(cls, value: str) -> str:
        if value.partition(".")[0] not in JOB_TYPES:
            raise ValueError(
                f"'{value}' is not a job: a job type ({', '.join(JOB_TYPES)}) or a job such as build.fact_sales"
            )
        return value


Sla = Annotated[FreshnessSla | DeadlineSla | CompletenessSla | AvailabilitySla, Field(discriminator="kind")]


class SlaFile(BaseModel):
    """The whole of `slas.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    evaluate_every: Duration = "5m"
    objective: Percent = "99%"
    slas: dict[str, Sla] = {}

    _every = field_validator("evaluate_every", mode="before")(lambda cls, v: _duration(v))

    @field_validator("objective", mode="before")
    @classmethod
    def _objective(cls, value: Any) -> str:
        if parse_percent(value) >= 1:
            raise ValueError("an objective below 100% leaves an error budget (like 99% or 99.9%)")
        return _percent(value)

    @property
    def every_s(self) -> float:
        return parse_duration(self.evaluate_every).total_seconds()

    def objective_of(self, sla: Any) -> float:
        """The objective of one SLA as a fraction (its own, else the file's)."""
        return parse_percent(sla.objective or self.objective)


def project_datasets(root: Path, config: Any) -> set[str]:
    """The datasets of a project: `bronze.<source>`, `silver.<dataset>`, `gold.<model file>`."""
    names = {f"bronze.{s}" for s in config.sources}
    names |= {f"silver.{n}" for n, d in config.datasets.items() if d.layer == "silver"}
    folder = root / "models" / "gold"
    return names | ({f"gold.{p.stem}" for p in folder.glob("*.sql")} if folder.is_dir() else set())


def load_slas(root: Path, config: Any) -> SlaFile | None:
    """`slas.yaml` of the project at `root`, checked against its datasets and jobs; None without one."""
    from lakestack._yaml import load_yaml

    path = root / SLA_FILE
    if not path.exists():
        return None
    data, smap = load_yaml(path, display=SLA_FILE)
    if data is None:
        return SlaFile()
    if not isinstance(data, dict):
        raise ProjectError("expected a mapping with evaluate_every, objective and slas", Location(SLA_FILE, 1))
    try:
        spec = SlaFile.model_validate(data)
    except ValidationError as exc:
        message, location = _problem(exc, smap, data)
        raise ProjectError(message, location) from None
    _check_names(spec, smap, project_datasets(root, config), config)
    return spec


def _check_names(spec: SlaFile, smap: Any, datasets: set[str], config: Any) -> None:
    for name, sla in spec.slas.items():
        if not _NAME.match(name) or name in RESERVED:
            why = "is reserved" if name in RESERVED else "must start with a letter: letters, digits, _ . -"
            raise ProjectError(f"SLA name '{name}' {why}", smap.locate(("slas", name)))
        dataset = sla.dataset_name
        if dataset is not None and dataset not in datasets:
            raise ProjectError(
                f"unknown dataset '{dataset}' (datasets: {', '.join(sorted(datasets))})",
                smap.locate(("slas", name, "dataset")),
            )
        if isinstance(sla, AvailabilitySla) and "." in sla.job:
            kind, _, target = sla.job.partition(".")
            known = _jobs_of(kind, datasets, config)
            if target not in known:
                raise ProjectError(
                    f"unknown job '{sla.job}' ({kind} jobs: {', '.join(sorted(f'{kind}.{j}' for j in known))})",
                    smap.locate(("slas", name, "job")),
                )


def _jobs_of(kind: str, datasets: set[str], config: Any) -> set[str]:
    """The names after `kind.` that jobs of a type carry (`build.fact_sales`, `check.silver.orders`)."""
    by_layer = {"ingest": "bronze", "stream": "bronze", "promote": "silver", "build": "gold"}
    if kind == "check":
        return set(datasets)
    if kind == "run":
        return set()
    return {d.partition(".")[2] for d in datasets if d.startswith(by_layer[kind] + ".")}


def _problem(exc: ValidationError, smap: Any, data: dict[str, Any]) -> tuple[str, Location]:
    """The first error of `exc` as (message, location). The kind pydantic adds to the location of a
    discriminated SLA (`slas.x.freshness.max_age`) is left out: it is not a key of the file."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    if len(loc) >= 3 and loc[0] == "slas" and loc[2] in KINDS:
        loc = (*loc[:2], *loc[3:])
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], data)
        allowed = f" (expected one of: {', '.join(model.model_fields)})" if model else ""
        return f"unknown key '{loc[-1]}'{allowed}", smap.locate(loc)
    if kind == "missing":
        return f"missing required key '{loc[-1]}'", smap.locate(loc[:-1])
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        got = err.get("ctx", {}).get("tag")
        what = f"unknown kind '{got}'" if got is not None else "missing required key 'kind'"
        return f"{what} (kinds: {', '.join(KINDS)})", smap.locate((*loc, "kind") if got is not None else loc)
    if kind == "literal_error":
        return f"{err['msg'].lower()}, got {err.get('input')!r}", smap.locate(loc)
    return str(err["msg"]).removeprefix("Value error, "), smap.locate(loc)


def _model_at(loc: tuple[Any, ...], data: dict[str, Any]) -> type[BaseModel] | None:
    """The model whose keys are allowed at `loc`: the file's, or one SLA's (by its kind)."""
    if not loc:
        return SlaFile
    if len(loc) == 2 and loc[0] == "slas":
        entry = (data.get("slas") or {}).get(loc[1])
        kind = entry.get("kind") if isinstance(entry, dict) else None
        return sla_model(kind) if kind in KINDS else None
    return None


def sla_model(kind: str) -> type[BaseModel]:
    """The model of one kind of SLA."""
    models: dict[str, type[BaseModel]] = {
        "freshness": FreshnessSla,
        "deadline": DeadlineSla,
        "completeness": CompletenessSla,
        "availability": AvailabilitySla,
    }
    return models[kind]

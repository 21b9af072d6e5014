"""Measuring one SLA: table metadata, small aggregates through the SQL sandbox, and run records.

Every SQL here is a sqlglot expression over a dataset `slas.yaml` named and the loader checked
against the project; columns are quoted identifiers and times are literals, never pasted text. It
runs in `engine.open_sandbox` over that one table, like every SQL a project carries (ADR 10).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from lakestack.monitor.sla import SlaResult, SlaStatus
from lakestack.monitor.sla_spec import (
    AvailabilitySla,
    CompletenessSla,
    DeadlineSla,
    FreshnessSla,
    parse_duration,
    parse_percent,
)

RUNS = "_lakestack.runs"  # the run records (pipeline/records.py); read here as a table, like any other
COMPLETE = "COMPLETE"
JOB_OF_LAYER = {"bronze": "ingest", "silver": "promote", "gold": "build"}  # the job that writes a layer
DAY = timedelta(days=1)


@dataclass
class Probe:
    """What one evaluation reads, read once: tables from the warehouse, run records since `since`."""

    warehouse: Any
    now: datetime
    since: datetime  # the oldest run record any SLA of this evaluation looks at
    _runs: tuple[list[dict[str, Any]], datetime | None] | None = field(default=None, repr=False)

    def table(self, dataset: str) -> Any:
        return self.warehouse.load(dataset) if self.warehouse.exists(dataset) else None

    def select(self, dataset: str, table: Any, query: Any, label: str) -> list[dict[str, Any]]:
        """One SELECT (a sqlglot expression) over `dataset` alone, in the sandbox."""
        from lakestack.engine import open_sandbox
        from lakestack.engine.base import SqlInput, SqlLimits

        limits = SqlLimits(timeout_s=120.0, max_rows=100_000)
        with open_sandbox([SqlInput(dataset, table)], limits, label=label) as sandbox:
            rows: list[dict[str, Any]] = sandbox.table(query.sql("duckdb")).to_pylist()
        return rows

    def runs(self) -> tuple[list[dict[str, Any]], datetime | None]:
        """Run records started since `since` (job, job_type, status, started_at, ended_at), and when
        the first record of all was started (None: the lake has no run records)."""
        if self._runs is None:
            self._runs = self._read_runs()
        return self._runs

    def _read_runs(self) -> tuple[list[dict[str, Any]], datetime | None]:
        from sqlglot import exp

        table = self.table(RUNS)
        if table is None:
            return [], None
        first = self.select(RUNS, table, exp.select(exp.Min(this=_col("started_at")).as_("first")).from_(RUNS), "runs")
        columns = [_col(c) for c in ("job", "job_type", "status", "started_at", "ended_at")]
        recent = exp.select(*columns).from_(RUNS).where(exp.GTE(this=_col("started_at"), expression=_ts(self.since)))
        return self.select(RUNS, table, recent, "runs"), first[0]["first"] if first else None


Measure = Callable[[str, Any, Probe], SlaResult]


def _col(name: str) -> Any:
    from sqlglot import exp

    return exp.column(name, quoted=True)


def _ts(moment: datetime) -> Any:
    from sqlglot import exp

    return exp.cast(exp.Literal.string(moment.astimezone(UTC).isoformat()), "timestamptz")


def _date(day: date) -> Any:
    from sqlglot import exp

    return exp.cast(exp.Literal.string(day.isoformat()), "date")


def _result(
    name: str, sla: Any, probe: Probe, status: SlaStatus, observed: str, target: str, message: str, **more: Any
) -> SlaResult:
    return SlaResult(
        name=name,
        kind=sla.kind,
        dataset=sla.dataset_name,
        status=status,
        observed=observed,
        target=target,
        message=message,
        evaluated_at=probe.now,
        **more,
    )


def human(seconds: float) -> str:
    """A span for people: `45 s`, `12 min`, `3 h 4 min`, `2 d 3 h`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min" if s % 3600 >= 60 else f"{s // 3600} h"
    return f"{s // 86400} d {s % 86400 // 3600} h" if s % 86400 >= 3600 else f"{s // 86400} d"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def measure(name: str, sla: Any, probe: Probe) -> SlaResult:
    """One SLA measured now; a problem measuring it (a missing table or column) is `unknown`."""
    kinds: dict[type, Measure] = {
        FreshnessSla: freshness,
        DeadlineSla: deadline,
        CompletenessSla: completeness,
        AvailabilitySla: availability,
    }
    return kinds[type(sla)](name, sla, probe)


# -- freshness ----------------------------------------------------------------------------------


def freshness(name: str, sla: FreshnessSla, probe: Probe) -> SlaResult:
    limit = parse_duration(sla.max_age).total_seconds()
    what = f"newest {sla.column}" if sla.column else "last commit"
    target = f"≤ {sla.max_age} old ({what})"
    table = probe.table(sla.dataset)
    if table is None:
        return _result(name, sla, probe, "unknown", "no table", target, f"{sla.dataset} does not exist yet")
    found = _newest_value(name, sla, table, probe) if sla.column else last_data_commit(table)
    if not isinstance(found, datetime):
        problem = found or f"{sla.dataset} has no data yet"
        return _result(name, sla, probe, "unknown", "not measured", target, problem)
    newest = found
    age = (probe.now - newest).total_seconds()
    observed = f"{human(age)} old"
    ok = age <= limit
    message = (
        f"{sla.dataset}: {what} is {human(age)} old, within {sla.max_age}"
        if ok
        else f"{sla.dataset}: {what} is {human(age)} old, more than {sla.max_age} ({stamp(newest)})"
    )
    return _result(
        name,
        sla,
        probe,
        "ok" if ok else "breach",
        observed,
        target,
        message,
        time_left_s=limit - age if ok else None,
        observed_value=age,
        target_value=limit,
    )


def last_data_commit(table: Any) -> datetime | None:
    """When the newest snapshot that changed the data was committed (a compaction, `replace`, is not new data)."""
    for snap in reversed(table.metadata.snapshots):
        operation = getattr(snap.summary, "operation", None) if snap.summary else None
        if getattr(operation, "value", operation) != "replace":
            return datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC)
    return None


def _newest_value(name: str, sla: FreshnessSla, table: Any, probe: Probe) -> datetime | str:
    """The newest value of the SLA's column as a UTC time, or why it cannot be told."""
    from sqlglot import exp

    assert sla.column is not None
    problem = _time_column_problem(table, sla.dataset, sla.column)
    if problem:
        return problem
    query = exp.select(exp.cast(exp.Max(this=_col(sla.column)), "timestamptz").as_("newest")).from_(sla.dataset)
    rows = probe.select(sla.dataset, table, query, f"SLA {name}")
    newest = rows[0]["newest"] if rows else None
    if newest is None:
        return f"{sla.dataset} has no {sla.column} values yet"
    return newest if isinstance(newest, datetime) else datetime.combine(newest, time(), UTC)


def _time_column_problem(table: Any, dataset: str, column: str) -> str | None:
    fields = {f.name: str(f.field_type) for f in table.schema().fields}
    if column not in fields:
        return f"{dataset} has no column '{column}' (columns: {', '.join(fields)})"
    if not fields[column].startswith(("timestamp", "date")):
        return f"{dataset}.{column} is {fields[column]}, not a date or timestamp"
    return None


# -- deadline -----------------------------------------------------------------------------------


def deadline_job(dataset: str) -> str:
    """The job whose success a deadline waits for: `build.<model>`, `promote.<dataset>`, `ingest.<source>`."""
    layer, _, short = dataset.partition(".")
    return f"{JOB_OF_LAYER[layer]}.{short}"


def deadline(name: str, sla: DeadlineSla, probe: Probe) -> SlaResult:
    """Met for a day when the job succeeded in the 24 h before that day's deadline. Deadlines that
    passed before the lake kept run records are not held against it."""
    job = deadline_job(sla.dataset)
    target = f"{job} by {sla.by} UTC daily"
    runs, first = probe.runs()
    if first is None:
        return _result(name, sla, probe, "unknown", "no runs yet", target, "the lake has no run records yet")
    done = sorted(r["ended_at"] for r in runs if r["job"] == job and r["status"] == COMPLETE and r["ended_at"])
    last = datetime.combine(probe.now.date(), sla.at, UTC)
    if last > probe.now:
        last -= DAY
    latest = next((t for t in reversed(done) if t <= probe.now), None)
    seen = f"built {stamp(latest)}" if latest else f"not built since {stamp(probe.since)}"
    met = any(last - DAY < t <= last for t in done)
    if not met and first <= last - DAY:
        return _result(
            name,
            sla,
            probe,
            "breach",
            seen,
            target,
            f"{job} did not succeed in the 24 h before {stamp(last)} ({seen})",
            observed_value=(probe.now - latest).total_seconds() if latest else None,
        )
    following = last + DAY
    ahead = following + DAY if any(last < t <= probe.now for t in done) else following
    note = "" if met else f" (the first deadline the lake's records cover is {stamp(following)})"
    return _result(
        name,
        sla,
        probe,
        "ok",
        seen,
        target,
        f"{job}: {seen}; next deadline {stamp(ahead)}{note}",
        time_left_s=(ahead - probe.now).total_seconds(),
        observed_value=(probe.now - latest).total_seconds() if latest else None,
    )


# -- completeness -------------------------------------------------------------------------------


def completeness(name: str, sla: CompletenessSla, probe: Probe) -> SlaResult:
    from sqlglot import exp

    parts = []
    if sla.days:
        parts.append(f"{sla.days} days through {sla.through}")
    if sla.rows_within:
        parts.append(f"rows ±{sla.rows_within} of {sla.history} median")
    target = "; ".join(parts)
    table = probe.table(sla.dataset)
    problem = (
        f"{sla.dataset} does not exist yet" if table is None else _time_column_problem(table, sla.dataset, sla.column)
    )
    if problem:
        return _result(name, sla, probe, "unknown", "not measured", target, problem)
    day = exp.cast(_col(sla.column), "date")
    bounds = probe.select(
        sla.dataset,
        table,
        exp.select(exp.Min(this=day).as_("first"), exp.Max(this=day.copy()).as_("last")).from_(sla.dataset),
        f"SLA {name}",
    )[0]
    if bounds["last"] is None:
        return _result(name, sla, probe, "unknown", "no rows", target, f"{sla.dataset} has no rows yet")
    today = probe.now.date()
    end = {"today": today, "yesterday": today - DAY, "latest": bounds["last"]}[sla.through]
    history = parse_duration(sla.history).days if sla.rows_within else 0
    start = end - timedelta(days=max((sla.days or 1) - 1, history))
    counted = exp.select(day.copy().as_("day"), exp.Count(this=exp.Star()).as_("n")).from_(sla.dataset)
    counted = counted.where(exp.Between(this=day.copy(), low=_date(start), high=_date(end))).group_by(exp.column("day"))
    counts = {r["day"]: r["n"] for r in probe.select(sla.dataset, table, counted, f"SLA {name}")}
    return _judge_completeness(name, sla, probe, target, counts, end, bounds["first"])


def _judge_completeness(
    name: str, sla: CompletenessSla, probe: Probe, target: str, counts: dict[date, int], end: date, first: date
) -> SlaResult:
    observed, problems, status = [], [], "ok"
    value = needed = None
    if sla.days:
        # days before the first row are not missing: the data starts there (a young lake)
        days = [d for d in (end - timedelta(days=i) for i in range(sla.days)) if d >= first]
        missing = sorted(d for d in days if not counts.get(d))
        since = f" (rows start {first})" if len(days) < sla.days else ""
        observed.append(f"{len(days) - len(missing)}/{len(days)} days{since}")
        value, needed = float(len(days) - len(missing)), float(len(days))
        if missing:
            shown = ", ".join(d.isoformat() for d in missing[:5]) + (", ..." if len(missing) > 5 else "")
            problems.append(f"no rows on {len(missing)} day(s): {shown}")
    if sla.rows_within:
        past = [counts.get(end - timedelta(days=i), 0) for i in range(1, parse_duration(sla.history).days + 1)]
        past = past[: max(0, (end - first).days)]  # days before the first row are not history
        rows = counts.get(end, 0)
        if not past:
            observed.append(f"{end}: {rows:,} rows (no history yet)")
            status = "unknown" if not problems else "breach"
        else:
            median = statistics.median(past)
            band = parse_percent(sla.rows_within) * median
            observed.append(f"{rows:,} rows on {end} (median {median:,.0f})")
            value = value if sla.days else float(rows)
            if abs(rows - median) > band:
                problems.append(f"{end} has {rows:,} rows, outside ±{sla.rows_within} of the median {median:,.0f}")
    if problems:
        status = "breach"
    message = f"{sla.dataset}: " + ("; ".join(problems) if problems else "; ".join(observed))
    return _result(
        name,
        sla,
        probe,
        status,  # type: ignore[arg-type]
        "; ".join(observed),
        target,
        message,
        time_left_s=_completeness_left(sla, probe, counts) if status == "ok" else None,
        observed_value=value,
        target_value=needed,
    )


def _completeness_left(sla: CompletenessSla, probe: Probe, counts: dict[date, int]) -> float | None:
    """Until the window next moves to a day without rows (only the partitions part can tell)."""
    if not sla.days or sla.through == "latest":
        return None
    midnight = datetime.combine(probe.now.date() + DAY, time(), UTC)
    if sla.through == "yesterday" and counts.get(probe.now.date()):
        midnight += DAY
    return (midnight - probe.now).total_seconds()


# -- availability -------------------------------------------------------------------------------


def availability(name: str, sla: AvailabilitySla, probe: Probe) -> SlaResult:
    window = parse_duration(sla.window)
    wanted = parse_percent(sla.min_success)
    target = f"≥ {sla.min_success} of {sla.job} runs over {sla.window}"
    runs, _ = probe.runs()
    since = probe.now - window
    if "." in sla.job:
        mine = [r for r in runs if r["job"] == sla.job and since <= r["started_at"] <= probe.now]
    else:
        mine = [r for r in runs if r["job_type"] == sla.job and since <= r["started_at"] <= probe.now]
    if not mine:
        return _result(name, sla, probe, "unknown", "no runs", target, f"no {sla.job} runs in the last {sla.window}")
    good = sum(1 for r in mine if r["status"] == COMPLETE)
    share = good / len(mine)
    observed = f"{share:.1%} ({good:,}/{len(mine):,} runs)"
    ok = share >= wanted
    message = f"{sla.job}: {good:,} of {len(mine):,} runs in the last {sla.window} succeeded ({share:.1%})"
    return _result(
        name,
        sla,
        probe,
        "ok" if ok else "breach",
        observed,
        target,
        message + ("" if ok else f", below {sla.min_success}"),
        observed_value=share,
        target_value=wanted,
    )

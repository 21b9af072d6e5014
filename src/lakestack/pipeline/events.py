"""Run events: the seam every job reports through (run records, OpenLineage, metrics, alerts).

`Lake` opens a :class:`JobRun` for each job it does (ingest of one source, a stream session,
promote of one dataset, build of one model, the checks of one dataset, and the `run` that holds
them) through :meth:`RunEvents.job`, and tells the listeners what happens in it::

    with events.job("promote", "promote.orders", parent=run_id) as job:
        job.dataset(DatasetIO("bronze.orders", "input", snapshot_id=...))
        ...
        job.dataset(DatasetIO("silver.orders", "output", snapshot_id=..., rows=...))

A listener implements :class:`RunListener`. A listener that raises is logged and counted in
:attr:`RunEvents.listener_errors`, never allowed to fail or slow the data job: listeners must do
their slow work (network) off the calling thread.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

log = logging.getLogger(__name__)

JobType = Literal[
    "run",
    "ingest",
    "stream",
    "promote",
    "build",
    "check",
    "publish",
    "backfill",
    "maintain",
    "replay",
    "rollback",
    "erase",
    "apply",
    "enrich",
]
Status = Literal["RUNNING", "COMPLETE", "FAIL", "ABORT"]


def uuid7(now_ms: int | None = None) -> str:
    """A time-ordered UUID (RFC 9562 version 7): 48 bits of Unix milliseconds, then random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | rand & ((1 << 62) - 1)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class DatasetIO:
    """A table a job read (input) or wrote (output), at a snapshot, with what it counted."""

    name: str  # "bronze.orders", "quarantine.orders", "silver.orders", "gold.fact_sales"
    role: Literal["input", "output"]
    snapshot_id: int | None = None
    rows: int | None = None  # rows read (input) or written (output)
    bytes: int | None = None
    quarantined: int | None = None
    dropped: int | None = None
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) — the schema, when known
    source: str | None = None  # where an ingest read from: a landing folder, a topic, a URL


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One data-quality check a job evaluated."""

    dataset: str
    name: str
    type: str
    passed: bool
    severity: str  # warn | drop | fail
    columns: tuple[str, ...] = ()
    failing_rows: int | None = None
    message: str | None = None


@dataclass(slots=True)
class JobRun:
    """One job as it runs: what listeners are told about, and what a run record stores."""

    run_id: str  # time-ordered UUID (uuid7): OpenLineage's runId
    job: str  # "ingest.orders", "promote.orders", "build.fact_sales", "check.silver.orders", "run"
    job_type: JobType
    parent_run_id: str | None = None
    parent_job: str | None = None
    lake_run_id: str | None = None  # the `_run_id` lakestack stamps on rows (`20261122T113000Z-…`)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    status: Status = "RUNNING"
    error: str | None = None
    sql: str | None = None  # a Gold model's SELECT
    source_file: str | None = None  # the project file that defines the job (model, checks, contract)
    datasets: list[DatasetIO] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)  # stage → seconds
    progress: dict[str, Any] = field(default_factory=dict)  # the newest RUNNING figures (streams)
    # A quality gate stopped the job (its checks failed, or an upstream's did): it ends FAIL for
    # listeners that know only COMPLETE/FAIL/ABORT (OpenLineage); run records store it as BLOCKED.
    blocked: bool = False
    # The exit code the failure maps to (2: the project or the command was refused before any data
    # work; 3: the run failed), when it failed with an exception.
    exit_code: int | None = None

    @property
    def duration_s(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None


class RunListener:
    """Override what you need; every method is a no-op by default."""

    def on_start(self, job: JobRun) -> None:
        """The job began."""

    def on_dataset(self, job: JobRun, dataset: DatasetIO) -> None:
        """The job read or wrote a dataset (as soon as it is known)."""

    def on_check(self, job: JobRun, check: CheckOutcome) -> None:
        """The job evaluated a check."""

    def on_progress(self, job: JobRun) -> None:
        """A long job (a stream session) reports its running totals (`job.progress`)."""

    def on_complete(self, job: JobRun) -> None:
        """The job ended well (`job.status` COMPLETE)."""

    def on_fail(self, job: JobRun) -> None:
        """The job failed (`job.status` FAIL, `job.error`) or was stopped (ABORT)."""

    def close(self) -> None:
        """Flush what is buffered; called once when the lake is done."""


class JobHandle:
    """What a job's code uses to report while it runs."""

    def __init__(self, events: RunEvents, job: JobRun) -> None:
        self._events, self.run = events, job
        self.failed: str | None = None

    def dataset(self, dataset: DatasetIO) -> None:
        self.run.datasets.append(dataset)
        self._events.emit("on_dataset", self.run, dataset)

    def check(self, check: CheckOutcome) -> None:
        self.run.checks.append(check)
        self._events.emit("on_check", self.run, check)

    def progress(self, **figures: Any) -> None:
        self.run.progress.update(figures)
        self._events.emit("on_progress", self.run)

    def stage(self, name: str, seconds: float) -> None:
        self.run.stages[name] = self.run.stages.get(name, 0.0) + seconds

    def fail(self, error: str, *, blocked: bool = False) -> None:
        """End the job FAIL (with `error`) when its block ends, without raising: a job that did what it
        could but did not succeed, such as a build whose quality gate failed (`blocked`)."""
        from lakestack._secrets import redact

        self.failed, self.run.blocked = redact(error[:2000]), blocked


class RunEvents:
    """Fans run events out to listeners; a listener's failure is logged and counted, never raised."""

    def __init__(self, listeners: Sequence[RunListener] = ()) -> None:
        self._listeners: list[RunListener] = list(listeners)
        self._deferred: list[Callable[[], Sequence[RunListener]]] = []
        self.listener_errors = 0

    @property
    def listeners(self) -> list[RunListener]:
        """Every listener, those deferred built now (in the order they were added)."""
        while self._deferred:
            self._listeners += self._deferred.pop(0)()
        return self._listeners

    def add(self, listener: RunListener) -> None:
        if self._deferred:  # after those deferred, in order
            self.defer(lambda: [listener])
        else:
            self._listeners.append(listener)

    def defer(self, make: Callable[[], Sequence[RunListener]]) -> None:
        """Listeners built when the first event is emitted or `listeners` is read: a command that
        runs no job (`query`, `tables`) never imports or builds them."""
        self._deferred.append(make)

    def emit(self, method: str, *args: Any) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, method)(*args)
            except Exception:  # a listener never fails the data job
                self.listener_errors += 1
                log.warning("run listener %s.%s failed", type(listener).__name__, method, exc_info=True)

    @contextmanager
    def job(
        self,
        job_type: JobType,
        name: str,
        *,
        parent: JobRun | None = None,
        lake_run_id: str | None = None,
        sql: str | None = None,
        source_file: str | None = None,
    ) -> Iterator[JobHandle]:
        """Run a job: START, then COMPLETE when the block ends, FAIL when it raises (re-raised),
        ABORT on KeyboardInterrupt/SystemExit."""
        run = JobRun(
            uuid7(),
            name,
            job_type,
            parent_run_id=parent.run_id if parent else None,
            parent_job=parent.job if parent else None,
            lake_run_id=lake_run_id or (parent.lake_run_id if parent else None),
            sql=sql,
            source_file=source_file,
        )
        self.emit("on_start", run)
        handle = JobHandle(self, run)
        try:
            yield handle
        except (KeyboardInterrupt, SystemExit) as exc:
            self._end(run, "ABORT", f"{type(exc).__name__}")
            raise
        except BaseException as exc:
            run.exit_code = int(getattr(exc, "exit_code", 3))
            self._end(run, "FAIL", _error_text(exc))
            raise
        if handle.failed is not None:
            self._end(run, "FAIL", handle.failed)
        else:
            self._end(run, "COMPLETE", None)

    def _end(self, run: JobRun, status: Status, error: str | None) -> None:
        run.ended_at, run.status, run.error = datetime.now(UTC), status, error
        self.emit("on_complete" if status == "COMPLETE" else "on_fail", run)

    def close(self) -> None:
        self._deferred.clear()  # never built: they heard nothing, so have nothing to flush
        self.emit("close")


def _error_text(exc: BaseException) -> str:
    """One line for a run record: the error's message (its type when it has none), secrets redacted."""
    from lakestack._secrets import redact

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if os.environ.get("LAKESTACK_DEBUG"):
        text += "\n" + "".join(traceback.format_exception(exc))
    return redact(text[:2000])

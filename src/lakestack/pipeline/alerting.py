"""Alerts from runs and SLAs: the run listener, SLA results, and the state and sinks in `monitor/`.

An environment turns alerts on with an `alerts:` block in `lakestack.yaml`::

    environments:
      prod:
        alerts:
          renotify: 4h                      # re-send an incident that stays open (off: never)
          sources: [run, gate, sla, quarantine]
          quarantine: {max_share: 0.05, spike_factor: 3, history: 7d}
          sinks:
            team: {webhook: {url: {secret: SLACK_HOOK_URL}, format: slack}}
            oncall: {email: {host: smtp.example.com, user: lake, password_secret: SMTP_PASSWORD,
                             from: lake@example.com, to: [oncall@example.com]}}
            pager: {sns: {topic_arn: "arn:aws:sns:eu-west-1:123456789012:lake-alerts"}}

:class:`AlertListener` hears every job. On the job's thread it only notes what it saw (a job
failed or completed, a fail-severity check failed or passed, an ingest's quarantine counts) in
its job tree; when the tree's top-level run ends, the notes go to a bounded queue. A worker
thread turns them into signals (a quarantine share is judged against the source's history in
`_lakestack.runs`), records the changes in `_lakestack.alerts` (`monitor/alerts.py`) and hands the
alerts to the sinks' sender threads (`monitor/sinks.py`). Nothing of that runs on, or can fail,
the data job. :func:`evaluate_alerts` does the same for SLA results (`lakestack sla`, the serve
scheduler) and re-sends the open incidents that are due.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakestack.config import AlertsConfig
from lakestack.monitor.alerts import Alert, AlertBook, Signal
from lakestack.monitor.rules import History, QuarantineShare, judge_quarantine, sla_signals
from lakestack.monitor.sinks import Dispatcher, Sink, create_sinks, deliver
from lakestack.pipeline.events import CheckOutcome, DatasetIO, JobRun, RunListener

if TYPE_CHECKING:
    from lakestack.monitor.sla import SlaResult
    from lakestack.pipeline.lake import Lake
    from lakestack.pipeline.project import Project

log = logging.getLogger(__name__)
IDLE_S = 2.0  # the worker thread ends after this long without work
CLOSE_WAIT_S = 30.0  # how long a closing lake waits for the state of its last runs to be recorded


_Note = Signal | QuarantineShare


@dataclass(slots=True)
class _Tree:
    notes: list[_Note] = field(default_factory=list)
    wrote: bool = False


def now_utc() -> datetime:
    return datetime.now(UTC)


class AlertListener(RunListener):
    """Notes incidents as jobs report them; a worker thread records and sends them (module docstring)."""

    def __init__(
        self,
        config: AlertsConfig,
        book: AlertBook,
        dispatcher: Dispatcher,
        *,
        history: History | None = None,
        max_pending: int = 1000,
    ) -> None:
        self.config, self.book, self.dispatcher = config, book, dispatcher
        self.sources = frozenset(config.sources)
        self.history = history  # (source, since, job run id to leave out) → earlier quarantine shares
        self.clock: Callable[[], datetime] = now_utc  # tests move it
        self.errors = 0  # batches whose state could not be recorded
        self._dropped = 0
        self._trees: dict[str, _Tree] = {}
        self._roots: dict[str, str] = {}  # job run id → its top-level run id
        self._failed_below: set[str] = set()  # jobs with a failed job inside (they are not the cause)
        self._stream_seen: dict[str, tuple[int, int]] = {}  # stream job → (landed, quarantined) so far
        self._lock = threading.RLock()
        self._record_lock = threading.Lock()  # one decision at a time in this process
        self._queue: queue.Queue[list[_Note]] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._closed = False
        _LIVE.add(self)

    @property
    def dropped(self) -> int:
        """Alert notes and notifications lost: a full queue here, or a sink that could not take them."""
        return self._dropped + self.dispatcher.dropped

    # -- on the job's thread: note, never wait ------------------------------------------------------
    def on_start(self, job: JobRun) -> None:
        with self._lock:
            root = self._roots.get(job.parent_run_id, job.parent_run_id) if job.parent_run_id else job.run_id
            self._roots[job.run_id] = root
            self._trees.setdefault(root, _Tree())

    def on_dataset(self, job: JobRun, dataset: DatasetIO) -> None:
        if dataset.role == "output":
            self._tree(job).wrote = True

    def on_check(self, job: JobRun, check: CheckOutcome) -> None:
        if "gate" not in self.sources or check.severity != "fail":
            return
        title = f"check {check.name} on {check.dataset} failed: the gate is blocked"
        message = check.message or (f"{check.failing_rows:,} failing rows" if check.failing_rows else "")
        if check.passed:
            title, message = f"check {check.name} on {check.dataset} passes again", "the check passed"
        self._note(
            job,
            Signal(
                f"gate:{check.dataset}:{check.name}",
                "gate",
                not check.passed,
                title,
                message,
                check.dataset,
                job.job,
                job.lake_run_id,
            ),
        )

    def on_progress(self, job: JobRun) -> None:
        if job.job_type != "stream" or "quarantine" not in self.sources:
            return
        landed, quarantined = int(job.progress.get("landed") or 0), int(job.progress.get("quarantined") or 0)
        before = self._stream_seen.get(job.run_id, (0, 0))
        if landed + quarantined - sum(before) < self.config.quarantine.min_records:
            return
        self._stream_seen[job.run_id] = (landed, quarantined)
        source = job.job.partition(".")[2]
        self._enqueue(
            [QuarantineShare(source, landed - before[0], quarantined - before[1], job.run_id, job.lake_run_id)]
        )

    def on_complete(self, job: JobRun) -> None:
        if "run" in self.sources:
            self._note(
                job,
                Signal(
                    f"run:{job.job}",
                    "run",
                    False,
                    f"job {job.job} succeeds again",
                    f"job {job.job} completed",
                    None,
                    job.job,
                    job.lake_run_id,
                ),
            )
        if "quarantine" in self.sources and job.job_type in ("ingest", "stream"):
            self._note_quarantine(job)
        self._ended(job)

    def on_fail(self, job: JobRun) -> None:
        with self._lock:
            cause = job.run_id not in self._failed_below
            if job.status == "FAIL" and not job.blocked and job.parent_run_id:
                self._failed_below.add(job.parent_run_id)
        if job.status == "FAIL" and not job.blocked and cause and "run" in self.sources:
            self._note(
                job,
                Signal(
                    f"run:{job.job}",
                    "run",
                    True,
                    f"job {job.job} failed",
                    job.error or "",
                    None,
                    job.job,
                    job.lake_run_id,
                ),
            )
        self._ended(job)

    def _tree(self, job: JobRun) -> _Tree:
        with self._lock:
            root = self._roots.get(job.run_id, job.run_id)
            return self._trees.setdefault(root, _Tree())

    def _note(self, job: JobRun, note: _Note) -> None:
        tree = self._tree(job)
        with self._lock:
            tree.notes.append(note)

    def _note_quarantine(self, job: JobRun) -> None:
        source = job.job.partition(".")[2]
        seen = self._stream_seen.pop(job.run_id, (0, 0)) if job.job_type == "stream" else (0, 0)
        for d in job.datasets:
            if d.role == "output" and d.name == f"bronze.{source}":
                landed, quarantined = (d.rows or 0) - seen[0], (d.quarantined or 0) - seen[1]
                self._note(job, QuarantineShare(source, landed, quarantined, job.run_id, job.lake_run_id))

    def _ended(self, job: JobRun) -> None:
        with self._lock:
            root = self._roots.pop(job.run_id, job.run_id)
            self._failed_below.discard(job.run_id)
            if job.parent_run_id is not None:
                return
            tree = self._trees.pop(root, _Tree())
        refused = job.status == "FAIL" and job.exit_code == 2 and not tree.wrote
        if tree.notes and not refused:  # a command refused before it touched data is no incident
            self._enqueue(tree.notes)

    def _enqueue(self, notes: list[_Note]) -> None:
        try:
            self._queue.put_nowait(notes)
        except queue.Full:
            self._dropped += len(notes)
            log.warning("alerts: queue full (%d runs waiting): %d notes dropped", self._queue.maxsize, len(notes))
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="alerts-state", daemon=True)
                self._thread.start()

    # -- on the worker thread ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                notes = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self.record(self._signals(notes))
            except Exception as exc:  # recorded nothing: the next observation of the incident tries again
                self.errors += 1
                log.warning("alerts: could not record %d signal(s): %s", len(notes), _first_line(exc))
                log.debug("alert state failure", exc_info=True)
            finally:
                self._queue.task_done()

    def _signals(self, notes: list[_Note]) -> list[Signal]:
        out: list[Signal] = []
        for note in notes:
            if isinstance(note, Signal):
                out.append(note)
                continue
            signal = judge_quarantine(note, self.config.quarantine, self._history, self.clock())
            if signal is not None:
                out.append(signal)
        return out

    def _history(self, source: str, since: datetime, exclude: str | None) -> list[float]:
        return self.history(source, since, exclude) if self.history is not None else []

    def record(self, signals: Sequence[Signal], now: datetime | None = None, *, sweep: bool = False) -> list[Alert]:
        """Record what `signals` change (and with `sweep`, re-send open incidents that are due) and
        queue the alerts for the sinks; returns them. Runs on the caller's thread."""
        with self._record_lock:
            alerts = self.book.record(list(signals), now or self.clock(), sweep=sweep)
        self.dispatcher.submit(alerts)
        return alerts

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the noted runs are recorded and their alerts delivered (tests, closing)."""
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:  # queued or being recorded
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return self.dispatcher.flush(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Record what is noted (up to CLOSE_WAIT_S), then give the sinks `drain_timeout` seconds."""
        if self._closed:
            return
        self._closed = True
        import time

        deadline = time.monotonic() + CLOSE_WAIT_S
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._queue.empty():
            log.warning("alerts: %d run(s) not recorded within %.0f s of closing", self._queue.qsize(), CLOSE_WAIT_S)
        self.dispatcher.close(self.config.drain_timeout)
        _LIVE.discard(self)


_LIVE: weakref.WeakSet[AlertListener] = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    """A process that ends without closing its lake (a CLI command that returns early) still
    records and sends what it noted, within the listeners' bounds."""
    for listener in list(_LIVE):
        listener.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def quarantine_history(warehouse: Callable[[], Any]) -> History:
    """Earlier quarantine shares of a source's ingest and stream jobs, from `_lakestack.runs`."""

    def shares(source: str, since: datetime, exclude: str | None) -> list[float]:
        from pyiceberg.expressions import EqualTo, Or

        from lakestack.pipeline.records import RUNS

        wh = warehouse()
        if not wh.exists(RUNS):
            return []
        jobs: Any = Or(EqualTo("job", f"ingest.{source}"), EqualTo("job", f"stream.{source}"))  # type: ignore[call-arg, arg-type]
        scan = wh.load(RUNS).scan(
            row_filter=jobs,
            selected_fields=("run_id", "started_at", "rows_written", "rows_quarantined", "status"),
        )
        out = []
        for r in scan.to_arrow().to_pylist():
            total = (r["rows_written"] or 0) + (r["rows_quarantined"] or 0)
            if r["run_id"] != exclude and r["started_at"] >= since and total > 0 and r["status"] == "COMPLETE":
                out.append((r["rows_quarantined"] or 0) / total)
        return out

    return shares


# -- wiring ---------------------------------------------------------------------------------------


def _own_warehouse(project: Project, environment: str) -> Callable[[], Any]:
    """The listener's own view of the warehouse, opened at first use on the worker thread."""
    held: list[Any] = []
    lock = threading.Lock()

    def warehouse() -> Any:
        with lock:
            if not held:
                from lakestack.storage.catalog import open_warehouse

                env = project.config.environments[environment]
                held.append(open_warehouse(env, project.root, project.name))
            return held[0]

    return warehouse


def create_alert_listener(
    config: AlertsConfig,
    warehouse: Callable[[], Any],
    *,
    project: str,
    environment: str,
    sinks: Sequence[Sink] | None = None,
) -> AlertListener:
    book = AlertBook(warehouse, renotify_s=config.renotify_s, project=project, environment=environment)
    dispatcher = Dispatcher(
        create_sinks(config) if sinks is None else sinks, retries=config.retries, queue_max=config.queue_max
    )
    return AlertListener(config, book, dispatcher, history=quarantine_history(warehouse))


def alert_listeners(project: Project, environment: str) -> list[RunListener]:
    """The alert listener an environment's `alerts:` block asks for (none without one)."""
    config = project.config.environments[environment].alerts
    if config is None:
        return []
    return [
        create_alert_listener(
            config, _own_warehouse(project, environment), project=project.name, environment=environment
        )
    ]


def find_listener(lake: Lake) -> AlertListener | None:
    return next((x for x in lake.events.listeners if isinstance(x, AlertListener)), None)


def evaluate_alerts(lake: Lake, results: Sequence[SlaResult] | None = None, now: datetime | None = None) -> list[Alert]:
    """Alert on SLA results (evaluated now when not given) and re-send the open incidents that are
    due; returns the alerts recorded (their delivery goes on in the sinks' threads). Nothing
    without an `alerts:` block."""
    listener = find_listener(lake)
    if listener is None:
        return []
    if results is None and "sla" in listener.sources:
        from lakestack.monitor import sla

        evaluate = getattr(sla, "evaluate", None)
        results = evaluate(lake, now=now) if evaluate is not None else []
    signals = sla_signals(results or []) if "sla" in listener.sources else []
    return listener.record(signals, now, sweep=True)


def sla_alert_hooks(lake: Lake) -> list[Callable[[list[Any]], None]]:
    """What the serve scheduler tells each SLA evaluation to: alerts on its results (none without
    an `alerts:` block)."""
    if find_listener(lake) is None:
        return []

    def alert_on_slas(results: list[Any]) -> None:
        evaluate_alerts(lake, results)

    return [alert_on_slas]


SWEEP_EVERY_S = 300.0  # the serve scheduler re-sends due incidents at least this often


def alert_sweep(lake: Lake) -> tuple[float, Callable[[], None]] | None:
    """(every seconds, what to run) for the serve scheduler: re-send open incidents that are due;
    None without an `alerts:` block or with `renotify: off`."""
    listener = find_listener(lake)
    if listener is None or listener.book.renotify_s <= 0:
        return None
    every = max(1.0, min(SWEEP_EVERY_S, listener.book.renotify_s / 4))

    def sweep() -> None:
        evaluate_alerts(lake, [])

    return every, sweep


# -- for the CLI ------------------------------------------------------------------------------------


def _book(lake: Lake) -> AlertBook:
    config = lake.env.alerts or AlertsConfig()
    return AlertBook(
        lambda: lake.warehouse, renotify_s=config.renotify_s, project=lake.project.name, environment=lake.environment
    )


def open_incidents(lake: Lake) -> list[dict[str, Any]]:
    """The open incidents, oldest first, as plain values."""
    found = sorted(_book(lake).open_incidents().values(), key=lambda i: (i.opened_at, i.key))
    return [i.as_json() | {"severity": i.severity} for i in found]


def alert_history(lake: Lake, *, since: datetime | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
    """Every recorded alert change, newest first."""
    return _book(lake).history(since=since, limit=limit)


@dataclass(frozen=True, slots=True)
class SinkTest:
    sink: str
    kind: str
    delivered: bool
    error: str | None
    attempts: int


def send_test_alerts(lake: Lake, names: Sequence[str] = ()) -> list[SinkTest]:
    """Send a test alert to each configured sink (or those named), now, with the configured retries."""
    from lakestack.errors import UsageError
    from lakestack.monitor.alerts import Incident

    config = lake.env.alerts
    if config is None or not config.sinks:
        raise UsageError(f"environment '{lake.environment}' has no alert sinks (add an 'alerts: {{sinks: ...}}' block)")
    unknown = [n for n in names if n not in config.sinks]
    if unknown:
        raise UsageError(f"unknown alert sink '{unknown[0]}' (sinks: {', '.join(config.sinks)})")
    now = datetime.now(UTC)
    incident = Incident("test", "test", "test", "test alert from lakestack", "", None, None, None, now, now, 1)
    alert = Alert("test", incident, now, "If you read this, the sink works.", lake.project.name, lake.environment)
    out = []
    for sink in create_sinks(config):
        if names and sink.name not in names:
            continue
        ok, error, retried = deliver(sink, alert, retries=config.retries)
        out.append(SinkTest(sink.name, sink.kind, ok, error, retried + 1))
    return out

"""Metrics: run events become numbers per job, dataset and stream, kept in a small in-process registry
that the sinks read (Prometheus at `lakestack serve`'s `/metrics`, `cloudwatch.py`).

The listener does a few dictionary updates per event: no per-row work, no I/O, no network. Sinks
read the registry on their own threads. What is recorded (Prometheus names; CloudWatch uses the
CamelCase name without prefix and unit, e.g. `RowsWritten`, with the labels as dimensions):

| metric | kind | labels | from |
|---|---|---|---|
| `lakestack_job_runs_total` | counter | job, job_type, status | every job's end (complete, fail, blocked, abort) |
| `lakestack_job_duration_seconds` | histogram | job, job_type | every job's end |
| `lakestack_rows_{read,written,quarantined,dropped}_total` | counter | job, job_type, dataset | datasets, at job end |
| `lakestack_bytes_{read,written}_total` | counter | job, job_type, dataset | the same, when a job counts bytes |
| `lakestack_quarantine_ratio` | gauge | job, dataset | quarantined / (written + quarantined), last job |
| `lakestack_checks_total` | counter | dataset, severity, status | every check (passed / failed) |
| `lakestack_check_failures_total` | counter | dataset, check, severity | every failed check |
| `lakestack_stream_records_{received,committed,quarantined,duplicate}_total` | counter | source | stream progress |
| `lakestack_stream_commits_total` | counter | source | stream progress |
| `lakestack_stream_lag_records` / `_lag_seconds` (Kinesis) | gauge | source | stream progress |
| `lakestack_stream_buffered_records`, `lakestack_stream_records_per_second` | gauge | source | stream progress |
| `lakestack_metrics_sink_errors_total` | counter | sink | failed sink calls (CloudWatch) |

Rows count as run records do (`pipeline/records.py`): rows written leave out `quarantine.*` tables,
whose rows are counted as quarantined on the dataset that rejected them. A stream session adds its
rows when it ends; while it runs, the `lakestack_stream_*` series are its live figures.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

Kind = Literal["counter", "gauge", "histogram"]
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
RECENT = 1000  # observations of a histogram kept for sinks that send values (CloudWatch)
# a label's CloudWatch dimension name
DIMENSIONS = {
    "job": "Job",
    "job_type": "JobType",
    "dataset": "Dataset",
    "status": "Status",
    "source": "Source",
    "check": "Check",
    "severity": "Severity",
    "sink": "Sink",
    "sla": "Sla",
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric's definition: its name without prefix or `_total`, kind, labels and units."""

    name: str  # "rows_written": lakestack_rows_written_total in Prometheus, RowsWritten in CloudWatch
    kind: Kind
    labels: tuple[str, ...]
    help: str
    cloudwatch_unit: str = "Count"  # Count, Bytes, Seconds, Count/Second, None
    cloudwatch: str = ""  # CloudWatch name when not derived from `name`

    @property
    def prometheus_name(self) -> str:
        return f"lakestack_{self.name}"

    @property
    def cloudwatch_name(self) -> str:
        if self.cloudwatch:
            return self.cloudwatch
        words = self.name.removesuffix("_seconds").removesuffix("_records").split("_")
        return "".join(w.capitalize() for w in words)


def _m(name: str, kind: Kind, labels: str, help: str, unit: str = "Count", cloudwatch: str = "") -> Metric:
    return Metric(name, kind, tuple(labels.split()), help, unit, cloudwatch)


_JOB, _DS = "job job_type", "job job_type dataset"
JOB_RUNS = _m("job_runs", "counter", "job job_type status", "Jobs ended, by outcome.", cloudwatch="JobRuns")
JOB_DURATION = _m("job_duration_seconds", "histogram", _JOB, "How long jobs took.", "Seconds", "JobDuration")
ROWS_READ = _m("rows_read", "counter", _DS, "Rows a job read from a dataset.")
ROWS_WRITTEN = _m("rows_written", "counter", _DS, "Rows a job wrote to a dataset (not quarantine tables).")
ROWS_QUARANTINED = _m(
    "rows_quarantined", "counter", _DS, "Rows rejected into quarantine, by the dataset refusing them."
)
ROWS_DROPPED = _m("rows_dropped", "counter", _DS, "Rows a job dropped (duplicates, drop checks).")
BYTES_READ = _m("bytes_read", "counter", _DS, "Bytes a job read.", "Bytes")
BYTES_WRITTEN = _m("bytes_written", "counter", _DS, "Bytes a job wrote.", "Bytes")
QUARANTINE_RATIO = _m(
    "quarantine_ratio", "gauge", "job dataset", "Share of rows quarantined by the dataset's last job.", "None"
)
CHECKS = _m("checks", "counter", "dataset severity status", "Checks evaluated, passed or failed.")
CHECK_FAILURES = _m("check_failures", "counter", "dataset check severity", "Checks that failed.")
STREAM_RECEIVED = _m("stream_records_received", "counter", "source", "Records a stream received.")
STREAM_COMMITTED = _m("stream_records_committed", "counter", "source", "Records a stream committed to Bronze.")
STREAM_QUARANTINED = _m("stream_records_quarantined", "counter", "source", "Records a stream quarantined.")
STREAM_DUPLICATES = _m("stream_records_duplicate", "counter", "source", "Redelivered records a stream dropped.")
STREAM_COMMITS = _m("stream_commits", "counter", "source", "Commits a stream made.")
STREAM_LAG_RECORDS = _m(
    "stream_lag_records", "gauge", "source", "Records waiting in the broker.", cloudwatch="StreamLag"
)
STREAM_LAG_SECONDS = _m(
    "stream_lag_seconds", "gauge", "source", "How far a stream is behind (Kinesis).", "Seconds", "StreamLagTime"
)
STREAM_BUFFERED = _m(
    "stream_buffered_records", "gauge", "source", "Records read, not committed yet.", cloudwatch="StreamBuffered"
)
STREAM_RATE = _m(
    "stream_records_per_second", "gauge", "source", "Records a stream handles per second.", "Count/Second", "StreamRate"
)
SINK_ERRORS = _m("metrics_sink_errors", "counter", "sink", "Metric sink calls that failed.")
# what the CloudWatch alarms `lakestack deploy aws` creates per SLA watch (deploy/resources.py SLA_METRIC)
SLA_BREACH = _m(
    "sla_breach",
    "gauge",
    "sla",
    "1 while an SLA is breached, 0 while it is met (none while unknown).",
    "None",
    "SlaBreach",
)

METRICS: tuple[Metric, ...] = (
    JOB_RUNS, JOB_DURATION, ROWS_READ, ROWS_WRITTEN, ROWS_QUARANTINED, ROWS_DROPPED, BYTES_READ, BYTES_WRITTEN,
    QUARANTINE_RATIO, CHECKS, CHECK_FAILURES, STREAM_RECEIVED, STREAM_COMMITTED, STREAM_QUARANTINED,
    STREAM_DUPLICATES, STREAM_COMMITS, STREAM_LAG_RECORDS, STREAM_LAG_SECONDS, STREAM_BUFFERED, STREAM_RATE,
    SINK_ERRORS, SLA_BREACH,
)  # fmt: skip
# a stream's running totals (`job.progress`, see pipeline/lake.py) → its counters
_STREAM_TOTALS = (
    ("received", STREAM_RECEIVED),
    ("landed", STREAM_COMMITTED),
    ("quarantined", STREAM_QUARANTINED),
    ("duplicates", STREAM_DUPLICATES),
    ("commits", STREAM_COMMITS),
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One series as read: a counter's or gauge's value, a histogram's count, sum and buckets.

    `stamp` grows with every write (a sink sends what changed since the stamp it saw last);
    `recent` holds a histogram's newest observations, `count` of them in all."""

    metric: Metric
    labels: tuple[str, ...]
    value: float
    stamp: int
    count: int = 0
    buckets: tuple[int, ...] = ()  # per DURATION_BUCKETS bound, not cumulative
    recent: tuple[float, ...] = ()


class _Series:
    __slots__ = ("buckets", "count", "recent", "stamp", "value")

    def __init__(self, histogram: bool) -> None:
        self.value, self.stamp, self.count = 0.0, 0, 0
        self.buckets = [0] * len(DURATION_BUCKETS) if histogram else None
        self.recent: deque[float] | None = deque(maxlen=RECENT) if histogram else None


class MetricsRegistry:
    """Values by metric and label values; thread-safe; pure Python (no client library)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[Metric, tuple[str, ...]], _Series] = {}
        self._stamp = 0

    def _get(self, metric: Metric, labels: Mapping[str, str]) -> _Series:
        key = (metric, tuple(str(labels[name]) for name in metric.labels))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(metric.kind == "histogram")
        self._stamp += 1
        series.stamp = self._stamp
        return series

    def inc(self, metric: Metric, amount: float = 1.0, **labels: str) -> None:
        """Add to a counter (a negative amount is ignored: counters never go down)."""
        with self._lock:
            self._get(metric, labels).value += max(amount, 0.0)

    def set(self, metric: Metric, value: float, **labels: str) -> None:
        with self._lock:
            self._get(metric, labels).value = value

    def observe(self, metric: Metric, value: float, **labels: str) -> None:
        with self._lock:
            series = self._get(metric, labels)
            series.value += value
            series.count += 1
            assert series.buckets is not None and series.recent is not None
            for i, bound in enumerate(DURATION_BUCKETS):
                if value <= bound:
                    series.buckets[i] += 1
                    break
            series.recent.append(value)

    def remove(self, metric: Metric, **labels: str) -> None:
        with self._lock:
            self._series.pop((metric, tuple(str(labels[name]) for name in metric.labels)), None)

    def value(self, metric: Metric, **labels: str) -> float | None:
        """One series' value (a histogram's sum), None when it was never written."""
        with self._lock:
            series = self._series.get((metric, tuple(str(labels[name]) for name in metric.labels)))
            return series.value if series is not None else None

    def samples(self) -> list[Sample]:
        """Every series, copied under the lock."""
        with self._lock:
            return [
                Sample(
                    metric,
                    labels,
                    s.value,
                    s.stamp,
                    s.count,
                    tuple(s.buckets) if s.buckets is not None else (),
                    tuple(s.recent) if s.recent is not None else (),
                )
                for (metric, labels), s in self._series.items()
            ]


# -- what the listener reads of a job (pipeline/events.py's JobRun, DatasetIO, CheckOutcome) ----------
class DatasetFacts(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def rows(self) -> int | None: ...
    @property
    def bytes(self) -> int | None: ...
    @property
    def quarantined(self) -> int | None: ...
    @property
    def dropped(self) -> int | None: ...


class CheckFacts(Protocol):
    @property
    def dataset(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def passed(self) -> bool: ...
    @property
    def severity(self) -> str: ...


class JobFacts(Protocol):
    @property
    def run_id(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def job_type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def blocked(self) -> bool: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def datasets(self) -> Sequence[DatasetFacts]: ...
    @property
    def progress(self) -> Mapping[str, Any]: ...


class Sink(Protocol):
    """A metric sink fed from the registry on its own thread."""

    errors: int
    dropped: int

    def close(self) -> None: ...


class MetricsListener:
    """Turns run events into registry values. Stream sources whose lag is time, not records
    (`lag_seconds`: Kinesis reports milliseconds behind) get `lakestack_stream_lag_seconds`."""

    def __init__(self, registry: MetricsRegistry | None = None, *, lag_seconds: frozenset[str] = frozenset()) -> None:
        self.registry = registry or MetricsRegistry()
        self.sinks: list[Sink] = []
        self._lag_seconds = lag_seconds
        self._lock = threading.Lock()
        self._streams: dict[str, dict[str, float]] = {}  # open stream run id → totals already counted
        self._stream_jobs: dict[str, str] = {}  # stream job name → its open run id

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.sinks)

    @property
    def dropped(self) -> int:
        """Data points the sinks could not deliver (counted on the run record as listener drops)."""
        return sum(s.dropped for s in self.sinks)

    def on_start(self, job: JobFacts) -> None:
        if job.job_type == "stream":
            with self._lock:
                self._streams[job.run_id] = {}
                self._stream_jobs[job.job] = job.run_id

    def on_dataset(self, job: JobFacts, dataset: DatasetFacts) -> None:
        """Datasets count when their job ends (with its outcome), like run records."""

    def on_check(self, job: JobFacts, check: CheckFacts) -> None:
        status = "passed" if check.passed else "failed"
        self.registry.inc(CHECKS, dataset=check.dataset, severity=check.severity, status=status)
        if not check.passed:
            self.registry.inc(CHECK_FAILURES, dataset=check.dataset, check=check.name, severity=check.severity)

    def on_progress(self, job: JobFacts) -> None:
        self.stream_figures(job.job, job.progress, run_id=job.run_id)

    def stream_figures(self, job: str, figures: Mapping[str, Any], *, run_id: str | None = None) -> None:
        """A stream's running totals (what `job.progress` holds): counters advance by what is new,
        gauges take the values. `lakestack serve` calls this at each scrape with its collectors'
        figures, so `/metrics` is live between progress events."""
        source = job.removeprefix("stream.")
        with self._lock:
            run_id = run_id or self._stream_jobs.get(job)
            seen = self._streams.get(run_id) if run_id is not None else None
            if seen is None:
                return  # not an open session of this process
            for key, metric in _STREAM_TOTALS:
                now = float(figures.get(key) or 0)
                self.registry.inc(metric, now - seen.get(key, 0.0), source=source)
                seen[key] = max(now, seen.get(key, 0.0))
        self._stream_gauges(source, figures)

    def _stream_gauges(self, source: str, figures: Mapping[str, Any]) -> None:
        lag = figures.get("lag")
        if lag is not None and source in self._lag_seconds:
            self.registry.set(STREAM_LAG_SECONDS, float(lag) / 1000.0, source=source)
        elif lag is not None:
            self.registry.set(STREAM_LAG_RECORDS, float(lag), source=source)
        if figures.get("buffered") is not None:
            self.registry.set(STREAM_BUFFERED, float(figures["buffered"]), source=source)
        if figures.get("records_per_s") is not None:
            self.registry.set(STREAM_RATE, float(figures["records_per_s"]), source=source)

    def on_complete(self, job: JobFacts) -> None:
        self._ended(job)

    def on_fail(self, job: JobFacts) -> None:
        if job.exit_code == 2 and not job.datasets:
            return  # refused before any data work: an error message, not a run (as run records)
        self._ended(job)

    def _ended(self, job: JobFacts) -> None:
        reg, labels = self.registry, {"job": job.job, "job_type": job.job_type}
        status = "blocked" if job.blocked and job.status == "FAIL" else job.status.lower()
        reg.inc(JOB_RUNS, 1.0, status=status, **labels)
        if job.duration_s is not None:
            reg.observe(JOB_DURATION, job.duration_s, **labels)
        for io in job.datasets:
            self._dataset(labels, io)
        if job.job_type == "stream":
            self._stream_ended(job)

    def _dataset(self, labels: dict[str, str], io: DatasetFacts) -> None:  # labels: job, job_type
        reg, name = self.registry, io.name
        if io.role == "input":
            if io.rows is not None:
                reg.inc(ROWS_READ, io.rows, dataset=name, **labels)
            if io.bytes is not None:
                reg.inc(BYTES_READ, io.bytes, dataset=name, **labels)
            return
        quarantine_table = name.startswith("quarantine.")
        if io.rows is not None and not quarantine_table:
            reg.inc(ROWS_WRITTEN, io.rows, dataset=name, **labels)
        if io.bytes is not None:
            reg.inc(BYTES_WRITTEN, io.bytes, dataset=name, **labels)
        if io.quarantined is not None:
            reg.inc(ROWS_QUARANTINED, io.quarantined, dataset=name, **labels)
            seen = (io.rows or 0) + io.quarantined
            if seen:
                reg.set(QUARANTINE_RATIO, io.quarantined / seen, job=labels["job"], dataset=name)
        if io.dropped is not None:
            reg.inc(ROWS_DROPPED, io.dropped, dataset=name, **labels)

    def _stream_ended(self, job: JobFacts) -> None:
        source = job.job.removeprefix("stream.")
        with self._lock:
            self._streams.pop(job.run_id, None)
            if self._stream_jobs.get(job.job) == job.run_id:
                del self._stream_jobs[job.job]
        for metric in (STREAM_LAG_RECORDS, STREAM_LAG_SECONDS, STREAM_BUFFERED, STREAM_RATE):
            self.registry.remove(metric, source=source)  # no session, no live figures

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def slas(self, results: Sequence[Any]) -> None:
        """SLA evaluations (`monitor.sla.SlaResult`): `sla_breach` 1 or 0; an unknown one has no value."""
        for result in results:
            if result.status == "unknown":
                self.registry.remove(SLA_BREACH, sla=result.name)
            else:
                self.registry.set(SLA_BREACH, 1.0 if result.status == "breach" else 0.0, sla=result.name)

    def close(self) -> None:
        """Close the sinks (each sends what it holds, within its own time limit)."""
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.warning("metrics sink %s did not close cleanly", type(sink).__name__, exc_info=True)

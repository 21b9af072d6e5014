"""Metrics wiring (`monitor/metrics.py` holds the listener, the registry and the sinks).

- `metrics_listeners`: the metrics listener an environment's `metrics:` block asks for (a
  `cloudwatch` sink), added to every `Lake` by `pipeline/listeners.py`. Without a sink nothing
  listens: a batch command does not count what nobody reads.
- `PrometheusScrape`: what `lakestack serve` answers at `GET /metrics`. It uses the lake's metrics
  listener (adding one when the environment configured none), reads the live figures of the
  server's stream collectors at each scrape, and adds the last-run figures of `_lakestack.runs`
  (runs of the last `RUNS_WINDOW`, read at most every `RUNS_CACHE_S` seconds), which cover the
  batch runs other processes did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lakestack.monitor.metrics import MetricsListener
from lakestack.pipeline.events import RunListener

if TYPE_CHECKING:
    from lakestack.pipeline.lake import Lake
    from lakestack.pipeline.project import Project

log = logging.getLogger(__name__)

RUNS_CACHE_S = 10.0
RUNS_WINDOW = timedelta(days=30)
_RUN_FIELDS = (
    "job",
    "job_type",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "rows_read",
    "rows_written",
    "rows_quarantined",
    "rows_dropped",
    "checks_failed",
)


class LakeMetrics(MetricsListener, RunListener):
    """The metrics listener, as `Lake`'s run events take it."""


def _new_listener(project: Project) -> LakeMetrics:
    # Kinesis reports how far behind it is in milliseconds (MillisBehindLatest), the others in records
    timed = frozenset(name for name, source in project.config.sources.items() if source.kind == "kinesis")
    return LakeMetrics(lag_seconds=timed)


def metrics_listeners(project: Project, environment: str) -> list[RunListener]:
    """The metrics listener with the sinks `environments.<env>.metrics` configures (none: no listener)."""
    config = project.config.environments[environment].metrics
    if config.cloudwatch is None:
        return []
    from lakestack.monitor.cloudwatch import CloudWatchSink

    listener = _new_listener(project)
    sink = CloudWatchSink(listener.registry, config.cloudwatch)
    sink.start()
    listener.add_sink(sink)
    return [listener]


def record_slas(lake: Lake, results: Any) -> None:
    """SLA evaluations as `sla_breach` gauges of the lake's metrics listener, when it has one (a
    `metrics.cloudwatch` sink: the SLA alarms `lakestack deploy aws` creates watch them)."""
    for listener in lake.events.listeners:
        if isinstance(listener, LakeMetrics):
            listener.slas(results)


def lake_metrics(lake: Lake) -> LakeMetrics:
    """The lake's metrics listener; one is added when the environment configured no sink."""
    for listener in lake.events.listeners:
        if isinstance(listener, LakeMetrics):
            return listener
    listener = _new_listener(lake.project)
    lake.events.add(listener)
    return listener


class PrometheusScrape:
    """`GET /metrics` of one lake: call it with the live stream stats (source → StreamStats); it
    returns the exposition text and its content type. Thread-safe; does I/O (the run records), so
    call it off the event loop."""

    def __init__(self, lake: Lake, *, cache_s: float = RUNS_CACHE_S) -> None:
        from lakestack.monitor.prometheus import PrometheusExporter

        self.lake, self.metrics, self.cache_s = lake, lake_metrics(lake), cache_s
        self._lock = threading.Lock()
        self._runs: list[dict[str, Any]] = []
        self._read_at: float | None = None
        self._exporter = PrometheusExporter(self.metrics.registry, self._recent_runs)

    def __call__(self, streams: Mapping[str, Any] | None = None) -> tuple[bytes, str]:
        from lakestack.pipeline.lake import _stream_figures

        for name, stats in (streams or {}).items():
            self.metrics.stream_figures(f"stream.{name}", _stream_figures(stats))
        return self._exporter.exposition()

    def _recent_runs(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= self.cache_s:
                try:
                    self._runs = read_recent_runs(self.lake.warehouse, datetime.now(UTC) - RUNS_WINDOW)
                except Exception as exc:  # the live figures are still worth answering with
                    log.warning("/metrics: could not read the run records (%s); last-run figures are stale", exc)
                self._read_at = time.monotonic()
            return self._runs


def read_recent_runs(warehouse: Any, since: datetime) -> list[dict[str, Any]]:
    """Run records that started at or after `since`: the columns the last-run figures need."""
    from pyiceberg.expressions import GreaterThanOrEqual

    from lakestack.pipeline.records import RUNS

    if not warehouse.exists(RUNS):
        return []
    table = warehouse.load(RUNS)
    recent: Any = GreaterThanOrEqual("started_at", since.isoformat())  # type: ignore[call-arg, arg-type]
    scan = table.scan(row_filter=recent, selected_fields=_RUN_FIELDS)
    rows: list[dict[str, Any]] = scan.to_arrow().to_pylist()
    return rows

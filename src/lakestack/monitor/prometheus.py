"""Prometheus text exposition of the metrics registry, with `prometheus_client` (the `serve` extra).

Each app has a private `CollectorRegistry` (never the process-global one, so two apps in one
process, or tests, never mix series) holding one collector that reads the registry when scraped,
plus the last-run figures read from `_lakestack.runs`: what batch runs of *other* processes did
(a cron'd `lakestack run`), which this process's registry cannot know.

| metric | labels | value |
|---|---|---|
| `lakestack_last_run_timestamp_seconds` | job, job_type | when the job's newest recorded run ended |
| `lakestack_last_success_timestamp_seconds` | job, job_type | when its newest COMPLETE run ended |
| `lakestack_last_run_duration_seconds` | job, job_type | how long that run took |
| `lakestack_last_run_status` | job, job_type, status | 1 for the newest run's status (one series per job) |
| `lakestack_last_run_rows_{read,written,quarantined,dropped}` | job, job_type | that run's counts |
| `lakestack_last_run_check_failures` | job, job_type | checks that failed in it |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from lakestack.monitor.metrics import DURATION_BUCKETS, MetricsRegistry, Sample

_LAST_ROWS = ("rows_read", "rows_written", "rows_quarantined", "rows_dropped")


class PrometheusExporter:
    """One app's exposition: a private `CollectorRegistry` holding a collector that reads `registry`
    and `runs()` (run records, any order: the newest per job become the `lakestack_last_*` series)
    at each scrape."""

    def __init__(self, registry: MetricsRegistry, runs: Callable[[], Sequence[Mapping[str, Any]]] = tuple) -> None:
        try:
            from prometheus_client import CollectorRegistry
        except ImportError as exc:
            from lakestack.errors import MissingExtraError

            raise MissingExtraError("/metrics", "serve") from exc
        self._private = CollectorRegistry(auto_describe=False)
        self._private.register(_Collector(registry, runs))  # type: ignore[arg-type]

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets and its content type (`CONTENT_TYPE_LATEST`)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self._private), CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, registry: MetricsRegistry, runs: Callable[[], Sequence[Mapping[str, Any]]]) -> None:
        self.registry, self.runs = registry, runs

    def collect(self) -> Iterator[Any]:
        yield from _registry_families(self.registry.samples())
        yield from _last_run_families(self.runs())


def _registry_families(samples: Iterable[Sample]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    by_metric: dict[Any, list[Sample]] = {}
    for sample in samples:
        by_metric.setdefault(sample.metric, []).append(sample)
    for metric, group in sorted(by_metric.items(), key=lambda item: item[0].name):
        labels = list(metric.labels)
        family: Any
        if metric.kind == "counter":
            family = CounterMetricFamily(metric.prometheus_name, metric.help, labels=labels)
            for s in group:
                family.add_metric(list(s.labels), s.value)
        elif metric.kind == "gauge":
            family = GaugeMetricFamily(metric.prometheus_name, metric.help, labels=labels)
            for s in group:
                family.add_metric(list(s.labels), s.value)
        else:
            family = HistogramMetricFamily(metric.prometheus_name, metric.help, labels=labels)
            for s in group:
                family.add_metric(list(s.labels), _cumulative(s), s.value)
        yield family


def _cumulative(sample: Sample) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, n in zip(DURATION_BUCKETS, sample.buckets, strict=True):
        running += n
        out.append((repr(float(bound)), float(running)))
    out.append(("+Inf", float(sample.count)))
    return out


def newest_per_job(
    runs: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """The newest record of each job, and its newest COMPLETE one (by end, else start)."""
    newest: dict[str, Mapping[str, Any]] = {}
    success: dict[str, Mapping[str, Any]] = {}

    def when(row: Mapping[str, Any]) -> datetime:
        moment: datetime = row.get("ended_at") or row["started_at"]
        return moment

    for row in runs:
        job = row["job"]
        if job not in newest or when(row) > when(newest[job]):
            newest[job] = row
        if row["status"] == "COMPLETE" and (job not in success or when(row) > when(success[job])):
            success[job] = row
    return newest, success


def _last_run_families(runs: Sequence[Mapping[str, Any]]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    if not runs:
        return
    newest, success = newest_per_job(runs)
    labels = ["job", "job_type"]

    def gauge(name: str, help: str, extra: Sequence[str] = ()) -> Any:
        return GaugeMetricFamily(f"lakestack_last_run_{name}", help, labels=[*labels, *extra])

    ended = gauge("timestamp_seconds", "When the job's newest recorded run ended (Unix time), from _lakestack.runs.")
    duration = gauge("duration_seconds", "How long the job's newest recorded run took.")
    status = gauge("status", "1 for the status of the job's newest recorded run.", ["status"])
    checks = gauge("check_failures", "Checks that failed in the job's newest recorded run.")
    rows = {k: gauge(k, f"{k.replace('_', ' ').capitalize()} by the job's newest recorded run.") for k in _LAST_ROWS}
    for job, row in sorted(newest.items()):
        values = [job, str(row["job_type"])]
        ended.add_metric(values, (row.get("ended_at") or row["started_at"]).timestamp())
        if row.get("duration_s") is not None:
            duration.add_metric(values, float(row["duration_s"]))
        status.add_metric([*values, str(row["status"]).lower()], 1.0)
        checks.add_metric(values, float(row.get("checks_failed") or 0))
        for key, family in rows.items():
            family.add_metric(values, float(row.get(key) or 0))
    last_ok = GaugeMetricFamily(
        "lakestack_last_success_timestamp_seconds",
        "When the job's newest COMPLETE run ended (Unix time), from _lakestack.runs.",
        labels=labels,
    )
    for job, row in sorted(success.items()):
        last_ok.add_metric([job, str(row["job_type"])], (row.get("ended_at") or row["started_at"]).timestamp())
    yield from (ended, last_ok, duration, status, checks, *rows.values())

"""The metrics listener on synthetic job runs, the registry, and the Prometheus text it gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakestack.monitor.cloudwatch import MAX_DATA, _batches
from lakestack.monitor.metrics import (
    BYTES_READ,
    CHECK_FAILURES,
    CHECKS,
    JOB_DURATION,
    JOB_RUNS,
    QUARANTINE_RATIO,
    ROWS_QUARANTINED,
    ROWS_READ,
    ROWS_WRITTEN,
    STREAM_BUFFERED,
    STREAM_COMMITTED,
    STREAM_LAG_RECORDS,
    STREAM_LAG_SECONDS,
    STREAM_RATE,
    STREAM_RECEIVED,
)
from lakestack.monitor.prometheus import PrometheusExporter
from lakestack.pipeline.events import CheckOutcome, DatasetIO, RunEvents
from lakestack.pipeline.metrics import LakeMetrics

prometheus_parser = pytest.importorskip("prometheus_client.parser")


def _families(body: bytes) -> dict[str, Any]:
    return {f.name: f for f in prometheus_parser.text_string_to_metric_families(body.decode())}


def _value(families: dict[str, Any], sample_name: str, **labels: str) -> float:
    family = families[sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")]
    found = [s.value for s in family.samples if s.name == sample_name and s.labels == labels]
    assert len(found) == 1, (sample_name, labels, family.samples)
    return float(found[0])


def _ingest_run(events: RunEvents) -> None:
    with events.job("run", "run") as top, events.job("ingest", "ingest.orders", parent=top.run) as job:
        job.dataset(DatasetIO("landing.orders", "input", rows=10, bytes=1234))
        job.dataset(DatasetIO("bronze.orders", "output", 7, rows=8, quarantined=2))
        job.dataset(DatasetIO("quarantine.orders", "output", 8, rows=2))
    with events.job("promote", "promote.orders", parent=None) as job:
        job.dataset(DatasetIO("bronze.orders", "input", 7, rows=8))
        job.dataset(DatasetIO("silver.orders", "output", 9, rows=8))
        job.check(CheckOutcome("silver.orders", "unique_order_id", "unique", True, "fail"))
        job.check(CheckOutcome("silver.orders", "qty_positive", "range", False, "warn", failing_rows=3))


def test_a_run_becomes_rows_checks_outcomes_and_durations_per_job_and_dataset() -> None:
    metrics = LakeMetrics()
    _ingest_run(RunEvents([metrics]))
    reg = metrics.registry
    ingest = {"job": "ingest.orders", "job_type": "ingest"}
    assert reg.value(ROWS_READ, dataset="landing.orders", **ingest) == 10
    assert reg.value(BYTES_READ, dataset="landing.orders", **ingest) == 1234
    assert reg.value(ROWS_WRITTEN, dataset="bronze.orders", **ingest) == 8
    assert reg.value(ROWS_WRITTEN, dataset="quarantine.orders", **ingest) is None  # counted as quarantined
    assert reg.value(ROWS_QUARANTINED, dataset="bronze.orders", **ingest) == 2
    assert reg.value(QUARANTINE_RATIO, job="ingest.orders", dataset="bronze.orders") == pytest.approx(0.2)
    assert reg.value(ROWS_WRITTEN, dataset="silver.orders", job="promote.orders", job_type="promote") == 8
    assert reg.value(JOB_RUNS, status="complete", **ingest) == 1
    assert reg.value(JOB_RUNS, job="run", job_type="run", status="complete") == 1
    assert reg.value(CHECKS, dataset="silver.orders", severity="fail", status="passed") == 1
    assert reg.value(CHECKS, dataset="silver.orders", severity="warn", status="failed") == 1
    assert reg.value(CHECK_FAILURES, dataset="silver.orders", check="qty_positive", severity="warn") == 1
    assert reg.value(CHECK_FAILURES, dataset="silver.orders", check="unique_order_id", severity="fail") is None
    durations = [s for s in reg.samples() if s.metric is JOB_DURATION]
    assert {s.labels for s in durations} == {("run", "run"), ("ingest.orders", "ingest"), ("promote.orders", "promote")}
    assert all(s.count == 1 and s.value >= 0 for s in durations)


def test_failures_blocks_and_refusals_are_told_apart() -> None:
    metrics = LakeMetrics()
    events = RunEvents([metrics])

    def failing_build() -> None:
        with events.job("build", "build.fact_sales") as job:
            job.dataset(DatasetIO("silver.orders", "input", 1, rows=5))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_build()
    with events.job("build", "build.daily") as job:
        job.fail("gate failed", blocked=True)

    class Refused(Exception):
        exit_code = 2

    with pytest.raises(Refused), events.job("run", "promote"):  # a bad project file: no data touched
        raise Refused("bad model")
    reg = metrics.registry
    assert reg.value(JOB_RUNS, job="build.fact_sales", job_type="build", status="fail") == 1
    assert reg.value(JOB_RUNS, job="build.daily", job_type="build", status="blocked") == 1
    assert reg.value(JOB_RUNS, job="promote", job_type="run", status="fail") is None
    assert reg.value(ROWS_READ, job="build.fact_sales", job_type="build", dataset="silver.orders") == 5


def _figures(received: int, landed: int, quarantined: int, lag: int | None, buffered: int = 0) -> dict[str, Any]:
    return {
        "received": received,
        "landed": landed,
        "quarantined": quarantined,
        "duplicates": 0,
        "buffered": buffered,
        "commits": landed // 10,
        "lag": lag,
        "records_per_s": 12.5,
    }


def test_stream_progress_is_live_and_its_totals_count_once_when_it_ends() -> None:
    metrics = LakeMetrics(lag_seconds=frozenset({"clicks"}))
    events = RunEvents([metrics])
    reg = metrics.registry
    with events.job("stream", "stream.orders") as job:
        job.progress(**_figures(50, 40, 5, lag=300, buffered=5))
        assert reg.value(STREAM_RECEIVED, source="orders") == 50
        metrics.stream_figures("stream.orders", _figures(80, 70, 6, lag=120))  # a scrape between progress events
        assert reg.value(STREAM_COMMITTED, source="orders") == 70
        assert reg.value(STREAM_LAG_RECORDS, source="orders") == 120
        job.progress(**_figures(100, 90, 10, lag=0))
        assert reg.value(STREAM_RATE, source="orders") == 12.5
        job.dataset(DatasetIO("kafka.orders", "input", rows=100, source="kafka"))
        job.dataset(DatasetIO("bronze.orders", "output", rows=90, quarantined=10, dropped=0))
    assert reg.value(STREAM_RECEIVED, source="orders") == 100  # 50 + 30 + 20: deltas, not sums of totals
    assert reg.value(STREAM_COMMITTED, source="orders") == 90
    assert reg.value(STREAM_LAG_RECORDS, source="orders") is None  # no session, no live gauge
    assert reg.value(STREAM_BUFFERED, source="orders") is None
    stream = {"job": "stream.orders", "job_type": "stream"}
    assert reg.value(ROWS_WRITTEN, dataset="bronze.orders", **stream) == 90
    assert reg.value(ROWS_READ, dataset="kafka.orders", **stream) == 100
    metrics.stream_figures("stream.orders", _figures(500, 500, 0, lag=0))  # no open session: ignored
    assert reg.value(STREAM_RECEIVED, source="orders") == 100
    with events.job("stream", "stream.clicks") as job:
        job.progress(**_figures(1, 1, 0, lag=2500))  # Kinesis: milliseconds behind
        assert reg.value(STREAM_LAG_SECONDS, source="clicks") == 2.5
        assert reg.value(STREAM_LAG_RECORDS, source="clicks") is None


def test_the_prometheus_text_names_units_totals_and_labels() -> None:
    metrics = LakeMetrics()
    _ingest_run(RunEvents([metrics]))
    body, content_type = PrometheusExporter(metrics.registry).exposition()
    assert content_type.startswith("text/plain; version=")
    families = _families(body)
    assert all(name.startswith("lakestack_") for name in families)
    assert families["lakestack_rows_written"].type == "counter"
    ingest = {"job": "ingest.orders", "job_type": "ingest"}
    assert _value(families, "lakestack_rows_written_total", dataset="bronze.orders", **ingest) == 8
    assert _value(families, "lakestack_rows_quarantined_total", dataset="bronze.orders", **ingest) == 2
    assert _value(families, "lakestack_bytes_read_total", dataset="landing.orders", **ingest) == 1234
    assert _value(families, "lakestack_job_runs_total", status="complete", **ingest) == 1
    duration = families["lakestack_job_duration_seconds"]
    assert duration.type == "histogram"
    inf = [s for s in duration.samples if s.name.endswith("_bucket") and s.labels.get("le") == "+Inf"]
    assert len(inf) == 3 and all(s.value == 1 for s in inf)
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert labels <= {"job", "job_type", "dataset", "status", "source", "check", "severity", "sink", "le"}


def test_last_run_figures_come_from_the_newest_record_of_each_job() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def record(job: str, status: str, minutes_ago: int, written: int) -> dict[str, Any]:
        ended = now - timedelta(minutes=minutes_ago)
        return {
            "job": job,
            "job_type": job.split(".")[0] if "." in job else "run",
            "status": status,
            "started_at": ended - timedelta(seconds=30),
            "ended_at": ended,
            "duration_s": 30.0,
            "rows_read": written,
            "rows_written": written,
            "rows_quarantined": 1,
            "rows_dropped": 0,
            "checks_failed": 0 if status == "COMPLETE" else 2,
        }

    runs = [record("run", "COMPLETE", 60, 100), record("run", "BLOCKED", 5, 40)]
    runs.append(record("ingest.orders", "COMPLETE", 6, 7))
    families = _families(PrometheusExporter(LakeMetrics().registry, lambda: runs).exposition()[0])
    run = {"job": "run", "job_type": "run"}
    assert _value(families, "lakestack_last_run_rows_written", **run) == 40
    assert _value(families, "lakestack_last_run_check_failures", **run) == 2
    assert _value(families, "lakestack_last_run_status", status="blocked", **run) == 1
    assert _value(families, "lakestack_last_run_timestamp_seconds", **run) == (now - timedelta(minutes=5)).timestamp()
    assert (
        _value(families, "lakestack_last_success_timestamp_seconds", **run) == (now - timedelta(minutes=60)).timestamp()
    )
    assert _value(families, "lakestack_last_run_rows_written", job="ingest.orders", job_type="ingest") == 7


def test_cloudwatch_batches_hold_at_most_1000_data_and_keep_a_series_whole() -> None:
    datum = {"MetricName": "RowsWritten", "Dimensions": [{"Name": "Job", "Value": "x"}], "Value": 1.0}
    pending: list[Any] = [((i, ()), (1, 1.0, 0), [datum] * (1 + i % 7)) for i in range(900)]
    batches = list(_batches(pending))
    assert all(sum(len(item[2]) for item in batch) <= MAX_DATA for batch in batches)
    assert [item for batch in batches for item in batch] == pending
    sizes = [sum(len(item[2]) for item in batch) for batch in batches]
    assert len(batches) > 1
    for size, following in zip(sizes, batches[1:], strict=False):  # closed only when the next series is too many
        assert size + len(following[0][2]) > MAX_DATA


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ("metrics: {cloudwatch: {namespace: 'bad name'}}", "metrics.cloudwatch.namespace"),
        ("metrics: {cloudwatch: {flush_seconds: 0}}", "metrics.cloudwatch.flush_seconds"),
        ("metrics: {cloudwatch: {dimensions: {Job: x}}}", "metrics.cloudwatch.dimensions"),
        ("metrics: {prometheus: {}}", "metrics.prometheus"),
    ],
)
def test_a_bad_metrics_block_names_the_file_line_and_key(tmp_path: Path, block: str, where: str) -> None:
    from lakestack.config import load_project_config
    from lakestack.errors import ConfigError

    (tmp_path / "lakestack.yaml").write_text(f"name: shop\nenvironments:\n  dev:\n    {block}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_project_config(tmp_path)
    location = caught.value.location
    assert location is not None and location.line == 4, location
    assert location.key is not None and location.key.endswith(where), location


def test_every_metric_has_one_prometheus_and_one_cloudwatch_name_and_known_labels() -> None:
    import re

    from lakestack.config import METRIC_DIMENSIONS
    from lakestack.monitor.metrics import DIMENSIONS, METRICS

    assert len({m.prometheus_name for m in METRICS}) == len({m.cloudwatch_name for m in METRICS}) == len(METRICS)
    for metric in METRICS:
        assert re.fullmatch(r"lakestack_[a-z_]+", metric.prometheus_name)
        assert not metric.name.endswith("_total")  # prometheus_client adds it to counters
        assert re.fullmatch(r"[A-Z][A-Za-z]+", metric.cloudwatch_name)
        assert "run_id" not in metric.labels  # no unbounded labels
        assert set(metric.labels) <= set(DIMENSIONS)
    assert set(METRIC_DIMENSIONS) <= set(DIMENSIONS.values())  # a project cannot shadow one of them

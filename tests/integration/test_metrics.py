"""Metrics end to end: `/metrics` scraped from a real `lakestack serve`, the CloudWatch sink against
the moto server, and sinks that fail without failing or slowing the run."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aws_support import moto_server
from lake_support import cli, small_northwind
from lakestack.monitor.metrics import SINK_ERRORS
from lakestack.pipeline.lake import Lake
from lakestack.pipeline.metrics import LakeMetrics
from lakestack.pipeline.records import read_runs
from serve_support import free_port, start_serve, stop_serve, wait_healthy
from stream_support import bronze_ids, event, quarantine_rows, stream_project

__all__ = ["moto_server"]


ORDERS = (
    "order_id,qty,price,currency,order_ts,email\nORD-0001,2,3.50,EUR,2026-01-01T10:00:00Z,a@example.com\n"
    "ORD-0002,x,1.00,EUR,2026-01-01T11:00:00Z,b@example.com\n"
)


def _scrape(port: int) -> dict[str, Any]:
    from prometheus_client import CONTENT_TYPE_LATEST
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    return {f.name: f for f in text_string_to_metric_families(answer.text)}


def _sample(families: dict[str, Any], name: str, **labels: str) -> float:
    family = families[name.removesuffix("_total")]
    found = [s.value for s in family.samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, families[family].samples)
    return float(found[0])


@pytest.mark.slow
def test_metrics_of_a_serve_count_what_landed_and_what_was_quarantined(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "http", {"ack": "committed"}, max_seconds=0.2)
    port = free_port()
    proc = start_serve(root, port)
    try:
        assert wait_healthy(port, proc)
        for batch in range(3):
            body = [event(batch * 10 + i) for i in range(5)] + [{"event_id": f"bad{batch}"}]
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/streams/events/records", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
        families = _scrape(port)  # live: the session is still open, its progress event may not have come
    finally:
        stop_serve(proc)
    landed, quarantined = len(bronze_ids(root)), len(quarantine_rows(root))
    assert (landed, quarantined) == (15, 3)
    family = "lakestack_stream_records"
    assert _sample(families, f"{family}_received_total", source="events") == 18
    assert _sample(families, f"{family}_committed_total", source="events") == landed
    assert _sample(families, f"{family}_quarantined_total", source="events") == quarantined
    assert _sample(families, "lakestack_stream_commits_total", source="events") >= 1
    assert _sample(families, "lakestack_stream_buffered_records", source="events") == 0

    # another process (a second server) shows what the first session did, from its run record
    port = free_port()
    proc = start_serve(root, port)
    try:
        assert wait_healthy(port, proc)
        families = _scrape(port)
    finally:
        stop_serve(proc)
    job = {"job": "stream.events", "job_type": "stream"}
    assert _sample(families, "lakestack_last_run_rows_written", **job) == landed
    last = "lakestack_last_run_rows_quarantined"
    assert _sample(families, last, **job) == quarantined
    assert _sample(families, "lakestack_last_run_status", status="complete", **job) == 1
    assert _sample(families, "lakestack_stream_records_committed_total", source="events") == 0  # nothing posted here


@pytest.mark.slow
def test_metrics_of_a_serve_show_the_batch_runs_of_other_processes(project: Path, land: Any) -> None:
    config = project / "lakestack.yaml"
    config.write_text(
        config.read_text().replace("clicks: {kind: files, landing: landing/clicks,", "clicks: {kind: http,")
    )
    land("orders", "orders_20260101.csv", ORDERS)
    port = free_port()
    proc = start_serve(root=project, port=port)
    try:
        assert wait_healthy(port, proc)
        assert "lakestack_last_run_rows_written" not in _scrape(port)  # no run recorded yet
        ingest = cli(project, "ingest", "orders")  # a cron'd batch command: another process
        assert ingest.returncode == 0, ingest.stderr
        deadline = time.monotonic() + 60
        while "lakestack_last_run_rows_written" not in (families := _scrape(port)):
            assert time.monotonic() < deadline, "the run record never showed at /metrics"
            time.sleep(1)  # the run records are read at most every RUNS_CACHE_S
    finally:
        stop_serve(proc)
    job = {"job": "ingest.orders", "job_type": "ingest"}
    assert _sample(families, "lakestack_last_run_rows_written", **job) == 1
    assert _sample(families, "lakestack_last_run_rows_quarantined", **job) == 1
    assert _sample(families, "lakestack_last_run_status", status="complete", **job) == 1
    assert _sample(families, "lakestack_last_success_timestamp_seconds", **job) > time.time() - 300


def _with_cloudwatch(root: Path, **cloudwatch: Any) -> None:
    path = root / "lakestack.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    env = config["environments"][config.get("default_environment", "dev")]
    env["metrics"] = {"cloudwatch": cloudwatch}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _metrics_listener(lake: Lake) -> LakeMetrics:
    found = [x for x in lake.events.listeners if isinstance(x, LakeMetrics)]
    assert len(found) == 1
    return found[0]


def _cloudwatch_sums(endpoint: str, namespace: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every metric of the namespace with its dimensions → the sum of its values."""
    import boto3

    client = boto3.client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1")
    metrics = [
        m for page in client.get_paginator("list_metrics").paginate(Namespace=namespace) for m in page["Metrics"]
    ]
    now = time.time()
    sums: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for start in range(0, len(metrics), 400):
        chunk = metrics[start : start + 400]
        queries = [
            {"Id": f"m{i}", "MetricStat": {"Metric": m, "Period": 3600, "Stat": "Sum"}} for i, m in enumerate(chunk)
        ]
        answer = client.get_metric_data(MetricDataQueries=queries, StartTime=now - 3600, EndTime=now + 3600)
        for result in answer["MetricDataResults"]:
            metric = chunk[int(result["Id"][1:])]
            dims = frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"])
            sums[(metric["MetricName"], dims)] = float(sum(result["Values"]))
    return sums


def _sum(sums: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **dims: str) -> float:
    wanted = set(dims.items())
    return sum(v for (n, d), v in sums.items() if n == name and wanted <= d)


@pytest.mark.integration
@pytest.mark.slow
def test_cloudwatch_gets_what_the_run_records_count(tmp_path: Path, moto_server: str) -> None:
    root = small_northwind(tmp_path / "nw", orders=300)
    namespace = f"Lakestack/test-{uuid.uuid4().hex[:8]}"
    _with_cloudwatch(
        root, namespace=namespace, endpoint_url=moto_server, region="us-east-1", dimensions={"Environment": "test"}
    )
    lake = Lake.open(root)
    lake.run()
    lake.close()  # the last flush
    sink = _metrics_listener(lake).sinks[0]
    assert (sink.errors, sink.dropped) == (0, 0)
    assert sink.calls >= 1
    sums = _cloudwatch_sums(moto_server, namespace)
    names = {name for name, _ in sums}
    assert {"JobRuns", "JobDuration", "RowsRead", "RowsWritten", "RowsQuarantined", "Checks"} <= names, names
    assert all(("Environment", "test") in dims for _, dims in sums)
    shapes = {name: {frozenset(k for k, _ in dims) for n, dims in sums if n == name} for name in names}
    assert shapes["RowsWritten"] == {frozenset({"Job", "JobType", "Dataset", "Environment"})}
    assert shapes["JobRuns"] == {frozenset({"Job", "JobType", "Status", "Environment"})}
    records = read_runs(lake.warehouse)
    assert len(records) > 5
    for record in records:
        job = {"Job": record["job"], "JobType": record["job_type"]}
        assert _sum(sums, "JobRuns", Status=record["status"].lower(), **job) == 1, record["job"]
        if record["parent_run_id"] is None:
            continue  # the run's own totals are its jobs' (below)
        assert _sum(sums, "RowsWritten", **job) == record["rows_written"], record["job"]
        assert _sum(sums, "RowsQuarantined", **job) == record["rows_quarantined"], record["job"]
        assert _sum(sums, "RowsDropped", **job) == record["rows_dropped"], record["job"]
        for io in record["datasets"]:  # per dataset too
            if io["role"] == "output" and not io["name"].startswith("quarantine.") and io["rows"] is not None:
                assert _sum(sums, "RowsWritten", Dataset=io["name"], **job) == io["rows"], (record["job"], io)
    top = next(r for r in records if r["parent_run_id"] is None)
    assert _sum(sums, "RowsWritten") == top["rows_written"] > 0
    assert _sum(sums, "RowsQuarantined") == top["rows_quarantined"]
    failed_checks = sum(r["checks_failed"] for r in records if r["parent_run_id"] is not None)
    assert _sum(sums, "Checks", Status="failed") == failed_checks == _sum(sums, "CheckFailures")


class _Slow500(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        time.sleep(3)  # longer than the sink's timeout
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(params=["refused", "slow 500"])
def down_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "refused":
        yield f"http://127.0.0.1:{free_port()}"  # nothing listens there
        return
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_sink_that_is_down_never_fails_or_holds_up_the_run(
    project: Path, land: Any, down_endpoint: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    _with_cloudwatch(project, endpoint_url=down_endpoint, region="us-east-1", timeout=0.5, flush_seconds=1)
    land("orders", "orders_20260101.csv", ORDERS)
    lake = Lake.open(project)
    listener = _metrics_listener(lake)
    report = lake.ingest(["orders"])
    time.sleep(1.5)  # a flush from the sink's thread fails meanwhile
    started = time.monotonic()
    lake.close()
    assert time.monotonic() - started < 12  # the last flush is bounded
    assert (report.sources[0].landed, report.sources[0].quarantined) == (1, 1)
    records = read_runs(lake.warehouse)
    assert {r["status"] for r in records} == {"COMPLETE"}
    assert listener.errors >= 1
    assert (listener.registry.value(SINK_ERRORS, sink="cloudwatch") or 0) >= 1
    assert any("PutMetricData" in r.getMessage() for r in caplog.records)
    assert not any("testing" in r.getMessage() for r in caplog.records)  # no credentials in the log


def test_a_bad_metrics_block_exits_2_naming_the_file_line_and_key(project: Path) -> None:
    _with_cloudwatch(project, namespace="Lakestack", flush_seconds=0)
    result = cli(project, "status")
    assert result.returncode == 2, result.stderr
    assert "lakestack.yaml:" in result.stderr
    assert "metrics.cloudwatch.flush_seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cloudwatch_sink_without_boto3_names_the_extra(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from lakestack.errors import MissingExtraError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else find_spec(name, *a))
    _with_cloudwatch(project, namespace="Lakestack")
    with pytest.raises(MissingExtraError, match=r"cloudwatch metrics sink .*pip install 'lakestack\[aws\]'"):
        Lake.open(project)

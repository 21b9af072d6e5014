"""`lakestack stream` and `lakestack status` on stream sources, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stream_support import payload, stream_project


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lakestack", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_stream_runs_a_nats_source_until_idle(tmp_path: Path) -> None:
    from nats_support import delete_stream, make_stream, publish
    from tests_support import service_url

    url = service_url("nats", "nats://127.0.0.1:4222")
    name, subject = make_stream(url)
    try:
        root = stream_project(tmp_path / "p", "nats", {"url": url, "stream": name}, max_seconds=0.2)
        publish(url, subject, [payload(i) for i in range(50)] + [b"{oops"])
        result = run("-p", str(root), "stream", "events", "--until-idle", "1", "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["received"], summary["landed"], summary["quarantined"]) == (51, 50, 1)
        table = run("-p", str(root), "stream", "events", "--until-idle", "0.5")
        assert table.returncode == 0, table.stderr
        assert "Stream events" in table.stdout
        status = json.loads(run("-p", str(root), "status", "--json").stdout)
        assert status[0]["kind"] == "nats"
        assert (status[0]["bronze_rows"], status[0]["quarantined_rows"]) == (50, 1)
    finally:
        delete_stream(url, name)


def test_stream_refuses_the_http_collector_and_unknown_sources(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "http", None)
    http = run("-p", str(root), "stream", "events")
    assert http.returncode == 2
    assert "lakestack serve" in http.stderr
    unknown = run("-p", str(root), "stream", "nope")
    assert unknown.returncode == 2
    assert "unknown source 'nope'" in unknown.stderr
    assert "Traceback" not in http.stderr + unknown.stderr


def test_an_unreachable_broker_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "nats", {"url": "nats://127.0.0.1:1", "stream": "NOPE"})
    result = run("-p", str(root), "stream", "events", "--until-idle", "1")
    assert result.returncode == 3
    assert "cannot reach NATS at nats://127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_kafka_broker_fails_at_start_with_one_line_per_problem(tmp_path: Path) -> None:
    from kafka_support import free_port

    settings = {"bootstrap_servers": f"127.0.0.1:{free_port()}", "topics": ["t"], "connect_timeout": 2}
    root = stream_project(tmp_path / "p", "kafka", settings)
    result = run("-p", str(root), "stream", "events", "--until-idle", "1")
    assert result.returncode == 3
    assert "cannot reach Kafka at 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
    refused = [line for line in result.stderr.splitlines() if "Connection refused" in line]
    assert len(refused) <= 1, refused  # librdkafka retries every few ms: each distinct line is shown once

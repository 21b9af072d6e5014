"""A stream session's lineage: its input named by the URL it reads from (no credentials), with the
contract's schema, and Bronze as its output (a real NATS server; `lakestack serve` as a process)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from lakestack.pipeline.lake import Lake
from nats_support import publish
from openlineage_support import validate_event
from serve_support import free_port, start_serve, stop_serve, wait_healthy
from stream_support import event, payload, stream_project


def _ends(root: Path) -> dict[str, dict[str, Any]]:
    lines = [
        json.loads(line)
        for path in sorted((root / "warehouse" / "_lakestack" / "lineage").glob("*.ndjson"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    for event_ in lines:
        validate_event(event_)
    return {e["job"]["name"]: e for e in lines if e["eventType"] != "START"}


def _fields(dataset: dict[str, Any]) -> list[str]:
    return [f["name"] for f in dataset["facets"]["schema"]["fields"]]


@pytest.mark.integration
def test_a_nats_session_names_its_subject_url_and_lands_in_bronze(
    tmp_path: Path, nats_stream: tuple[str, str, str]
) -> None:
    url, name, prefix = nats_stream
    subject = f"{prefix}.>"  # the consumer's filter: what the session reads
    root = stream_project(tmp_path / "p", "nats", {"url": url, "stream": name, "subject": subject}, max_seconds=0.3)
    publish(url, prefix, [payload(i) for i in range(200)])
    with Lake.open(root) as lake:
        stats = lake.stream("events", threading.Event(), idle_stop=1.0)
    assert stats.landed == 200
    end = _ends(root)["stream.events"]
    assert end["eventType"] == "COMPLETE"
    assert end["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
    (source,) = end["inputs"]
    server = urlsplit(url)
    assert (source["namespace"], source["name"]) == (f"nats://{server.hostname}:{server.port}", subject)
    assert source["inputFacets"]["inputStatistics"]["rowCount"] == 200
    assert _fields(source)[:3] == ["event_id", "ts", "amount"]
    (bronze,) = end["outputs"]
    assert bronze["name"] == "bronze.events" and "_run_id" in _fields(bronze)


@pytest.mark.slow
def test_a_served_collector_names_its_endpoint(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "http", None, max_seconds=0.2)
    port = free_port()
    proc = start_serve(root, port)
    try:
        assert wait_healthy(port, proc)
        url = f"http://127.0.0.1:{port}/v1/streams/events/records"
        answer = httpx.post(url, json=[event(1), event(2)], timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        stop_serve(proc)
    end = _ends(root)["stream.events"]
    (source,) = end["inputs"]
    assert (source["namespace"], source["name"]) == (f"http://127.0.0.1:{port}", "v1/streams/events/records")
    assert source["inputFacets"]["inputStatistics"]["rowCount"] == 2
    assert "event_id" in _fields(source)
    assert [d["name"] for d in end["outputs"]] == ["bronze.events"]

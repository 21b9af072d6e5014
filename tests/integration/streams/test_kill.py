"""Reliability: kill -9 the stream process at random moments, over and over, while events flow.

After the last restart drains, Bronze must hold every valid event exactly once and quarantine
exactly the invalid ones: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve_support import free_port
from stream_support import bronze_ids, event, quarantine_rows, stream_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAKESTACK = [str(Path(sys.executable).parent / "lakestack")]
KILLS = 20


def _start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*LAKESTACK, "-p", str(root), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _batches(n_batches: int, size: int, rng: random.Random) -> tuple[list[tuple[str, list[dict[str, Any]]]], set[str]]:
    batches, invalid = [], set()
    for b in range(n_batches):
        records = []
        for i in range(size):
            n = b * size + i
            if rng.random() < 0.03:
                records.append(event(n, amount=-1))  # breaks the contract's minimum
                invalid.add(f"e{n}")
            else:
                records.append(event(n))
        batches.append((f"batch-{b:05d}", records))
    return batches, invalid


def test_http_collector_survives_kill_9_with_every_record_once(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "http", None, max_seconds=0.3)
    config = root / "lakestack.yaml"
    config.write_text(config.read_text().replace("kind: http", "kind: http\n    http: {workers: 0}"))
    rng = random.Random(20261122)
    batches, invalid = _batches(160, 25, rng)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/streams/events/records"
    server = {"proc": _start_server(root, port)}
    kills = 0

    def killer() -> None:  # kills at random moments: mid-request, mid-commit, mid-recovery
        nonlocal kills
        while kills < KILLS:
            if kills % 4 != 3:  # mostly while serving; every fourth kill lands during start-up and recovery
                _wait_healthy(port)
            time.sleep(rng.uniform(0.05, 0.8))
            proc = server["proc"]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            server["proc"] = _start_server(root, port)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with httpx.Client(timeout=10) as client:
            for batch_id, records in batches:  # a producer that retries each batch until it is acknowledged
                while True:
                    try:
                        answer = client.post(url, json=records, headers={"Lakestack-Batch-Id": batch_id})
                        if answer.status_code == 200:
                            assert answer.json()["records"] == len(records)
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.05)
    finally:
        thread.join()
    proc = server["proc"]
    _wait_healthy(port)  # the last restart is up (and has recovered its log)
    proc.send_signal(signal.SIGTERM)  # a clean stop commits what the log holds
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert kills >= KILLS, f"only {kills} kills happened; the test is too short to prove anything"
    ids = bronze_ids(root)
    expected = {f"e{i}" for i in range(160 * 25)} - invalid
    assert len(ids) == len(set(ids)), "a record landed twice"
    assert set(ids) == expected
    bad = quarantine_rows(root)
    assert len(bad) == len(invalid)
    assert {_event_id(r["_raw"]) for r in bad} == invalid


def _event_id(raw: str) -> str:
    import json

    return str(json.loads(raw)["event_id"])


def _wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not come back")


def test_nats_stream_survives_kill_9_with_every_record_once(tmp_path: Path) -> None:
    from nats_support import delete_stream, make_stream, publish
    from tests_support import service_url

    url = service_url("nats", "nats://127.0.0.1:4222")
    name, subject = make_stream(url)
    try:
        root = stream_project(tmp_path / "p", "nats", {"url": url, "stream": name}, max_seconds=0.2)
        rng = random.Random(4)
        payloads, invalid = [], set()
        for n in range(6_000):
            if rng.random() < 0.03:
                payloads.append(json.dumps(event(n, amount=-1)).encode())
                invalid.add(f"e{n}")
            else:
                payloads.append(json.dumps(event(n)).encode())
        published = threading.Event()

        def producer() -> None:  # events keep arriving while the stream process is killed
            for start in range(0, len(payloads), 300):
                publish(url, subject, payloads[start : start + 300])
                time.sleep(0.2)
            published.set()

        feeder = threading.Thread(target=producer)
        feeder.start()
        command = [*LAKESTACK, "-p", str(root), "stream", "events", "--json"]
        for _ in range(KILLS):
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(1.2, 2.5))  # start-up takes about a second: kill mid-read or mid-commit
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        feeder.join()
        assert published.is_set()
        final = subprocess.run(
            [*LAKESTACK, "-p", str(root), "stream", "events", "--until-idle", "2", "--json"],
            capture_output=True,
            timeout=120,
        )
        assert final.returncode == 0, final.stderr.decode()[-2000:]
        ids = bronze_ids(root)
        assert len(ids) == len(set(ids)), "a record landed twice"
        assert set(ids) == {f"e{i}" for i in range(6_000)} - invalid
        bad = quarantine_rows(root)
        from collections import Counter

        twice = [k for k, v in Counter(_event_id(r["_raw"]) for r in bad).items() if v > 1]
        detail = [(r["_source_position"], r["_run_id"]) for r in bad if _event_id(r["_raw"]) in twice]
        assert sorted(_event_id(r["_raw"]) for r in bad) == sorted(invalid), detail
    finally:
        delete_stream(url, name)

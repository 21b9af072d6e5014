"""Kafka source against a real Kafka-protocol broker (Tansu) started by the tests."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kafka_support import (
    CONSUMER_PROPERTIES,
    create_topic,
    group_offsets,
    kafka_broker,
    produce,
    set_group_offsets,
    unique,
)
from lakestack.ingest.kafka import KafkaSource
from lakestack.ingest.stream import FlushResult, StreamStats, run_stream, stream_positions
from lakestack.pipeline.lake import Lake
from stream_support import bronze_ids, payload, quarantine_rows, stream_project

pytestmark = pytest.mark.integration
__all__ = ["kafka_broker"]

IDLE = 2.0  # seconds without a record before a catch-up run ends (counted once the group has settled)

MALFORMED = {  # payload → the rule it breaks
    b"not json": "json",
    b'{"event_id": "bad \xff", "ts": "2026-11-22T10:00:00Z", "amount": 1}': "encoding",
    b"[" * 10_000 + b"]" * 10_000: "max_depth",
    b'{"event_id": "wrong", "ts": "2026-11-22T10:00:00Z", "amount": "ten"}': "type",
    b'{"event_id": "missing", "ts": "2026-11-22T10:00:00Z"}': "required",
    b'{"event_id": "unknown", "ts": "2026-11-22T10:00:00Z", "amount": 1, "surprise": true}': "unknown_field",
}


def _project(
    tmp_path: Path,
    bootstrap: str | dict[str, str],
    topic: str,
    group: str,
    name: str = "p",
    max_records: int = 50_000,
    **props: Any,
) -> Path:
    settings = {
        "bootstrap_servers": bootstrap,
        "topics": [topic],
        "group_id": group,
        "properties": {**CONSUMER_PROPERTIES, **props},
    }
    return stream_project(tmp_path / name, "kafka", settings, max_seconds=0.3, max_records=max_records)


def _stream(root: Path, **kwargs: Any) -> StreamStats:
    stats: StreamStats = Lake.open(root).stream("events", threading.Event(), idle_stop=IDLE, **kwargs)
    return stats


def _checkpoint(root: Path) -> dict[str, int]:
    return stream_positions(Lake.open(root).warehouse.load("bronze.events"))


def test_valid_events_land_once_and_malformed_ones_are_quarantined_with_their_offsets(
    tmp_path: Path, kafka_broker: str
) -> None:
    topic, group = create_topic(kafka_broker, partitions=3), unique("g")
    root = _project(tmp_path, kafka_broker, topic, group)
    payloads = [payload(i) for i in range(2_000)]
    for k, bad in enumerate(MALFORMED):
        payloads.insert(300 * k + 100, bad)
    last = produce(kafka_broker, topic, payloads)

    stats = _stream(root)

    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(f"e{i}" for i in range(2_000))
    rows = quarantine_rows(root)
    assert len(rows) == len(MALFORMED)
    by_raw = {r["_raw"][:100]: r for r in rows}
    for raw, rule in MALFORMED.items():
        row = by_raw[raw.decode("utf-8", "replace")[:100]]
        assert rule in [e["rule"] for e in row["_errors"]], (raw[:40], row["_errors"])
        assert row["_reason"]
        assert re.fullmatch(rf"{re.escape(topic)}/[012]@\d+", row["_source_position"]), row["_source_position"]
    assert len({r["_source_position"] for r in rows}) == len(MALFORMED)
    # counts reconcile, and the checkpoint is the last offset of each partition
    assert (stats.received, stats.landed, stats.quarantined, stats.duplicates) == (len(payloads), 2_000, 6, 0)
    assert len(last) == 3 and _checkpoint(root) == last
    # the group's Kafka offsets follow (a hint for lag tools): the next offset to read
    assert group_offsets(kafka_broker, group, topic, 3) == {p: o + 1 for p, o in last.items()}


def test_offsets_come_from_iceberg_not_from_the_groups_kafka_offsets(tmp_path: Path, kafka_broker: str) -> None:
    topic, group = create_topic(kafka_broker, partitions=3), unique("g")
    root = _project(tmp_path, kafka_broker, topic, group)
    last = produce(kafka_broker, topic, [payload(i) for i in range(500)])
    assert _stream(root).landed == 500

    # Kafka's offsets rewound to the beginning: the run starts after Iceberg's checkpoint anyway
    set_group_offsets(kafka_broker, group, topic, {0: 0, 1: 0, 2: 0})
    assert group_offsets(kafka_broker, group, topic, 3) == {f"{topic}/{p}": 0 for p in range(3)}
    last |= produce(kafka_broker, topic, [payload(i) for i in range(500, 800)])
    again = _stream(root)
    assert (again.received, again.landed, again.duplicates) == (300, 300, 0)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 800
    assert _checkpoint(root) == last

    # a new warehouse, same group (whose Kafka offsets are at the end): Bronze has nothing, so everything
    fresh = _project(tmp_path, kafka_broker, topic, group, name="fresh")
    assert _stream(fresh).landed == 800
    assert sorted(bronze_ids(fresh)) == sorted(ids)


class _CrashAfterIcebergCommit(KafkaSource):
    """Dies after its first Iceberg commit, before telling Kafka (not even while leaving the group)."""

    def acknowledge(self, result: FlushResult) -> None:
        raise _Crash(result.landed)

    def _commit_offsets(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Crash(Exception):
    pass


def test_after_a_crash_between_the_iceberg_and_the_kafka_commit_nothing_is_read_twice(
    tmp_path: Path, kafka_broker: str
) -> None:
    topic, group = create_topic(kafka_broker, partitions=3), unique("g")
    root = _project(tmp_path, kafka_broker, topic, group, max_records=200)
    last = produce(kafka_broker, topic, [payload(i) for i in range(1_000)])
    lake = Lake.open(root)
    source = _CrashAfterIcebergCommit("events", lake.project.contract("events"), lake.project.config.sources["events"])
    with pytest.raises(_Crash) as crash:
        run_stream(source, lake.warehouse, "crashing", threading.Event(), idle_stop=IDLE)
    first = crash.value.args[0]
    assert 0 < first < 1_000 and len(bronze_ids(root)) == first
    assert group_offsets(kafka_broker, group, topic, 3) == {}  # Kafka never heard of the commit

    again = _stream(root)  # same group: it would re-deliver from offset 0; Iceberg's checkpoint decides
    assert (again.received, again.landed, again.duplicates) == (1_000 - first, 1_000 - first, 0)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 1_000
    assert _checkpoint(root) == last


def test_a_10_mb_record_and_a_json_bomb_are_quarantined_and_the_stream_keeps_going(
    tmp_path: Path, kafka_broker: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    topic, group = create_topic(kafka_broker, partitions=1), unique("g")
    monkeypatch.setenv("TEST_KAFKA_BOOTSTRAP", kafka_broker)  # a secret: never in a log line
    secret = {"secret": "TEST_KAFKA_BOOTSTRAP"}
    props: dict[str, Any] = {"fetch.max.bytes": 52_428_800, "debug": "broker"}  # librdkafka's lines name the broker
    root = _project(tmp_path, secret, topic, group, **props)
    caplog.set_level(logging.DEBUG, logger="lakestack.ingest.kafka")
    big = b'{"event_id": "big", "ts": "2026-11-22T10:00:00Z", "amount": 1, "customer": "' + b"x" * 10_000_000 + b'"}'
    bomb = b'{"event_id": "bomb", "nested": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    payloads = [payload(1), big, payload(2), bomb, payload(3)]
    produce(kafka_broker, topic, payloads, **{"message.max.bytes": 20_000_000})
    stats = _stream(root)
    assert sorted(bronze_ids(root)) == ["e1", "e2", "e3"]
    rows = sorted(quarantine_rows(root), key=lambda r: r["_source_position"])
    assert [r["_source_position"] for r in rows] == [f"{topic}/0@1", f"{topic}/0@3"]
    assert [e["rule"] for e in rows[0]["_errors"]] == ["max_record_bytes"]
    assert len(rows[0]["_raw"]) == len(big)  # kept whole: nothing is lost
    assert "max_depth" in [e["rule"] for e in rows[1]["_errors"]]
    assert (stats.received, stats.landed, stats.quarantined) == (5, 3, 2)
    assert _checkpoint(root) == {f"{topic}/0": 4}
    assert "<secret TEST_KAFKA_BOOTSTRAP>" in caplog.text and kafka_broker not in caplog.text


def test_a_member_joining_mid_stream_shares_the_partitions_and_each_event_lands_once(
    tmp_path: Path, kafka_broker: str
) -> None:
    topic, group = create_topic(kafka_broker, partitions=4), unique("g")
    root = _project(tmp_path, kafka_broker, topic, group, max_records=100)
    Lake.open(root).warehouse  # noqa: B018 - the catalog exists before the members start
    n, chunk = 4_000, 250
    first_commit = threading.Event()
    results: dict[str, StreamStats | BaseException] = {}
    last: dict[str, int] = {}

    def member(name: str) -> None:
        def status(stats: StreamStats) -> None:
            if stats.commits:
                first_commit.set()

        try:
            results[name] = _stream(root, on_status=status)
        except BaseException as exc:  # reported below
            results[name] = exc

    def producer() -> None:  # a steady trickle, so that both members have work after the rebalance
        for start in range(0, n, chunk):
            last.update(produce(kafka_broker, topic, [payload(i) for i in range(start, start + chunk)]))
            time.sleep(0.4)

    threads = [threading.Thread(target=producer), threading.Thread(target=member, args=("a",))]
    for t in threads:
        t.start()
    assert first_commit.wait(30), "the first member committed nothing"
    threads.append(threading.Thread(target=member, args=("b",)))
    threads[-1].start()
    for t in threads:
        t.join(120)
    stats = {name: r for name, r in results.items() if isinstance(r, StreamStats)}
    assert len(stats) == 2, results
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == n
    assert sum(s.landed for s in stats.values()) == n
    assert all(s.landed > 0 for s in stats.values()), {k: s.landed for k, s in stats.items()}
    assert _checkpoint(root) == last  # no member wrote back a stale offset

    # a new group on the same warehouse reads nothing again
    config = root / "lakestack.yaml"
    config.write_text(config.read_text().replace(group, unique("g")))
    again = _stream(root)
    assert (again.received, again.landed) == (0, 0)
    assert len(bronze_ids(root)) == n


def test_a_stop_gives_the_partitions_back_in_its_own_thread_before_closing(
    tmp_path: Path, kafka_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The revocation of a stop is served by the stopping thread's polls, not inside librdkafka's
    close: a rebalance callback run by `Consumer.close()` makes an assign call holding the GIL that
    can wait forever for the terminating group (librdkafka #4041), freezing the whole process."""
    topic, group = create_topic(kafka_broker, partitions=3), unique("g")
    root = _project(tmp_path, kafka_broker, topic, group)
    produce(kafka_broker, topic, [payload(i) for i in range(300)])
    with caplog.at_level(logging.INFO, logger="lakestack.ingest.kafka"):
        assert _stream(root).landed == 300
    given_back = [r for r in caplog.records if "giving back" in r.getMessage()]
    assert given_back, "the stop gave no partition back"
    assert {r.threadName for r in given_back} == {threading.current_thread().name}
    assert f"{topic}/0" in given_back[-1].getMessage()
    assert not [r for r in caplog.records if "not given back" in r.getMessage()]

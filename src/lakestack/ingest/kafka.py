"""Kafka source (confluent-kafka): a consumer group whose offsets come from the Iceberg checkpoint.

Partitions are `topic/partition` and positions are offsets. When partitions are assigned, each
starts after Bronze's committed offset for it (from the beginning when Bronze has none), whatever
the group's committed offsets say: those are committed after each Iceberg commit only so that lag
tools see progress. Before partitions are revoked (a rebalance), what is buffered is committed, so
the next owner starts exactly after it. Partitions lost without a revocation (the member missed its
session) are just dropped: the new owner re-reads what this member had not committed, and the
writer's commit-time fence drops buffered records the new owner has committed first.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from lakestack.config import SecretRef, reveal
from lakestack.errors import RunError
from lakestack.ingest.stream import FlushResult, Positions, StreamRecord, StreamSource

log = logging.getLogger(__name__)
CLOSE_WAIT_S = 20.0  # at most this long to give the partitions back, and to leave the group, at a stop
GIVE_BACK_MIN_S = 0.2  # a stop serves the consumer's queue this long at least (an assignment on its way)

_DIGITS = re.compile(r"\d+")

# Settings lakestack relies on: offsets are stored and committed only after an Iceberg commit.
_FIXED = {"enable.auto.commit": False, "enable.auto.offset.store": False}


class KafkaSource(StreamSource):
    """The topics of one source, read by one member of a consumer group."""

    kind = "kafka"
    _consumer: Any = None

    def open(self, positions: Positions) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer

        settings = self.config.kafka
        assert settings is not None
        secret = settings.bootstrap_servers
        bootstrap = reveal(secret) or ""
        self._log = _Redacting(log, bootstrap if isinstance(secret, SecretRef) else "", str(secret))
        conf: dict[str, Any] = {
            "group.id": settings.group_id or f"lakestack-{self.project}-{self.name}",
            "auto.offset.reset": "earliest",  # only when Bronze's offset has left the topic (retention)
            "enable.partition.eof": False,
        }
        conf.update({k: reveal(v) if isinstance(v, SecretRef) else v for k, v in settings.properties.items()})
        for key, value in _FIXED.items():
            if key in conf and conf[key] not in (value, str(value).lower()):
                log.warning("source %s: Kafka property %s is always %s here", self.name, key, str(value).lower())
            conf[key] = value
        conf["bootstrap.servers"] = bootstrap
        cooperative = "cooperative" in str(conf.get("partition.assignment.strategy", ""))
        self._assigned: set[str] = set()
        self._last_error = ""

        def on_assign(consumer: Any, partitions: list[Any]) -> None:
            committed = positions.committed(refresh=True)  # another member may have moved them
            for tp in partitions:
                key = _key(tp)
                tp.offset = committed[key] + 1 if key in committed else OFFSET_BEGINNING
                self._assigned.add(key)
            log.info("source %s: assigned %s", self.name, ", ".join(sorted(self._assigned)) or "nothing")
            if cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)

        def on_revoke(consumer: Any, partitions: list[Any]) -> None:
            log.info("source %s: giving back %s", self.name, ", ".join(sorted(map(_key, partitions))) or "nothing")
            positions.flush()  # commit what was read from them before another member takes over
            self._commit_offsets(positions.committed(), {_key(tp) for tp in partitions}, asynchronous=False)
            self._assigned -= {_key(tp) for tp in partitions}

        def on_lost(consumer: Any, partitions: list[Any]) -> None:
            # Another member may own them already: no commit now. The next flush drops what the new
            # owner committed meanwhile (StreamWriter._fence); what it reads later is dropped as redelivered.
            log.warning("source %s: lost partitions %s", self.name, ", ".join(sorted(map(_key, partitions))))
            self._assigned -= {_key(tp) for tp in partitions}

        self._consumer = Consumer(conf, logger=self._log)
        self._check_reachable(settings.topics, str(secret), settings.connect_timeout)
        self._consumer.subscribe(list(settings.topics), on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    def _check_reachable(self, topics: list[str], shown: str, timeout: float) -> None:
        """Fail at once (not after the join grace) when no broker answers; warn about missing topics."""
        from confluent_kafka import KafkaException

        try:
            metadata = self._consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            self.close()
            detail = self._log.redact(str(exc.args[0].str() if exc.args else exc))
            raise RunError(f"source '{self.name}': cannot reach Kafka at {shown}: {detail}") from None
        missing = sorted(set(topics) - set(metadata.topics))
        if missing:
            log.warning("source %s: topic(s) %s do not exist (yet); waiting for them", self.name, ", ".join(missing))

    def poll(self, max_records: int, timeout: float) -> list[StreamRecord]:
        from confluent_kafka import KafkaError

        out = []
        for message in self._consumer.consume(num_messages=max_records, timeout=timeout):
            error = message.error()
            if error is None:
                key = f"{message.topic()}/{message.partition()}"
                out.append(StreamRecord(key, message.offset(), message.value() or b""))
            elif error.code() == KafkaError._PARTITION_EOF:
                continue
            elif error.fatal():
                raise RunError(f"source '{self.name}': Kafka failed: {self._log.redact(error.str())}")
            elif error.str() != self._last_error:  # transient (broker down, unknown topic): librdkafka retries
                self._last_error = error.str()
                self._log.log(logging.WARNING, "source %s: Kafka: %s", self.name, error.str())
        if out:
            self._last_error = ""
        return out

    def acknowledge(self, result: FlushResult) -> None:
        self._commit_offsets(result.positions, self._assigned, asynchronous=True)

    def _commit_offsets(self, positions: dict[str, int], keys: set[str], *, asynchronous: bool) -> None:
        """Commit `position + 1` of these partitions to Kafka: a hint for lag tools, Iceberg holds the truth."""
        from confluent_kafka import KafkaException, TopicPartition

        offsets = []
        for key in sorted(keys & positions.keys()):
            topic, _, partition = key.rpartition("/")
            offsets.append(TopicPartition(topic, int(partition), positions[key] + 1))
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
            except KafkaException as exc:
                log.info("source %s: could not commit offsets to Kafka: %s", self.name, self._log.redact(str(exc)))

    def lag(self) -> int | None:
        try:
            total = 0
            for tp in self._consumer.position(self._consumer.assignment()):
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    total += max(0, high - tp.offset)
            return total
        except Exception:  # lag is a hint for the status line
            return None

    def ready(self) -> bool:
        return bool(getattr(self, "_assigned", None))

    def close(self) -> None:
        """Give the partitions back and leave the group, waiting at most CLOSE_WAIT_S for each.

        The partitions are given back here, by an unsubscribe whose revocation this thread serves
        with `poll`, and only then is the consumer closed. A revocation served by librdkafka's close
        runs the rebalance callback inside `Consumer.close()`, where the assign call confluent-kafka
        makes after it (holding the GIL) can wait forever for a group that is terminating
        (librdkafka #4041): every thread of the process froze with it, the stop's own time bounds
        included. The close itself runs in a thread and is waited for at most CLOSE_WAIT_S: by now
        the final commit is in Iceberg, which holds the positions."""
        if self._consumer is None:
            return
        import threading

        consumer = self._consumer
        self._give_back(consumer)
        done = threading.Event()

        def leave() -> None:
            try:
                consumer.close()
            except Exception as exc:  # the data is committed; leaving the group is a courtesy
                log.info("source %s: closing the Kafka consumer: %s", self.name, self._log.redact(str(exc)))
            finally:
                done.set()

        threading.Thread(target=leave, name=f"kafka-close-{self.name}", daemon=True).start()
        if not done.wait(CLOSE_WAIT_S):
            log.warning(
                "source %s: the Kafka consumer did not leave its group within %.0f s (a rebalance in progress): "
                "stopping without it; the positions are in Iceberg, the group reassigns after its session timeout",
                self.name,
                CLOSE_WAIT_S,
            )
        self._consumer = None

    def _give_back(self, consumer: Any) -> None:
        """Unsubscribe and serve the revocation (the rebalance callbacks) in this thread, outside
        librdkafka's close. An assignment already on its way is served too (GIVE_BACK_MIN_S), and
        then revoked; polled records are dropped: what was not committed is read again by the next
        owner from the positions in Iceberg."""
        from confluent_kafka import KafkaException

        try:
            consumer.unsubscribe()
            start = time.monotonic()
            while True:
                elapsed = time.monotonic() - start
                if elapsed >= CLOSE_WAIT_S or (not self._assigned and elapsed >= GIVE_BACK_MIN_S):
                    break
                consumer.poll(0.05)
        except (KafkaException, RuntimeError) as exc:  # closing anyway: the close revokes what is left
            log.info("source %s: giving the partitions back: %s", self.name, self._log.redact(str(exc)))
        except Exception as exc:  # a revocation's commit failed: the next owner reads it again
            log.warning("source %s: committing before giving the partitions back: %s", self.name, exc)
        if self._assigned:
            log.warning(
                "source %s: %s not given back within %.0f s; the close revokes them",
                self.name,
                ", ".join(sorted(self._assigned)),
                CLOSE_WAIT_S,
            )


def _key(tp: Any) -> str:
    return f"{tp.topic}/{tp.partition}"


class _Redacting:
    """Forwards librdkafka's log lines (and ours) with a secret bootstrap address replaced by its name."""

    def __init__(self, logger: logging.Logger, secret: str, name: str) -> None:
        self.logger = logger
        self.names = sorted({s.strip() for part in secret.split(",") if part for s in (part, _host(part))}, key=len)
        self.name = name
        self._seen: set[str] = set()  # librdkafka repeats a failing connect every second or so

    def redact(self, text: str) -> str:
        for value in reversed(self.names):  # longest first: "host:9092" before "host"
            if value:
                text = text.replace(value, self.name)
        return text

    def log(self, level: int, msg: str, *args: Any) -> None:
        """Each distinct line once at its level; repeats only at DEBUG."""
        text = self.redact(msg % args if args else msg)
        shape = _DIGITS.sub("#", text)  # "(after 3ms in state CONNECT)" and "(after 8ms ...)" are one line
        if shape in self._seen:
            level = logging.DEBUG
        elif len(self._seen) < 1_000:
            self._seen.add(shape)
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s", text)


def _host(server: str) -> str:
    server = server.strip().rpartition("://")[2]
    return server.rpartition(":")[0] if server.count(":") == 1 else server

"""NATS JetStream source: a durable pull consumer, acknowledged only after the Iceberg commit.

The partition is the stream's name and the position is each message's stream sequence. On start
the consumer is re-created at the sequence after Bronze's checkpoint (Iceberg, not the server,
holds the truth); a message the server still delivers again (an ack lost while running) is at or
below the checkpoint and is dropped by the writer, then acknowledged. The consumer uses AckPolicy.ALL:
acknowledging the last message of a commit acknowledges everything before it, one round trip
per commit instead of one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from lakestack.config import reveal
from lakestack.errors import LakestackError
from lakestack.ingest.stream import FlushResult, Positions, StreamRecord, StreamSource

log = logging.getLogger(__name__)


class NatsSource(StreamSource):
    """Messages of one JetStream stream (optionally one filter subject)."""

    kind = "nats"

    def open(self, positions: Positions) -> None:
        import nats
        import nats.js.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        settings = self.config.nats
        assert settings is not None
        self._loop = asyncio.new_event_loop()
        self._durable = settings.durable or f"lakestack-{self.name}"
        url = reveal(settings.url)

        async def connect() -> Any:
            async def on_error(exc: Exception) -> None:
                log.warning("source %s: NATS: %s", self.name, exc)

            nc = await nats.connect(str(url), connect_timeout=5, max_reconnect_attempts=3, error_cb=on_error)
            js = nc.jetstream()
            # The consumer is only a cursor: it is re-created at Bronze's checkpoint on every start, so
            # messages a crashed process held unacknowledged come again at once (not after ack_wait).
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(settings.stream, self._durable)
            committed = positions.committed(refresh=True).get(settings.stream)
            config = ConsumerConfig(
                durable_name=self._durable,
                ack_policy=AckPolicy.ALL,
                deliver_policy=DeliverPolicy.ALL if committed is None else DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=None if committed is None else committed + 1,
                filter_subject=settings.subject,
                max_ack_pending=-1,
                ack_wait=60,
            )
            await js.add_consumer(settings.stream, config)
            sub = await js.pull_subscribe_bind(self._durable, settings.stream)
            return nc, js, sub

        try:
            self._nc, self._js, self._sub = self._run(connect())
        except Exception as exc:
            self._loop.close()
            raise LakestackError(f"source '{self.name}': cannot reach NATS stream {settings.stream}: {exc}") from exc
        self._stream = settings.stream

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def poll(self, max_records: int, timeout: float) -> list[StreamRecord]:
        import nats.errors

        async def fetch() -> list[Any]:
            try:
                return list(await self._sub.fetch(batch=min(max_records, 5_000), timeout=max(timeout, 0.05)))
            except (TimeoutError, nats.errors.TimeoutError):
                return []

        messages = self._run(fetch())
        return [StreamRecord(self._stream, _stream_sequence(m), m.data, ack=m) for m in messages]

    def acknowledge(self, result: FlushResult) -> None:
        if not result.acks:
            return
        # AckPolicy.ALL: acking the last delivered message acks everything before it. Acks are kept in
        # delivery order, so the last one is the newest (no metadata parse per message).
        self._run(result.acks[-1].ack_sync(timeout=5))

    def lag(self) -> int | None:
        try:
            info = self._run(self._js.consumer_info(self._stream, self._durable))
            return int(info.num_pending)
        except Exception:  # lag is a hint for the status line
            return None

    def close(self) -> None:
        try:
            self._run(self._nc.close())  # acks were sent after each commit; nothing is left to drain
        except Exception:  # closing a broken connection
            log.debug("closing NATS connection", exc_info=True)
        self._loop.close()


def _stream_sequence(message: Any) -> int:
    """The message's stream sequence, read from its reply subject
    (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`) without
    building nats-py's metadata object; other subject forms (with a domain) go through nats-py."""
    tokens = (message.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5])
    return int(message.metadata.sequence.stream)

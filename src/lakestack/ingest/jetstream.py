"""NATS JetStream source: a durable pull consumer, acknowledged only after the Iceberg commit.

The partition is the stream's name and the position is each message's stream sequence. On start
the consumer is re-created at the sequence after Bronze's checkpoint (Iceberg, not the server,
holds the truth); a message the server still delivers again (an ack lost while running) is at or
below the checkpoint and is dropped by the writer, then acknowledged. The consumer uses AckPolicy.ALL:
acknowledging the last message of a commit acknowledges everything before it, one round trip
per commit instead of one per message.

The whole stream is one partition, so two processes pulling from one durable consumer would each
get every other message and fence the other's away. One process owns a consumer at a time: it
holds a lease in a NATS key-value bucket (`lakestack-lease-<stream>`, key = the durable name) that
expires `lease_seconds` after its last renewal. A second process waits for it; a killed owner's
successor takes over within the lease; an owner paused past its lease (SIGSTOP) finds its renewal
refused and stops without committing, and the lease's epoch in every checkpoint refuses its commit
once a newer owner has committed (ADR 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lakestack.config import reveal
from lakestack.errors import LakestackError, RunError
from lakestack.ingest.stream import FlushResult, OwnershipLost, Positions, StreamRecord, StreamSource

log = logging.getLogger(__name__)


class NatsSource(StreamSource):
    """Messages of one JetStream stream (optionally one filter subject)."""

    kind = "nats"
    _loop: asyncio.AbstractEventLoop | None = None
    _nc: Any = None
    _lease: Lease | None = None

    def _connect(self) -> None:
        import nats

        settings = self.config.nats
        assert settings is not None
        self._loop = asyncio.new_event_loop()
        self._durable = settings.durable or f"lakestack-{self.name}"
        self._stream = settings.stream
        url = reveal(settings.url)

        async def connect() -> Any:
            async def on_error(exc: Exception) -> None:
                log.warning("source %s: NATS: %s", self.name, exc)

            return await nats.connect(str(url), connect_timeout=5, max_reconnect_attempts=3, error_cb=on_error)

        try:
            self._nc = self._run(connect())
        except Exception as exc:
            self._loop.close()
            self._loop = None
            raise LakestackError(f"source '{self.name}': cannot reach NATS at {settings.url}: {exc}") from exc
        self._js = self._nc.jetstream()

    def claim(self, positions: Positions, stop: threading.Event, *, patient: bool = True) -> bool:
        settings = self.config.nats
        assert settings is not None
        self._connect()
        try:
            self._lease = Lease(self._js, self._run, self.name, settings.stream, self._durable, settings.lease_seconds)
            patience = None if patient else 2 * settings.lease_seconds + 1
            if not self._lease.acquire(stop, floor=positions.epoch(), patience=patience):
                self._lease = None
                self.close()
                return False
        except BaseException:
            self.close()
            raise
        self.epoch = self._lease.epoch
        return True

    def check_owner(self, *, force: bool = False) -> None:
        if self._lease is not None:
            self._lease.renew(force=force)

    def open(self, positions: Positions) -> None:
        import nats.js.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        settings = self.config.nats
        assert settings is not None
        if self._nc is None:
            self._connect()
        js = self._js

        async def subscribe() -> Any:
            # The consumer is only a cursor: it is re-created at Bronze's checkpoint on every start, so
            # messages a crashed process held unacknowledged come again at once (not after ack_wait).
            # The lease (claim) makes this process the consumer's only reader.
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
            return await js.pull_subscribe_bind(self._durable, settings.stream)

        try:
            self._sub = self._run(subscribe())
        except Exception as exc:
            self.close()
            raise LakestackError(f"source '{self.name}': cannot reach NATS stream {settings.stream}: {exc}") from exc

    def _run(self, coro: Any) -> Any:
        assert self._loop is not None
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
        if self._loop is None:
            return
        if self._lease is not None:
            self._lease.release()  # a waiting process takes over at once, not after the lease
            self._lease = None
        try:
            self._run(self._nc.close())  # acks were sent after each commit; nothing is left to drain
        except Exception:  # closing a broken connection
            log.debug("closing NATS connection", exc_info=True)
        self._loop.close()
        self._loop = None
        self._nc = None


def lease_bucket(stream: str) -> str:
    """The key-value bucket holding the owner leases of a stream's durable consumers."""
    return "lakestack-lease-" + re.sub(r"[^A-Za-z0-9_-]", "_", stream)


class Lease:
    """One process's claim on a durable consumer, in a NATS key-value bucket whose entries expire
    `seconds` after their last write (the bucket's max age).

    Acquiring is a create-if-absent; renewing and releasing are compare-and-swap on the revision
    this process last wrote, so a renewal fails once the lease expired and someone else took it.
    The fencing epoch is the bucket revision that created it (revisions only grow), raised above
    any epoch Bronze already holds (a bucket deleted and made anew starts again at 1)."""

    def __init__(
        self, js: Any, run: Callable[[Any], Any], source: str, stream: str, durable: str, seconds: float
    ) -> None:
        self._js = js
        self._run = run
        self.source = source
        self.durable = durable
        self.key = re.sub(r"[^-/_=.A-Za-z0-9]", "_", durable)
        self.bucket = lease_bucket(stream)
        self.seconds = seconds
        self.owner = f"{socket.gethostname()}/{os.getpid()}"
        self.epoch = 0
        self.revision = 0
        self.renewed = 0.0
        self._value = b""
        self._kv: Any = None

    def acquire(self, stop: threading.Event, floor: int | None, patience: float | None = None) -> bool:
        """Take the lease, waiting while another process holds it; False if `stop` is set first.
        With `patience`, give up after that many seconds (RunError naming the owner)."""
        import nats.js.errors

        self._kv = self._run(self._bucket())
        shown: dict[str, Any] | None = None
        started = time.monotonic()
        while not stop.is_set():
            since = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                created = self._run(self._kv.create(self.key, self._encode(since, 0)))
            except nats.js.errors.KeyWrongLastSequenceError:
                holder = self._holder()
                if holder is not None and holder != shown:
                    log.warning(
                        "source %s is owned by %s since %s (epoch %s); waiting (its lease runs out %g s after "
                        "its last renewal)",
                        self.source,
                        holder.get("owner", "?"),
                        holder.get("since", "?"),
                        holder.get("epoch", "?"),
                        self.seconds,
                    )
                    shown = holder
                if patience is not None and time.monotonic() - started > patience:
                    owner = shown or {}
                    raise RunError(
                        f"source '{self.source}' is owned by {owner.get('owner', 'another process')} since "
                        f"{owner.get('since', '?')}: another process reads it; stop that one, or run "
                        f"'lakestack stream {self.source}' without --until-idle to wait for it"
                    ) from None
                stop.wait(min(1.0, self.seconds / 4))
                continue
            self.epoch = max(int(created), (floor or 0) + 1)
            self._value = self._encode(since, self.epoch)
            self.revision = self._run(self._kv.update(self.key, self._value, last=created))
            self.renewed = time.monotonic()
            if shown is not None:  # it waited: say so as loudly as the wait
                log.warning(
                    "source %s: %s no longer holds it; this process (%s) reads it now (epoch %d)",
                    self.source,
                    shown.get("owner", "the previous owner"),
                    self.owner,
                    self.epoch,
                )
            log.info(
                "source %s: owner %s (epoch %d) of NATS consumer %s", self.source, self.owner, self.epoch, self.durable
            )
            return True
        return False

    async def _bucket(self) -> Any:
        import nats.js.errors

        try:
            kv = await self._js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            try:
                return await self._js.create_key_value(bucket=self.bucket, history=1, ttl=self.seconds)
            except nats.js.errors.BadRequestError:  # a rival created it first (with another lease length)
                kv = await self._js.key_value(self.bucket)
        ttl = (await kv.status()).ttl
        if ttl and abs(ttl - self.seconds) > 0.01:
            log.info(
                "source %s: the lease bucket %s keeps leases %g s (not %g s)",
                self.source,
                self.bucket,
                ttl,
                self.seconds,
            )
            self.seconds = float(ttl)
        return kv

    def _encode(self, since: str, epoch: int) -> bytes:
        return json.dumps({"owner": self.owner, "since": since, "epoch": epoch}).encode()

    def _holder(self) -> dict[str, Any] | None:
        try:
            entry = self._run(self._kv.get(self.key))
            value: dict[str, Any] = json.loads(entry.value or b"{}")
            return value
        except Exception:  # gone meanwhile (expired, released): the next create takes it
            return None

    def renew(self, *, force: bool = False) -> None:
        """Renew when a third of the lease has passed (or always with `force`, before a commit);
        raise OwnershipLost if another process took it meanwhile."""
        import nats.js.errors

        elapsed = time.monotonic() - self.renewed
        if not force and elapsed < self.seconds / 3:
            return
        try:
            self.revision = self._run(self._kv.update(self.key, self._value, last=self.revision))
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            holder = self._holder() or {}
            self.revision = 0  # not ours any more: release must not delete the new owner's lease
            raise OwnershipLost(
                f"source '{self.source}': lost the lease on NATS consumer {self.durable} (last renewed "
                f"{elapsed:.1f} s ago, lease {self.seconds:g} s: this process was paused or cut off); "
                f"{holder.get('owner', 'another process')} owns it now; stopping without committing"
            ) from None
        except Exception as exc:  # NATS unreachable: never commit unconfirmed; reading may go on a while
            if force or elapsed >= self.seconds:
                raise RunError(
                    f"source '{self.source}': cannot renew the lease on NATS consumer {self.durable}: {exc}"
                ) from None
            log.warning("source %s: could not renew the lease yet: %s", self.source, exc)
            return
        self.renewed = time.monotonic()

    def release(self) -> None:
        if not self.revision or self._kv is None:
            return
        try:
            self._run(self._kv.delete(self.key, last=self.revision))
        except Exception:  # expired or taken already; it runs out by itself anyway
            log.debug("releasing the lease of %s", self.durable, exc_info=True)
        self.revision = 0


def _stream_sequence(message: Any) -> int:
    """The message's stream sequence, read from its reply subject
    (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`) without
    building nats-py's metadata object; other subject forms (with a domain) go through nats-py."""
    tokens = (message.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5])
    return int(message.metadata.sequence.stream)

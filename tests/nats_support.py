"""JetStream streams for tests: create a uniquely named stream, publish into it, delete it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid


def make_stream(url: str) -> tuple[str, str]:
    """A new stream; returns (stream name, subject prefix)."""
    import nats

    name = f"EV_{uuid.uuid4().hex[:10].upper()}"
    subject = f"ev.{name.lower()}"

    async def create() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().add_stream(name=name, subjects=[f"{subject}.>"])
        await nc.close()

    asyncio.run(create())
    return name, subject


def publish(url: str, subject: str, payloads: list[bytes]) -> None:
    """Publish with JetStream acks, in windows, so every message is stored when this returns."""
    import nats

    async def send() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        for start in range(0, len(payloads), 500):
            await asyncio.gather(*(js.publish(f"{subject}.x", p) for p in payloads[start : start + 500]))
        await nc.close()

    asyncio.run(send())


def delete_stream(url: str, name: str) -> None:
    import nats
    import nats.js.errors

    from lakestack.ingest.jetstream import lease_bucket

    async def delete() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.delete_stream(name)
        with contextlib.suppress(nats.js.errors.NotFoundError):  # the owner leases of its consumers
            await js.delete_key_value(lease_bucket(name))
        await nc.close()

    asyncio.run(delete())


def lease_holder(url: str, stream: str, durable: str) -> dict[str, object] | None:
    """Who holds the owner lease of a durable consumer (its JSON value), or None."""
    import json

    import nats
    import nats.js.errors

    from lakestack.ingest.jetstream import lease_bucket

    async def get() -> dict[str, object] | None:
        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().key_value(lease_bucket(stream))
            entry = await kv.get(durable)
            value: dict[str, object] = json.loads(entry.value or b"{}")
            return value
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.KeyNotFoundError):
            return None
        finally:
            await nc.close()

    return asyncio.run(get())

"""JetStream streams for tests: create a uniquely named stream, publish into it, delete it."""

from __future__ import annotations

import asyncio
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

    async def delete() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().delete_stream(name)
        await nc.close()

    asyncio.run(delete())

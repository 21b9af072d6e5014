"""NATS JetStream → Bronze benchmark: events/s from a stream to committed Bronze, beside a plain
nats-py pull consumer that only reads and acknowledges the same messages (the broker's floor)."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from stream_kafka import _rows, drain_seconds

from data import EVENT_SCHEMA, make_events

URL = "nats://127.0.0.1:4222"


def _project(root: Path, stream: str) -> None:
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "events.v1.json").write_text(json.dumps({**EVENT_SCHEMA, "x-lakestack-key": ["event_id"]}))
    (root / "lakestack.yaml").write_text(
        "name: bench_nats\nenvironments:\n  dev:\n    warehouse: ./warehouse\n"
        '    catalog: {type: sql, uri: "sqlite:///.lakestack/catalog.db"}\n'
        f"sources:\n  events: {{kind: nats, contract: events, nats: {{url: '{URL}', stream: {stream}}}}}\n"
    )


async def _publish(stream: str, payloads: list[bytes]) -> None:
    import nats

    nc = await nats.connect(URL)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
    for start in range(0, len(payloads), 2_000):
        await asyncio.gather(*(js.publish(f"{stream.lower()}.e", p) for p in payloads[start : start + 2_000]))
    await nc.close()


async def _delete(stream: str) -> None:
    import nats

    nc = await nats.connect(URL)
    await nc.jetstream().delete_stream(stream)
    await nc.close()


async def _plain_consumer(stream: str, n: int) -> float:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(URL)
    js = nc.jetstream()
    await js.add_consumer(stream, ConsumerConfig(durable_name="plain", ack_policy=AckPolicy.ALL, max_ack_pending=-1))
    sub = await js.pull_subscribe_bind("plain", stream)
    t0, seen = time.perf_counter(), 0
    while seen < n:
        msgs = await sub.fetch(batch=5_000, timeout=2)
        seen += len(msgs)
        await msgs[-1].ack_sync()
    seconds = time.perf_counter() - t0
    await nc.close()
    return seconds


def bench_nats(n_events: int, repeat: int) -> list[dict[str, Any]]:
    from lakestack.pipeline.lake import Lake

    payloads = make_events(n_events)
    lake_s, plain_s = [], []
    for _ in range(repeat):
        stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
        asyncio.run(_publish(stream, payloads))
        try:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "p"
                _project(root, stream)
                lake_s.append(drain_seconds(Lake.open(root), n_events))
            plain_s.append(asyncio.run(_plain_consumer(stream, n_events)))
        finally:
            asyncio.run(_delete(stream))
    return _rows("nats→bronze", n_events, repeat, lake_s, plain_s, "nats-py pull, read + ack only")


if __name__ == "__main__":
    for row in bench_nats(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000, 3):
        print(row)

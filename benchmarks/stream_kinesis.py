"""Kinesis → Bronze benchmark through boto3 against a moto server: events/s to committed Bronze,
beside a plain boto3 GetRecords loop that only reads the same records. moto is itself a Python
server, so both numbers are bounded by it; the ratio is what carries over to AWS."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from stream_kafka import _rows, drain_seconds

from data import EVENT_SCHEMA, make_events


def _put(client: Any, stream: str, payloads: list[bytes]) -> None:
    for start in range(0, len(payloads), 500):
        chunk = payloads[start : start + 500]
        records = [{"Data": p, "PartitionKey": f"k{start + i}"} for i, p in enumerate(chunk)]
        assert client.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0


def _plain(client: Any, stream: str, n: int) -> float:
    t0, seen = time.perf_counter(), 0
    iterators = [
        client.get_shard_iterator(StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for s in client.list_shards(StreamName=stream)["Shards"]
    ]
    while seen < n:
        for i, it in enumerate(iterators):
            page = client.get_records(ShardIterator=it, Limit=10_000)
            seen += len(page["Records"])
            iterators[i] = page["NextShardIterator"]
    return time.perf_counter() - t0


def bench_kinesis(n_events: int, repeat: int) -> list[dict[str, Any]]:
    import boto3
    from moto.server import ThreadedMotoServer

    from lakestack.pipeline.lake import Lake

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=endpoint)
    payloads = make_events(n_events)
    lake_s, plain_s = [], []
    try:
        for _ in range(repeat):
            stream = f"bench-{uuid.uuid4().hex[:8]}"
            client.create_stream(StreamName=stream, ShardCount=4)
            _put(client, stream, payloads)
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "p"
                (root / "contracts").mkdir(parents=True)
                contract = {**EVENT_SCHEMA, "x-lakestack-key": ["event_id"]}
                (root / "contracts" / "events.v1.json").write_text(json.dumps(contract))
                settings = {"stream_name": stream, "endpoint_url": endpoint, "poll_seconds": 0.05}
                (root / "lakestack.yaml").write_text(
                    "name: bench_kinesis\nenvironments:\n  dev:\n    warehouse: ./warehouse\n"
                    '    catalog: {type: sql, uri: "sqlite:///.lakestack/catalog.db"}\n'
                    f"sources:\n  events: {{kind: kinesis, contract: events, kinesis: {json.dumps(settings)}}}\n"
                )
                lake_s.append(drain_seconds(Lake.open(root), n_events))
            plain_s.append(_plain(client, stream, n_events))
    finally:
        server.stop()
    return _rows("kinesis→bronze (moto)", n_events, repeat, lake_s, plain_s, "boto3 GetRecords loop, read only")


if __name__ == "__main__":
    for row in bench_kinesis(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000, 3):
        print(row)

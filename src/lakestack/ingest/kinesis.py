"""Kinesis source (boto3): every shard read from after Bronze's checkpoint.

Partitions are shard ids and positions are sequence numbers (decimal strings of up to 128 bits,
kept as Python ints and stored as strings). Kinesis keeps no consumer state, so the checkpoint is
the only cursor: a shard with a committed sequence number resumes AFTER_SEQUENCE_NUMBER, any other
shard starts at TRIM_HORIZON. Resharding: shards are listed again every `rediscover_s` seconds and
whenever a shard closes; a child shard is read only after its parents are read to their end, so
records of one key stay in order and none is skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lakestack.errors import LakestackError
from lakestack.ingest.stream import Positions, StreamRecord, StreamSource

log = logging.getLogger(__name__)


class KinesisSource(StreamSource):
    """All shards of one Kinesis data stream."""

    kind = "kinesis"
    rediscover_s = 10.0

    def open(self, positions: Positions) -> None:
        try:
            import boto3  # type: ignore[import-untyped]
        except ImportError:
            from lakestack.errors import MissingExtraError

            raise MissingExtraError("a Kinesis source", "aws") from None
        settings = self.config.kinesis
        assert settings is not None
        self._settings = settings
        from botocore.exceptions import NoRegionError  # type: ignore[import-untyped]

        try:
            self._client = boto3.client("kinesis", region_name=settings.region, endpoint_url=settings.endpoint_url)
        except NoRegionError:
            raise LakestackError(
                f"source '{self.name}': no AWS region for Kinesis: set kinesis.region in lakestack.yaml, "
                "or AWS_REGION / AWS_DEFAULT_REGION"
            ) from None
        self._positions = positions
        self._iterators: dict[str, str | None] = {}  # open shard → its next iterator
        self._finished: set[str] = set()  # shards read to their end (closed by resharding)
        self._parents: dict[str, list[str]] = {}
        self._last_read: dict[str, int] = {}  # shard → last sequence number returned
        self._behind_ms = 0
        self._last_listed = 0.0
        try:
            self._discover()
        except Exception as exc:
            raise LakestackError(
                f"source '{self.name}': cannot read Kinesis stream {settings.stream_name}: {exc}"
            ) from exc

    def _discover(self) -> None:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self._settings.stream_name}
        while True:
            page = self._client.list_shards(**kwargs)
            shards += page["Shards"]
            if not page.get("NextToken"):
                break
            kwargs = {"NextToken": page["NextToken"]}
        committed = self._positions.committed()
        for shard in shards:
            shard_id = shard["ShardId"]
            self._parents[shard_id] = [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]
        known = {s["ShardId"] for s in shards}
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._iterators or shard_id in self._finished:
                continue
            waiting = [p for p in self._parents[shard_id] if p in known and p not in self._finished]
            if waiting:
                continue  # its parents still have records to give
            self._iterators[shard_id] = self._iterator(shard_id, committed.get(shard_id))
        self._last_listed = time.monotonic()

    def _iterator(self, shard_id: str, after: int | None) -> str:
        kwargs: dict[str, Any] = {"StreamName": self._settings.stream_name, "ShardId": shard_id}
        if after is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=str(after))
        iterator: str = self._client.get_shard_iterator(**kwargs)["ShardIterator"]
        return iterator

    def poll(self, max_records: int, timeout: float) -> list[StreamRecord]:
        deadline = time.monotonic() + timeout
        out: list[StreamRecord] = []
        while True:
            if time.monotonic() - self._last_listed >= self.rediscover_s:
                self._discover()
            for shard_id in list(self._iterators):
                if len(out) >= max_records:
                    break
                out += self._read(shard_id, min(self._settings.limit, max_records - len(out)))
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(self._settings.poll_seconds, max(0.0, deadline - time.monotonic())))

    def _read(self, shard_id: str, limit: int) -> list[StreamRecord]:
        iterator = self._iterators[shard_id]
        if iterator is None:
            return []
        errors = self._client.exceptions
        for attempt in range(5):
            try:
                page = self._client.get_records(ShardIterator=iterator, Limit=limit)
                break
            except errors.ExpiredIteratorException:  # idle for 5 minutes: start again after the last record
                after = self._last_read.get(shard_id, self._positions.committed().get(shard_id))
                iterator = self._iterator(shard_id, after)
            except errors.ProvisionedThroughputExceededException:
                time.sleep(0.2 * 2**attempt)
        else:
            return []
        records = [StreamRecord(shard_id, int(r["SequenceNumber"]), r["Data"]) for r in page["Records"]]
        if records:
            self._last_read[shard_id] = records[-1].position
        self._behind_ms = max(self._behind_ms, int(page.get("MillisBehindLatest") or 0))
        following = page.get("NextShardIterator")
        if following is None:  # the shard was closed by resharding and is read to its end
            del self._iterators[shard_id]
            self._finished.add(shard_id)
            self._discover()  # its children may start now
        else:
            self._iterators[shard_id] = following
        return records

    def lag(self) -> int | None:
        """Milliseconds behind the newest record (Kinesis' MillisBehindLatest), not a record count."""
        behind, self._behind_ms = self._behind_ms, 0
        return behind

    def close(self) -> None:
        self._client.close()

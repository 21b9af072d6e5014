"""The CloudWatch metrics sink: the registry's values through `PutMetricData` (boto3, `[aws]` extra).

A daemon thread wakes every `flush_seconds` and sends what changed since its last successful call:
a counter's increase (CloudWatch's Sum over a period is then the total), a gauge's value, and a
histogram's new observations as `Values`/`Counts`. Batches hold at most 1,000 metric data and stay
under 1 MB (PutMetricData's limits); each call has `timeout` seconds to connect and to read and is
not retried by botocore. A failed call is logged and counted (`errors`; `lakestack_metrics_sink_errors_total`)
and its data are sent again with the next flush (counter increases accumulate; a histogram keeps its
newest 1,000 observations, older ones are counted in `dropped`). The job's thread never waits for
CloudWatch: closing waits at most a few seconds for the last flush.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from lakestack.config import CloudWatchConfig
from lakestack.errors import MissingExtraError
from lakestack.monitor.metrics import DIMENSIONS, SINK_ERRORS, MetricsRegistry, Sample

log = logging.getLogger(__name__)

MAX_DATA = 1000  # metric data per PutMetricData call
MAX_BYTES = 900_000  # a call's payload stays under CloudWatch's 1 MB
MAX_VALUES = 150  # values per metric datum
CLOSE_WAIT_S = 5.0

_Key = tuple[Any, tuple[str, ...]]
_State = tuple[int, float, int]  # (stamp, value, count) a series had when last sent


class CloudWatchSink:
    """Publishes a `MetricsRegistry` to CloudWatch on its own thread (started by the first `start`)."""

    def __init__(
        self,
        registry: MetricsRegistry,
        config: CloudWatchConfig,
        *,
        client: Callable[[], Any] | None = None,
    ) -> None:
        if client is None and importlib.util.find_spec("boto3") is None:
            raise MissingExtraError("the cloudwatch metrics sink", "aws")
        self.registry, self.config = registry, config
        self._client_factory = client or self._boto3_client
        self._client: Any = None
        self._sent: dict[_Key, _State] = {}
        self._lost_upto: dict[_Key, int] = {}  # histogram observations counted as dropped up to this count
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0  # failed calls
        self.dropped = 0  # data points that can no longer be sent
        self.calls = 0  # successful PutMetricData calls
        _LIVE.add(self)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="metrics-cloudwatch", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.config.flush_seconds):
            self.flush()

    def close(self, wait: float = CLOSE_WAIT_S) -> None:
        """Stop the thread and send what changed since the last flush, waiting at most `wait` s."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)
        last = threading.Thread(target=self.flush, name="metrics-cloudwatch-last", daemon=True)
        last.start()
        last.join(wait)
        if last.is_alive():
            log.warning("CloudWatch metrics: the last flush did not finish within %.0f s", wait)
        _LIVE.discard(self)

    def flush(self) -> int:
        """Send what changed; returns the data sent. Never raises."""
        with self._flush_lock:
            try:
                return self._flush()
            except Exception as exc:  # a sink never fails anything
                self._failed(exc, 0)
                return 0

    def _flush(self) -> int:
        now = datetime.now(UTC)
        pending = [(key, state, data) for key, state, data in self._changes(now) if data]
        sent = 0
        for batch in _batches(pending):
            data = [d for _, _, items in batch for d in items]
            try:
                self._put(data)
            except Exception as exc:
                self._failed(exc, len(data))
                continue  # the next flush sends them again
            self.calls += 1
            sent += len(data)
            for key, state, _ in batch:
                self._sent[key] = state
        return sent

    def _put(self, data: list[dict[str, Any]]) -> None:
        if self._client is None:
            self._client = self._client_factory()
        self._client.put_metric_data(Namespace=self.config.namespace, MetricData=data)

    def _failed(self, exc: Exception, count: int) -> None:
        self.errors += 1
        self.registry.inc(SINK_ERRORS, sink="cloudwatch")
        text = str(exc).strip().splitlines()
        log.warning(
            "CloudWatch metrics: PutMetricData of %d data failed (%s); they are sent again with the next flush",
            count,
            text[0] if text else type(exc).__name__,
        )

    def _changes(self, now: datetime) -> Iterator[tuple[_Key, _State, list[dict[str, Any]]]]:
        """For each series changed since it was last sent: the state to remember once sent, and its data."""
        for sample in self.registry.samples():
            if sample.metric is SINK_ERRORS:
                continue  # about this sink: shown at /metrics, not sent through it
            key = (sample.metric, sample.labels)
            stamp, value, count = self._sent.get(key, (0, 0.0, 0))
            if sample.stamp <= stamp:
                continue
            state = (sample.stamp, sample.value, sample.count)
            base = self._datum(sample, now)
            if sample.metric.kind == "counter":
                yield key, state, [{**base, "Value": max(sample.value - value, 0.0)}]
            elif sample.metric.kind == "gauge":
                yield key, state, [{**base, "Value": sample.value}]
            else:
                yield key, state, self._observations(key, sample, base, sample.count - count)

    def _observations(self, key: _Key, sample: Sample, base: dict[str, Any], new: int) -> list[dict[str, Any]]:
        values = list(sample.recent[-new:]) if new > 0 else []
        if new > len(values) and self._lost_upto.get(key, 0) < sample.count:  # counted once, not per retry
            self.dropped += min(new - len(values), sample.count - self._lost_upto.get(key, 0))
            self._lost_upto[key] = sample.count
        out = []
        for i in range(0, len(values), MAX_VALUES):
            chunk = values[i : i + MAX_VALUES]
            distinct: dict[float, int] = {}
            for v in chunk:
                distinct[v] = distinct.get(v, 0) + 1
            out.append({**base, "Values": list(distinct), "Counts": [float(n) for n in distinct.values()]})
        return out

    def _datum(self, sample: Sample, now: datetime) -> dict[str, Any]:
        dims = [
            {"Name": DIMENSIONS[name], "Value": value[:1024] or "-"}
            for name, value in zip(sample.metric.labels, sample.labels, strict=True)
        ]
        dims += [{"Name": k, "Value": v} for k, v in self.config.dimensions.items()]
        return {
            "MetricName": sample.metric.cloudwatch_name,
            "Dimensions": dims,
            "Timestamp": now,
            "Unit": sample.metric.cloudwatch_unit,
        }

    def _boto3_client(self) -> Any:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        timeout = self.config.timeout
        config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"})
        return boto3.session.Session().client(
            "cloudwatch", region_name=self.config.region, endpoint_url=self.config.endpoint_url, config=config
        )


def _batches(
    pending: list[tuple[_Key, _State, list[dict[str, Any]]]],
) -> Iterator[list[tuple[_Key, _State, list[dict[str, Any]]]]]:
    """Groups of series whose data fit one call (≤ MAX_DATA data, ≤ MAX_BYTES estimated)."""
    batch: list[tuple[_Key, _State, list[dict[str, Any]]]] = []
    count = size = 0
    for item in pending:
        n = len(item[2])
        weight = sum(len(json.dumps(d, default=str)) for d in item[2]) * 2  # form encoding is longer than JSON
        if batch and (count + n > MAX_DATA or size + weight > MAX_BYTES):
            yield batch
            batch, count, size = [], 0, 0
        batch.append(item)
        count, size = count + n, size + weight
    if batch:
        yield batch


_LIVE: weakref.WeakSet[CloudWatchSink] = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    """Send the last figures when the process ends without closing its lake (a CLI command)."""
    for sink in list(_LIVE):
        sink.close(wait=CLOSE_WAIT_S)

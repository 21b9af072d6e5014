"""The HTTP collector: producers POST batches of events; each answer comes after the commit.

Requests that arrive while a commit runs are gathered into the next one (group commit), so one
Iceberg snapshot serves many requests, and every answer lists each record's result: accepted, or
rejected with every contract error (rejected records go to quarantine). A request may carry a
client batch id (`Lakestack-Batch-Id` or `Idempotency-Key` header): the ids a commit holds are in
its checkpoint, so a retried request, even after a crash or a restart, lands once. An id is
remembered for `http.dedup_hours`.

When more records wait for a commit than `stream.max_pending`, new requests are refused
(HTTP 503 with Retry-After) instead of queueing without bound.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakestack.contracts.validate import Issue
from lakestack.errors import LakestackError
from lakestack.ingest.base import IngestObserver, Source, SourceReport
from lakestack.ingest.stream import StreamRecord, StreamWriter
from lakestack.storage.warehouse import history

if TYPE_CHECKING:
    from lakestack.config import SourceConfig
    from lakestack.contracts.model import Contract
    from lakestack.storage.warehouse import Warehouse

log = logging.getLogger(__name__)


class Overloaded(LakestackError):
    """More records wait for a commit than the collector holds; retry after a moment."""

    exit_code = 3


class LimitExceeded(LakestackError):
    """A request over one of the collector's limits."""

    exit_code = 2

    def __init__(self, limit: str, value: int, maximum: int, detail: str, status: int = 413) -> None:
        super().__init__(detail)
        self.limit, self.value, self.maximum, self.status = limit, value, maximum, status


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The answer to one request: which records landed, and why the others did not."""

    source: str
    batch_id: str
    records: int
    accepted: int
    rejected: int
    errors: dict[int, list[Issue]]  # record index → every issue
    snapshot_id: int | None
    duplicate: bool = False

    def as_json(self) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for i in range(self.records):
            issues = self.errors.get(i)
            if issues is None:
                results.append({"status": "accepted"})
            else:
                results.append(
                    {
                        "status": "rejected",
                        "errors": [{"path": x.path, "rule": x.rule, "message": x.message} for x in issues],
                    }
                )
        return {
            "source": self.source,
            "batch_id": self.batch_id,
            "records": self.records,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicate": self.duplicate,
            "snapshot_id": self.snapshot_id,
            "results": results,
        }


@dataclass(slots=True)
class _Request:
    batch_id: str
    client: bool
    raws: list[bytes]
    future: Future[BatchResult]


class HttpSource(Source):
    """The HTTP collector's source: data is pushed by `lakestack serve`, so ingest has nothing to pull."""

    kind = "http"

    def __init__(self, name: str, contract: Contract, config: SourceConfig, project: str = "lakestack") -> None:
        self.name, self.contract, self.config, self.project = name, contract, config, project

    def ingest(
        self, warehouse: Any, run_id: str, observer: IngestObserver, only: list[str] | None = None
    ) -> SourceReport:
        return SourceReport(self.name)


class Collector:
    """Group-commits the records of concurrent requests for one source, in one committer thread."""

    def __init__(self, warehouse: Warehouse, name: str, contract: Contract, config: SourceConfig, run_id: str) -> None:
        self.name = name
        self.config = config
        self.limits = config.http
        self.writer = StreamWriter(warehouse, name, contract, "http", config.stream, run_id)
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._pending = 0
        self._inflight: dict[str, Future[BatchResult]] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        horizon_ms = (time.time() - self.limits.dedup_hours * 3600) * 1000
        self._landed = _batches(self.writer.bronze, horizon_ms)  # client batch id → commit time (ms)
        self._quarantined = _batches(self.writer.quarantine, horizon_ms)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"collector-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what waits, answer it, and stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    @property
    def stats(self) -> Any:
        return self.writer.stats

    @property
    def pending(self) -> int:
        return self._pending

    # -- requests ------------------------------------------------------------------------------
    def submit(self, raws: list[bytes], batch_id: str | None = None) -> Future[BatchResult]:
        """Queue a request's records; the future resolves once they are committed."""
        client = batch_id is not None
        key = _batch_key(batch_id) if batch_id is not None else secrets.token_hex(8)
        with self._cond:
            if self._stopping:
                raise Overloaded("the collector is shutting down; retry against the restarted server")
            if client and key in self._inflight:  # the same batch retried while the first attempt commits
                return self._inflight[key]
            if client and key in self._landed:
                done: Future[BatchResult] = Future()
                done.set_result(self._replay(key, raws))
                return done
            if self._pending and self._pending + len(raws) > self.config.stream.max_pending:
                raise Overloaded(
                    f"{self._pending:,} records are waiting for a commit (limit stream.max_pending = "
                    f"{self.config.stream.max_pending:,}); retry shortly"
                )
            future: Future[BatchResult] = Future()
            self._queue.append(_Request(key, client, raws, future))
            self._pending += len(raws)
            if client:
                self._inflight[key] = future
            self._cond.notify()
        return future

    def _replay(self, key: str, raws: list[bytes]) -> BatchResult:
        """A batch committed before: answer as then (validation is deterministic), commit nothing."""
        outcome = self.writer.validator.validate_json(raws)
        errors = dict(outcome.invalid)
        return BatchResult(self.name, key, len(raws), len(raws) - len(errors), len(errors), errors, None, True)

    # -- the committer -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(0.5)
                if not self._queue and self._stopping:
                    return
                taken: list[_Request] = []
                count = 0
                while self._queue and (
                    not taken or count + len(self._queue[0].raws) <= self.writer.settings.max_records
                ):
                    request = self._queue.popleft()
                    taken.append(request)
                    count += len(request.raws)
            self._commit(taken)
            with self._cond:
                self._pending -= count
                for request in taken:
                    if request.client:
                        self._inflight.pop(request.batch_id, None)

    def _commit(self, taken: list[_Request]) -> None:
        outcomes = []
        try:
            for request in taken:
                records = [StreamRecord(f"http:{request.batch_id}", i, raw) for i, raw in enumerate(request.raws)]
                extra = {"http": {"batches": [request.batch_id]}} if request.client else None
                quarantine = request.batch_id not in self._quarantined  # else a crashed commit already holds them
                outcomes.append(self.writer.add_batch(records, extra, quarantine))
            result = self.writer.flush()
        except Exception as exc:  # the commit failed: every waiting request learns it, nothing is half-done
            log.exception("commit of %d requests to source %s failed", len(taken), self.name)
            self.writer.discard()
            for request in taken:
                request.future.set_exception(exc)
            return
        snapshot = result.snapshot_id if result is not None else None
        now_ms = time.time() * 1000
        for request, outcome in zip(taken, outcomes, strict=True):
            if request.client:
                self._landed[request.batch_id] = now_ms
                self._quarantined[request.batch_id] = now_ms
            errors = dict(outcome.invalid)
            n = len(request.raws)
            request.future.set_result(
                BatchResult(self.name, request.batch_id, n, n - len(errors), len(errors), errors, snapshot)
            )
        self._forget(now_ms)

    def _forget(self, now_ms: float) -> None:
        horizon = now_ms - self.limits.dedup_hours * 3600 * 1000
        if len(self._landed) > 1000 and next(iter(self._landed.values())) < horizon:
            self._landed = {k: v for k, v in self._landed.items() if v >= horizon}
            self._quarantined = {k: v for k, v in self._quarantined.items() if v >= horizon}


def split_records(body: bytes, content_type: str | None, limits: Any) -> list[bytes]:
    """A request body (JSON array or NDJSON) as one raw document per record, within the limits."""
    import msgspec

    if len(body) > limits.max_request_bytes:
        raise LimitExceeded(
            "max_request_bytes",
            len(body),
            limits.max_request_bytes,
            f"the request is {len(body):,} bytes; the limit is {limits.max_request_bytes:,} (http.max_request_bytes)",
        )
    stripped = body.lstrip()
    ndjson = (content_type or "").split(";")[0].strip() in ("application/x-ndjson", "application/ndjson")
    if not ndjson and stripped[:1] == b"[":
        try:
            raws = [bytes(r) for r in msgspec.json.decode(body, type=list[msgspec.Raw])]
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise LimitExceeded(
                "json",
                0,
                0,
                f"the body is not a valid JSON array of events ({exc}); send NDJSON to get a result for each line",
                status=400,
            ) from None
    else:
        raws = [line for line in body.split(b"\n") if line.strip()]
    if len(raws) > limits.max_records:
        raise LimitExceeded(
            "max_records",
            len(raws),
            limits.max_records,
            f"the request holds {len(raws):,} records; the limit is {limits.max_records:,} (http.max_records)",
        )
    for i, raw in enumerate(raws):
        if len(raw) > limits.max_record_bytes:
            raise LimitExceeded(
                "max_record_bytes",
                len(raw),
                limits.max_record_bytes,
                f"record {i} is {len(raw):,} bytes; the limit is {limits.max_record_bytes:,} (http.max_record_bytes)",
            )
        if raw.count(b"{") + raw.count(b"[") > limits.max_depth:
            depth = json_depth(raw)
            if depth > limits.max_depth:
                raise LimitExceeded(
                    "max_depth",
                    depth,
                    limits.max_depth,
                    f"record {i} nests {depth:,} levels deep; the limit is {limits.max_depth} (http.max_depth)",
                    status=400,
                )
    return raws


def json_depth(raw: bytes) -> int:
    """How deep a JSON document nests (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return deepest


def _batch_key(batch_id: str) -> str:
    """Client batch ids as short, fixed-size keys (they are stored in every commit's checkpoint)."""
    if len(batch_id) <= 40 and batch_id.replace("-", "").replace("_", "").isalnum():
        return batch_id
    return "h" + hashlib.sha256(batch_id.encode()).hexdigest()[:32]


def _batches(table: Any, horizon_ms: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for commit in history(table):
        if commit.timestamp_ms < horizon_ms:
            continue
        for key in ((commit.checkpoint or {}).get("http") or {}).get("batches", []):
            out[key] = commit.timestamp_ms
    return out

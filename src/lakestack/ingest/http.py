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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestack.contracts.validate import Issue, Outcome
from lakestack.errors import LakestackError
from lakestack.ingest.base import IngestObserver, Source, SourceReport
from lakestack.ingest.stream import Prepared, RowBuilder, StreamRecord, StreamWriter
from lakestack.ingest.wal import Wal
from lakestack.ingest.workers import RowPool, Rows, builder, default_workers, from_ipc, from_rows, to_rows
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

    def __reduce__(self) -> Any:  # it crosses from the worker processes
        return (LimitExceeded, (self.limit, self.value, self.maximum, str(self), self.status))


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
        accepted = {"status": "accepted"}
        results: list[dict[str, Any]] = [accepted] * self.records
        for i, issues in self.errors.items():
            results[i] = {
                "status": "rejected",
                "errors": [{"path": x.path, "rule": x.rule, "message": x.message} for x in issues],
            }
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
    body: bytes
    content_type: str | None
    future: Future[BatchResult]
    prepared: Future[Rows | LimitExceeded] | None = None


@dataclass(slots=True)
class _Logged:
    """A request written to the log, waiting for its Iceberg commit."""

    position: int
    prepared: Prepared
    batch_id: str
    client: bool
    request: _Request | None = None  # None when recovered from the log after a restart
    result: BatchResult | None = None


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
    """Takes requests for one source: validates them, makes them durable in a write-ahead log with one
    fsync per group of concurrent requests, and commits the log to Iceberg in micro-batches.

    With `http.ack: durable` (the default) a request is answered once its records are in the fsynced
    log; with `committed`, once they are in an Iceberg snapshot. Either way the Iceberg commit
    carries the log position, so a restart commits what the log holds beyond it, exactly once.
    """

    def __init__(
        self, warehouse: Warehouse, name: str, contract: Contract, config: SourceConfig, run_id: str, wal_dir: Path
    ) -> None:
        self.name = name
        self.config = config
        self.limits = config.http
        self.writer = StreamWriter(warehouse, name, contract, "http", config.stream, run_id)
        self.wal = Wal(wal_dir)
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._logged: list[_Logged] = []
        self._logged_cond = threading.Condition()
        self._pending = 0
        self._inflight: dict[str, Future[BatchResult]] = {}
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._pool: RowPool | None = None
        workers = default_workers(self.limits.workers)
        if workers > 0:  # validation and row building run beside the event loop, on other cores
            self._pool = RowPool(name, contract, config.stream.max_record_bytes, workers)
        horizon_ms = (time.time() - self.limits.dedup_hours * 3600) * 1000
        self._landed = _batches(self.writer.bronze, horizon_ms)  # client batch id → when it was made durable (ms)
        self._recover()

    def _recover(self) -> None:
        """Entries of the log after Bronze's checkpoint were acknowledged but not committed: commit them."""
        import msgspec

        done = self.writer.committed.get(WAL_PARTITION, -1)
        self.wal.trim(done)
        for position, payload in self.wal.read_after(done):
            entry = msgspec.msgpack.decode(payload)
            prepared = Prepared(Outcome([], [], []), from_ipc(entry["good"]), from_ipc(entry["bad"]), entry["n"])
            self._logged.append(_Logged(position, prepared, entry["batch"], entry["client"]))
            self._pending += entry["n"]
            self.writer.stats.received += entry["n"]
            if entry["client"]:
                self._landed[entry["batch"]] = time.time() * 1000
        if self._logged:
            log.info("source %s: committing %d logged requests after a restart", self.name, len(self._logged))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        for target, role in ((self._log_loop, "log"), (self._commit_loop, "commit")):
            thread = threading.Thread(target=target, name=f"collector-{self.name}-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Log and commit what waits, answer it, and stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._logged_cond:
            self._logged_cond.notify_all()
        for thread in self._threads:
            thread.join()
        self.wal.close()
        if self._pool is not None:
            self._pool.close()

    @property
    def stats(self) -> Any:
        return self.writer.stats

    @property
    def pending(self) -> int:
        return self._pending

    # -- requests ------------------------------------------------------------------------------
    def submit(self, body: bytes, content_type: str | None, batch_id: str | None = None) -> Future[BatchResult]:
        """Queue a request; the future resolves once its records are durable (or committed), or fails
        with LimitExceeded. The body is split, checked and validated in a worker process: the server's
        own thread does no per-record work."""
        client = batch_id is not None
        key = _batch_key(batch_id) if batch_id is not None else secrets.token_hex(8)
        with self._cond:
            if self._stopping:
                raise Overloaded("the collector is shutting down; retry against the restarted server")
            if client and key in self._inflight:  # the same batch retried while the first attempt is logged
                return self._inflight[key]
            if client and key in self._landed:
                done: Future[BatchResult] = Future()
                done.set_result(self._replay(key, split_records(body, content_type, self.limits)))
                return done
            if self._pending >= self.config.stream.max_pending:
                raise Overloaded(
                    f"{self._pending:,} records are waiting for a commit (limit stream.max_pending = "
                    f"{self.config.stream.max_pending:,}); retry shortly"
                )
            future: Future[BatchResult] = Future()
            request = _Request(key, client, body, content_type, future)
            if self._pool is not None:
                request.prepared = self._pool.submit(_prepare_in_worker, key, body, content_type, self.limits)
            self._queue.append(request)
            if client:
                self._inflight[key] = future
            self._cond.notify()
        return future

    def _replay(self, key: str, raws: list[bytes]) -> BatchResult:
        """A batch that landed before: answer as then (validation is deterministic), add nothing."""
        outcome = self.writer.validator.validate_json(raws)
        errors = dict(outcome.invalid)
        return BatchResult(self.name, key, len(raws), len(raws) - len(errors), len(errors), errors, None, True)

    # -- the log thread: validate, append, fsync once per group, answer -----------------------
    def _log_loop(self) -> None:
        import msgspec

        encode = msgspec.msgpack.encode
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(0.5)
                if not self._queue and self._stopping:
                    break
                taken = list(self._queue)
                self._queue.clear()
            try:
                entries, payloads = [], []
                for request in taken:
                    rows: Rows | LimitExceeded
                    if request.prepared is not None:
                        rows = request.prepared.result()
                    else:
                        rows = _prepare(
                            self.writer.rows, request.batch_id, request.body, request.content_type, self.limits
                        )
                    if isinstance(rows, LimitExceeded):  # answered at once; nothing of it is logged
                        self._fail([request], rows)
                        continue
                    prepared = from_rows(rows)
                    good, bad, _, count = rows
                    entries.append(_Logged(0, prepared, request.batch_id, request.client, request))
                    payloads.append(
                        encode(
                            {"batch": request.batch_id, "client": request.client, "n": count, "good": good, "bad": bad}
                        )
                    )
                first = self.wal.append(payloads)  # one write and one fsync for the whole group
            except Exception as exc:  # nothing of this group is durable: each request learns it
                log.exception("logging %d requests of source %s failed", len(taken), self.name)
                self._fail(taken, exc)
                continue
            durable = self.limits.ack == "durable"
            now_ms = time.time() * 1000
            with self._cond:
                for offset, entry in enumerate(entries):
                    self._pending += entry.prepared.count
                    self.writer.stats.received += entry.prepared.count  # counted once durable, before the commit
                    entry.position = first + offset
                    if entry.client:
                        self._landed[entry.batch_id] = now_ms
                        self._inflight.pop(entry.batch_id, None)
            for entry in entries:
                entry.result = self._result(entry, None)
                if durable and entry.request is not None:
                    entry.request.future.set_result(entry.result)
            with self._logged_cond:
                self._logged.extend(entries)
                self._logged_cond.notify()
        with self._logged_cond:
            self._logged_cond.notify()

    def _result(self, entry: _Logged, snapshot: int | None) -> BatchResult:
        errors = dict(entry.prepared.outcome.invalid)
        n = entry.prepared.count
        return BatchResult(self.name, entry.batch_id, n, n - len(errors), len(errors), errors, snapshot)

    def _fail(self, taken: list[_Request], exc: BaseException) -> None:
        with self._cond:
            for request in taken:
                if request.client:
                    self._inflight.pop(request.batch_id, None)
        for request in taken:
            request.future.set_exception(exc)

    # -- the commit thread: the log into Iceberg every max_seconds / max_records ------------------
    def _commit_loop(self) -> None:
        settings = self.writer.settings
        committed_ack = self.limits.ack == "committed"
        while True:
            with self._logged_cond:
                first_seen = time.monotonic()
                while True:
                    waiting = sum(e.prepared.count for e in self._logged)
                    log_done = self._stopping and not any(t.is_alive() for t in self._threads[:1])
                    if self._logged and (
                        waiting >= settings.max_records
                        or time.monotonic() - first_seen >= settings.max_seconds
                        or log_done
                        or committed_ack  # clients wait for this commit: group what arrived during the last
                    ):
                        break
                    if not self._logged and log_done:
                        return
                    if not self._logged:
                        first_seen = time.monotonic()
                    self._logged_cond.wait(0.05)
                taken, self._logged = self._logged, []
            self._commit(taken)

    def _commit(self, taken: list[_Logged]) -> None:
        quarantined = self.writer.quarantined_upto.get(WAL_PARTITION, -1)
        batches = [e.batch_id for e in taken if e.client]
        for entry in taken:
            prepared = entry.prepared
            if entry.position <= quarantined:  # a crash between the two commits: quarantine holds these
                prepared = Prepared(prepared.outcome, prepared.good, None, prepared.count)
            self.writer.stage(prepared)
        self.writer.stage(
            Prepared(Outcome([], [], []), None, None, 0),
            {WAL_PARTITION: taken[-1].position},
            {"http": {"batches": batches}} if batches else None,
        )
        try:
            result = self._flush_with_retry()
        except Exception as exc:
            log.exception("commit of source %s failed for good", self.name)
            for entry in taken:
                if entry.request is not None and not entry.request.future.done():
                    entry.request.future.set_exception(exc)
            return
        snapshot = result.snapshot_id if result is not None else None
        for entry in taken:
            if entry.request is not None and not entry.request.future.done():
                entry.request.future.set_result(self._result(entry, snapshot))
        with self._cond:
            self._pending -= sum(e.prepared.count for e in taken)
        self.wal.trim(taken[-1].position)

    def _flush_with_retry(self) -> Any:
        """Records already acknowledged must reach Iceberg: retry a failed commit (the log keeps them)."""
        for attempt in range(5):
            try:
                return self.writer.flush()
            except Exception:
                if attempt == 4:
                    raise
                log.warning("commit of source %s failed; retrying", self.name, exc_info=True)
                time.sleep(0.2 * 2**attempt)
        return None


WAL_PARTITION = "wal"


def _prepare_in_worker(batch_id: str, body: bytes, content_type: str | None, limits: Any) -> Rows | LimitExceeded:
    return _prepare(builder(), batch_id, body, content_type, limits)


def _prepare(
    rows: RowBuilder, batch_id: str, body: bytes, content_type: str | None, limits: Any
) -> Rows | LimitExceeded:
    """A request's records as Bronze and quarantine rows (Arrow IPC), its rejections, and its size;
    or the limit it breaks."""
    try:
        raws = split_records(body, content_type, limits)
    except LimitExceeded as exc:
        return exc
    partition = f"http:{batch_id}"
    return to_rows(rows.prepare([StreamRecord(partition, i, raw) for i, raw in enumerate(raws)]))


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
    try:
        raws = _split(body, content_type)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise LimitExceeded(
            "json",
            0,
            0,
            f"the body is not a valid JSON array of events ({exc}); send NDJSON to get a result for each line",
            status=400,
        ) from None
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


def _split(body: bytes, content_type: str | None) -> list[bytes]:
    """One raw document per record: the elements of a JSON array, or the non-empty NDJSON lines."""
    import msgspec

    ndjson = (content_type or "").split(";")[0].strip() in ("application/x-ndjson", "application/ndjson")
    if not ndjson and body.lstrip()[:1] == b"[":
        return [bytes(r) for r in msgspec.json.decode(body, type=list[msgspec.Raw])]
    return [line for line in body.split(b"\n") if line.strip()]


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

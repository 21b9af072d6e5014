"""The HTTP collector: producers POST batches of events; each answer comes after the commit.

Requests that arrive while a commit runs are gathered into the next one (group commit), so one
Iceberg snapshot serves many requests, and every answer lists each record's result: accepted, or
rejected with every contract error (rejected records go to quarantine). A request may carry a
client batch id (`Lakestack-Batch-Id` or `Idempotency-Key` header): the ids a commit holds are in
its checkpoint, so a retried request, even after a crash or a restart, lands once. An id is
remembered for `http.dedup_hours`.

When more records wait for a commit than `stream.max_pending`, new requests are refused
(HTTP 503 with Retry-After) instead of queueing without bound. So are requests whose log write
fails (a full disk): nothing of them is acknowledged, and a retry lands once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestack.contracts.validate import Issue, Outcome
from lakestack.errors import LakestackError, StorageError, Transient
from lakestack.failpoints import failpoint
from lakestack.ingest.base import IngestObserver, Source, SourceReport
from lakestack.ingest.stream import Prepared, RowBuilder, StreamRecord, StreamWriter
from lakestack.ingest.wal import LogHealth, SourceLock, Wal
from lakestack.ingest.workers import RowPool, Rows, builder, default_workers, from_ipc, from_rows, to_rows
from lakestack.storage.checkpoints import HttpBatches, read_checkpoint

if TYPE_CHECKING:
    from lakestack.config import SourceConfig
    from lakestack.contracts.model import Contract
    from lakestack.storage.warehouse import Warehouse

log = logging.getLogger(__name__)


class Overloaded(LakestackError):
    """More records wait for a commit than the collector holds; retry after a moment."""

    exit_code = 3


class CommitPending(LakestackError, Transient):
    """The batch is in the log but its Iceberg commit keeps failing (`ack: committed` answers this):
    it will be committed; retry with the same batch id to learn its result."""


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
    answer: BatchResult  # what the request is told (its per-record results), kept in the log entry
    request: _Request | None = None  # None when recovered from the log after a restart


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
    Only one process collects a source: the log's lock is taken here (or passed in, taken earlier)
    and held until :meth:`stop`.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        name: str,
        contract: Contract,
        config: SourceConfig,
        run_id: str,
        wal_dir: Path,
        lock: SourceLock | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.limits = config.http
        lock = lock or SourceLock(wal_dir, name)  # first: nobody else may write the log or commit it
        try:
            self.writer = StreamWriter(warehouse, name, contract, "http", config.stream, run_id)
            self.writer.http_keep_ms = int(self.limits.dedup_hours * 3600 * 1000)
            committed = self.writer.committed.get(WAL_PARTITION, -1)
            ahead = self.writer.quarantined_upto.get(WAL_PARTITION, -1)  # a crash between the two commits
            self.wal = Wal(wal_dir, committed=committed, at_least=ahead, source=name, lock=lock)
        except BaseException:
            lock.release()
            raise
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._logged: list[_Logged] = []
        self._logged_cond = threading.Condition()
        self._pending = 0
        self._inflight: dict[str, Future[BatchResult]] = {}
        self._answers: OrderedDict[str, BatchResult] = OrderedDict()  # client batch id → its first answer
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._pool: RowPool | None = None
        self._replayer: ThreadPoolExecutor | None = None
        horizon_ms = (time.time() - self.limits.dedup_hours * 3600) * 1000
        self._landed = _batches(self.writer.bronze, horizon_ms)  # client batch id → when it was made durable (ms)
        try:
            self._recover()
        except BaseException:
            self.wal.close()
            raise
        workers = default_workers(self.limits.workers)
        if workers > 0:  # validation and row building run beside the event loop, on other cores
            self._pool = RowPool(name, contract, config.stream.max_record_bytes, workers)

    def _recover(self) -> None:
        """Entries of the log after Bronze's checkpoint were acknowledged but not committed: commit
        them before serving."""
        done = self.wal.health.committed
        self.wal.trim(done)
        recovered = [self._recovered(position, payload) for position, payload in self.wal.read_after(done)]
        if not recovered:
            return
        log.info("source %s: committing %d logged requests after a restart", self.name, len(recovered))
        failpoint("http.recover.before_commit")
        if not self._commit(recovered, give_up=lambda attempt: attempt >= 8):
            raise StorageError(
                f"source {self.name}: cannot commit the {len(recovered)} acknowledged requests its log holds "
                "(see the errors above); they stay in the log for the next start"
            )
        failpoint("http.recover.after_commit")

    def _recovered(self, position: int, payload: bytes) -> _Logged:
        import msgspec

        entry = msgspec.msgpack.decode(payload)
        batch, client, count = entry["batch"], entry["client"], entry["n"]
        prepared = Prepared(Outcome([], [], []), from_ipc(entry["good"]), from_ipc(entry["bad"]), count)
        if client and batch in self._landed:  # logged twice (a write whose failure left it behind): once
            log.warning("source %s: batch %s is in the log twice; it lands once", self.name, batch)
            prepared = Prepared(Outcome([], [], []), None, None, 0)
        errors = {int(i): [Issue(*x) for x in issues] for i, issues in entry.get("errs", [])}
        answer = BatchResult(self.name, batch, count, count - len(errors), len(errors), errors, None)
        if client:
            self._landed[batch] = time.time() * 1000
            if "errs" in entry:  # logs written before results were kept answer by validating again
                self._remember(batch, answer)
        self._pending += prepared.count
        self.writer.stats.received += prepared.count
        return _Logged(position, prepared, batch, client, answer)

    def _remember(self, key: str, answer: BatchResult) -> None:
        self._answers[key] = answer
        while len(self._answers) > ANSWERS_KEPT:
            self._answers.popitem(last=False)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        for target, role in ((self._log_loop, "log"), (self._commit_loop, "commit")):
            thread = threading.Thread(target=target, name=f"collector-{self.name}-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Log and commit what waits, answer it, and stop (the log's lock is released)."""
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
        if self._replayer is not None:
            self._replayer.shutdown(wait=False, cancel_futures=True)

    @property
    def stats(self) -> Any:
        return self.writer.stats

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def health(self) -> LogHealth:
        """The log as found at start against Bronze's checkpoint (a problem means records may be lost)."""
        return self.wal.health

    @property
    def log_position(self) -> int:
        """The next position the log will write."""
        return self.wal.next_position

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
            landed = client and key in self._landed
            answer = self._answers.get(key) if landed else None
            if not landed and self._pending >= self.config.stream.max_pending:
                raise Overloaded(
                    f"{self._pending:,} records are waiting for a commit (limit stream.max_pending = "
                    f"{self.config.stream.max_pending:,}); retry shortly"
                )
            if not landed:
                future: Future[BatchResult] = Future()
                request = _Request(key, client, body, content_type, future)
                if self._pool is not None:
                    request.prepared = self._pool.submit(_prepare_in_worker, key, body, content_type, self.limits)
                self._queue.append(request)
                if client:
                    self._inflight[key] = future
                self._cond.notify()
                return future
        if answer is not None:  # a batch that landed before: answered as then, nothing is added
            done: Future[BatchResult] = Future()
            done.set_result(replace(answer, snapshot_id=None, duplicate=True))
            return done
        return self._replay(key, body, content_type)

    def _replay(self, key: str, body: bytes, content_type: str | None) -> Future[BatchResult]:
        """A batch that landed before this process kept its answer: validate it again (it is
        deterministic) away from the lock and the event loop, and add nothing."""
        done: Future[BatchResult] = Future()

        def finish(outcome: Future[tuple[int, list[tuple[int, list[Issue]]]] | LimitExceeded]) -> None:
            try:
                value = outcome.result()
            except BaseException as exc:
                done.set_exception(exc)
                return
            if isinstance(value, LimitExceeded):
                done.set_exception(value)
                return
            count, invalid = value
            errors = dict(invalid)
            done.set_result(
                BatchResult(self.name, key, count, count - len(errors), len(errors), errors, None, duplicate=True)
            )

        if self._pool is not None:
            job = self._pool.submit(_replay_in_worker, body, content_type, self.limits)
        else:
            if self._replayer is None:
                self._replayer = ThreadPoolExecutor(1, thread_name_prefix=f"collector-{self.name}-replay")
            job = self._replayer.submit(_validate, self.writer.rows, body, content_type, self.limits)
        job.add_done_callback(finish)
        return done

    # -- the log thread: validate, append, fsync once per group, answer -----------------------
    def _log_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(0.5)
                if not self._queue and self._stopping:
                    break
                taken = list(self._queue)
                self._queue.clear()
            try:
                entries, payloads = self._entries(taken)
                first = self.wal.append(payloads) if payloads else 0  # one write and one fsync for the group
            except Exception as exc:  # nothing of this group is durable: each request learns it
                log.error("logging %d requests of source %s failed: %s", len(taken), self.name, exc)
                self._fail([r for r in taken if not r.future.done()], exc)
                continue
            now_ms = time.time() * 1000
            durable = self.limits.ack == "durable"
            with self._cond:
                for offset, entry in enumerate(entries):
                    self._pending += entry.prepared.count
                    self.writer.stats.received += entry.prepared.count  # counted once durable, before the commit
                    entry.position = first + offset
                    if entry.client:
                        self._landed[entry.batch_id] = now_ms
                        self._remember(entry.batch_id, entry.answer)
                        if durable:  # with `committed`, a retry waits for the commit like the first
                            self._inflight.pop(entry.batch_id, None)
            if durable:
                failpoint("http.before_answer")
                for entry in entries:
                    if entry.request is not None:
                        entry.request.future.set_result(entry.answer)
            with self._logged_cond:
                self._logged.extend(entries)
                self._logged_cond.notify()
        with self._logged_cond:
            self._logged_cond.notify()

    def _entries(self, taken: list[_Request]) -> tuple[list[_Logged], list[bytes]]:
        """The log entries of a group of requests; a request over a limit is answered at once."""
        import msgspec

        encode = msgspec.msgpack.encode
        entries, payloads = [], []
        for request in taken:
            rows: Rows | LimitExceeded
            if request.prepared is not None:
                rows = request.prepared.result()
            else:
                rows = _prepare(self.writer.rows, request.batch_id, request.body, request.content_type, self.limits)
            if isinstance(rows, LimitExceeded):  # answered at once; nothing of it is logged
                self._fail([request], rows)
                continue
            good, bad, invalid, count = rows
            errors = dict(invalid)
            answer = BatchResult(self.name, request.batch_id, count, count - len(errors), len(errors), errors, None)
            entries.append(_Logged(0, from_rows(rows), request.batch_id, request.client, answer, request))
            errs = [[i, [[x.path, x.rule, x.message] for x in issues]] for i, issues in invalid]
            record = {"batch": request.batch_id, "client": request.client, "n": count, "good": good, "bad": bad}
            payloads.append(encode({**record, "errs": errs}))
        return entries, payloads

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
            if not self._commit(taken, give_up=lambda attempt: self._stopping and attempt >= 3):
                return  # stopping with a warehouse that refuses: the log keeps them for the next start

    def _commit(self, taken: list[_Logged], give_up: Callable[[int], bool]) -> bool:
        """Commit logged requests to Iceberg with their log position, retrying until it lands (the
        records were acknowledged: they must). False if `give_up` said so first."""
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
        failpoint("http.commit.before")
        result = self._flush_until_done(taken, give_up)
        if result is False:
            return False
        failpoint("http.commit.after")
        snapshot = result.snapshot_id if result is not None else None
        waiting = [e for e in taken if e.request is not None and not e.request.future.done()]
        if waiting:
            failpoint("http.before_answer")
        for entry in waiting:
            assert entry.request is not None
            entry.request.future.set_result(replace(entry.answer, snapshot_id=snapshot))
        with self._cond:
            self._pending -= sum(e.prepared.count for e in taken)
            for entry in taken:
                if entry.client:
                    self._inflight.pop(entry.batch_id, None)
        self.wal.trim(taken[-1].position)
        return True

    def _flush_until_done(self, taken: list[_Logged], give_up: Callable[[int], bool]) -> Any:
        """The staged commit, retried with backoff (the writer keeps what it staged, and a retry of a
        commit that did land is recognised by its batch id). Clients waiting for the commit (`ack:
        committed`) are told after a few failures that it is pending, never that it landed."""
        attempt = 0
        while True:
            try:
                return self.writer.flush()
            except Exception as exc:
                attempt += 1
                log.warning("commit %d of source %s failed (%s); the log keeps its records", attempt, self.name, exc)
                if attempt == COMMIT_TRIES_BEFORE_PENDING:
                    pending = CommitPending(
                        f"the batch is in the log but its commit fails ({exc}); it will be committed: "
                        "retry with the same batch id to learn its result"
                    )
                    for entry in taken:
                        if entry.request is not None and not entry.request.future.done():
                            entry.request.future.set_exception(pending)
                if give_up(attempt):
                    log.error("source %s: giving up committing %d logged requests for now", self.name, len(taken))
                    return False
                time.sleep(min(5.0, 0.1 * 2**attempt))


WAL_PARTITION = "wal"
ANSWERS_KEPT = 20_000  # client batches whose answers a retry gets without validating again
COMMIT_TRIES_BEFORE_PENDING = 5


def _prepare_in_worker(batch_id: str, body: bytes, content_type: str | None, limits: Any) -> Rows | LimitExceeded:
    return _prepare(builder(), batch_id, body, content_type, limits)


def _replay_in_worker(
    body: bytes, content_type: str | None, limits: Any
) -> tuple[int, list[tuple[int, list[Issue]]]] | LimitExceeded:
    return _validate(builder(), body, content_type, limits)


def _validate(
    rows: RowBuilder, body: bytes, content_type: str | None, limits: Any
) -> tuple[int, list[tuple[int, list[Issue]]]] | LimitExceeded:
    """How many records a body holds and which are rejected, with why (nothing is built or kept)."""
    try:
        raws = split_records(body, content_type, limits)
    except LimitExceeded as exc:
        return exc
    return len(raws), rows.validator.validate_json(raws).invalid


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
    """Client batch key → when its commit was made (ms), for commits since `horizon_ms`."""
    return dict(read_checkpoint(table, HttpBatches, since_ms=horizon_ms).batches)

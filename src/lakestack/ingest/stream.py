"""Stream sources and the micro-batch writer they share.

A stream source (Kafka, Kinesis, NATS JetStream) only reads: it yields :class:`StreamRecord`s, each
with its partition (topic/partition, shard, stream) and position (offset, sequence number) there.
The :class:`StreamWriter` validates them against the source's contract, buffers them, and commits
when a size or time bound is reached:

1. the rejected records to ``quarantine.<source>``, then
2. the accepted records to ``bronze.<source>``,

each snapshot carrying the positions it covers as its checkpoint. On start, the writer resumes
from Bronze's newest checkpoint, so a crash before step 2 re-reads those records from the broker
(never losing one) and a crash after it never re-commits one. Records the broker delivers again
(at or below a committed position) are dropped as duplicates; re-read records that quarantine
already holds (at or below its checkpoint) are not quarantined twice. Only then is the broker
told (Kafka offsets, NATS acks), so the broker's view is a hint and Iceberg is the truth.

Both commits are compare-and-swap (no pyiceberg retry): each attempt re-reads what rivals
committed (the fence) and lands only if nothing was committed since. A source that needs one
owner (NATS: one durable consumer) claims a lease first; its fencing epoch is written in every
checkpoint, and a commit is refused once a newer epoch has committed (ADR 8).

The loop in :func:`run_stream` reads, validates and commits in one thread, so when commits fall
behind it simply stops pulling: memory is bounded by the batch size.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakestack.contracts.arrow import records_to_arrow
from lakestack.contracts.validate import Issue, Outcome, RecordValidator
from lakestack.errors import RunError
from lakestack.failpoints import failpoint
from lakestack.ingest.base import FileOutcome, IngestObserver, Source, SourceReport
from lakestack.ingest.rows import reason, repeat, stamp
from lakestack.storage.checkpoints import StreamBatch, StreamPositions, positions_after, read_checkpoint
from lakestack.storage.schema import error_struct_type
from lakestack.storage.warehouse import append

if TYPE_CHECKING:
    from lakestack.config import SourceConfig, StreamConfig
    from lakestack.contracts.model import Contract
    from lakestack.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")
JOIN_GRACE_S = 30.0  # longest wait for a source to become ready before idle time counts


@dataclass(slots=True)
class StreamRecord:
    """One message: where it sits in its stream, and its payload exactly as received."""

    partition: str  # "orders/0" (Kafka topic/partition), a Kinesis shard id, a NATS stream name
    position: int  # offset or sequence number within the partition; increases with every message
    payload: bytes
    ack: Any = None  # a broker handle to acknowledge once the record is committed (NATS)

    @property
    def label(self) -> str:
        return f"{self.partition}@{self.position}"


@dataclass(slots=True)
class Prepared:
    """Validated records as the rows they will add: Bronze rows, quarantine rows (None when none)."""

    outcome: Outcome
    good: pa.Table | None
    bad: pa.Table | None
    count: int


@dataclass(slots=True)
class FlushResult:
    """One commit of the writer."""

    landed: int
    quarantined: int
    positions: dict[str, int]
    acks: list[Any]
    snapshot_id: int | None
    seconds: float


@dataclass(slots=True)
class StreamStats:
    """Running totals of one stream process. Counts reconcile: received = landed + quarantined +
    duplicates + buffered."""

    received: int = 0
    landed: int = 0
    quarantined: int = 0
    duplicates: int = 0
    buffered: int = 0
    commits: int = 0
    last_commit: datetime | None = None
    last_commit_seconds: float = 0.0
    lag: int | None = None
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return (self.landed + self.quarantined) / max(time.monotonic() - self.started, 1e-9)


class OwnershipLost(RunError):
    """Another process owns the source now (this one's lease expired, or a newer epoch committed):
    stop without committing what is buffered; the owner reads it again."""


class Positions:
    """What a source may ask of its writer: the committed positions, and a commit before it gives up
    partitions (a Kafka rebalance)."""

    def __init__(self, writer: StreamWriter) -> None:
        self._writer = writer

    def committed(self, refresh: bool = False) -> dict[str, int]:
        if refresh:
            self._writer.reload()
        return dict(self._writer.committed)

    def flush(self) -> None:
        self._writer.flush()

    def epoch(self) -> int | None:
        """The newest owner epoch Bronze or quarantine committed (None: never one)."""
        writer = self._writer
        epochs = [e for e in (newest_epoch(writer.bronze.refresh()), newest_epoch(writer.quarantine.refresh())) if e]
        return max(epochs) if epochs else None


class StreamSource(Source):
    """A source that reads from a broker. Subclasses implement open/poll/acknowledge/close."""

    kind: str

    def __init__(self, name: str, contract: Contract, config: SourceConfig, project: str = "lakestack") -> None:
        self.name = name
        self.contract = contract
        self.config = config
        self.project = project

    epoch: int | None = None  # the fencing epoch of this process's lease; None: the source takes none

    def claim(self, positions: Positions, stop: threading.Event, *, patient: bool = True) -> bool:
        """Become the one process that reads this source, waiting while another one owns it; False
        if `stop` was set first. Not `patient` (a catch-up run): wait only as long as a dead
        owner's lease can last, then raise RunError naming the owner. Sources whose broker gives
        each partition one owner (Kafka's group) or that every process may read in full (Kinesis:
        the commit-time fence drops what a rival committed) take no lease."""
        return True

    def check_owner(self, *, force: bool = False) -> None:
        """Raise OwnershipLost if this process no longer owns the source (renews the lease when it is
        due, or always with `force`: before every commit)."""

    @abstractmethod
    def open(self, positions: Positions) -> None:
        """Connect, and start each partition after its committed position (from the beginning when
        it has none)."""

    @abstractmethod
    def poll(self, max_records: int, timeout: float) -> list[StreamRecord]:
        """Up to `max_records` records, waiting at most `timeout` seconds for the first."""

    def acknowledge(self, result: FlushResult) -> None:
        """Tell the broker that these positions are committed (a hint; Iceberg holds the truth)."""

    def lag(self) -> int | None:
        """Records waiting in the broker beyond what was read, when the broker can tell."""
        return None

    def ready(self) -> bool:
        """Whether the source reads yet (a Kafka consumer has no partitions until the group settles);
        the idle timer of a catch-up run starts only then."""
        return True

    @abstractmethod
    def close(self) -> None: ...

    def ingest(
        self, warehouse: Any, run_id: str, observer: IngestObserver, only: list[str] | None = None
    ) -> SourceReport:
        """Catch up: read until the stream has nothing new for a moment, commit, and stop."""
        started = time.perf_counter()
        stop = threading.Event()
        stats = run_stream(self, warehouse, run_id, stop, idle_stop=2.0)
        outcome = FileOutcome(
            f"{self.kind}:{self.name}",
            "landed",
            rows_in=stats.landed + stats.quarantined,
            landed=stats.landed,
            quarantined=stats.quarantined,
        )
        observer.file_finished(self.name, outcome)
        return SourceReport(self.name, (outcome,), time.perf_counter() - started)


class RowBuilder:
    """Validates payloads against a contract into Bronze rows and quarantine rows. Stateless, so it
    can run in a worker process."""

    def __init__(self, name: str, contract: Contract, max_record_bytes: int) -> None:
        from lakestack.ingest.versions import Versions

        self.name = name
        self.contract = contract
        self.validator = RecordValidator(contract, max_record_bytes=max_record_bytes)
        # in the contract's transition window, records of the version before it are accepted too
        self.versions = Versions(contract, None, max_record_bytes, {contract.version: self.validator})

    def prepare(self, records: Sequence[StreamRecord], keep: Callable[[StreamRecord], bool] | None = None) -> Prepared:
        """`keep` decides which rejected records go to quarantine (default: all)."""
        if not records:
            return Prepared(Outcome([], [], []), None, None, 0)
        parts = self.versions.validate("json", [r.payload for r in records], self.contract)
        outcome = parts[0][1]
        goods = [self._bronze_rows(records, part, version) for version, part in parts if part.valid]
        good = pa.concat_tables(goods) if goods else None
        if len(parts) > 1:  # the Outcome callers count: every record accepted by some version is valid
            taken = parts[1][1]
            outcome = Outcome(
                outcome.valid + taken.valid, outcome.valid_positions + taken.valid_positions, outcome.invalid
            )
        rejected = [(records[i], issues) for i, issues in outcome.invalid if keep is None or keep(records[i])]
        bad = self._quarantine_rows(rejected) if rejected else None
        return Prepared(outcome, good, bad, len(records))

    def _bronze_rows(self, records: Sequence[StreamRecord], outcome: Outcome, version: Contract) -> pa.Table:
        typed = records_to_arrow(outcome.valid, version)
        if version is not self.contract:
            from lakestack.contracts.arrow import as_version

            typed = as_version(typed, version, self.contract)
        n = typed.num_rows
        idx = outcome.valid_positions
        kept = [records[i] for i in idx]
        raws = pa.array([r.payload for r in kept], pa.binary()).cast(pa.string())  # valid UTF-8: it parsed
        meta = {
            "_raw": raws,
            "_ingested_at": pa.nulls(n, _TS),
            "_source": repeat(self.name, n, pa.string()),
            "_source_file": pa.nulls(n, pa.string()),
            "_source_line": pa.nulls(n, pa.int64()),
            "_file_date": pa.nulls(n, pa.date32()),
            "_source_position": pa.array([r.label for r in kept], pa.string()),
            "_run_id": pa.nulls(n, pa.string()),
            "_contract_version": repeat(version.version, n, pa.int32()),
        }
        for name, column in meta.items():
            typed = typed.append_column(name, column)
        return typed

    def _quarantine_rows(self, rejected: list[tuple[StreamRecord, list[Issue]]]) -> pa.Table:
        n = len(rejected)
        errors = [[{"path": i.path, "rule": i.rule, "message": i.message} for i in issues] for _, issues in rejected]
        return pa.table(
            {
                "_source": repeat(self.name, n, pa.string()),
                "_source_file": pa.nulls(n, pa.string()),
                "_source_line": pa.nulls(n, pa.int64()),
                "_file_hash": pa.nulls(n, pa.string()),
                "_source_position": pa.array([r.label for r, _ in rejected], pa.string()),
                "_scope": repeat("record", n, pa.string()),
                "_raw": pa.array([r.payload.decode("utf-8", "replace") for r, _ in rejected], pa.string()),
                "_errors": pa.array(errors, pa.list_(error_struct_type())),
                "_reason": pa.array([reason(issues) for _, issues in rejected], pa.string()),
                "_contract_version": repeat(self.contract.version, n, pa.int32()),
                "_run_id": pa.nulls(n, pa.string()),
                "_ingested_at": pa.nulls(n, _TS),
            }
        )


class StreamWriter:
    """Validates stream records and commits them in micro-batches with their positions."""

    def __init__(
        self,
        warehouse: Warehouse,
        name: str,
        contract: Contract,
        kind: str,
        settings: StreamConfig,
        run_id: str,
    ) -> None:
        self.name = name
        self.contract = contract
        self.kind = kind
        self.settings = settings
        self.run_id = run_id
        self.bronze = warehouse.bronze_table(contract)
        self.quarantine = warehouse.quarantine_table(name)
        self.rows = RowBuilder(name, contract, settings.max_record_bytes)
        self.validator = self.rows.validator
        self.stats = StreamStats()
        self.committed: dict[str, int] = {}
        self.quarantined_upto: dict[str, int] = {}
        self.epoch: int | None = None  # the owner lease's fencing epoch, written in every checkpoint
        self.owner_check: Callable[[], None] | None = None  # raises OwnershipLost; called before commits
        self.http_keep_ms: int | None = None  # how long the client batch ids of a commit are remembered
        self._lock = threading.RLock()
        self.reload()
        self._reset()

    # -- checkpoints ---------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the committed positions (another writer of the same source may have moved them)."""
        self.bronze = self.bronze.refresh()
        self.quarantine = self.quarantine.refresh()
        self.committed = stream_positions(self.bronze)
        self.quarantined_upto = stream_positions(self.quarantine)
        self._quarantine_seen = _snapshot_id(self.quarantine)  # quarantined_upto holds all up to here

    def _reset(self) -> None:
        self._good: list[pa.Table] = []
        self._bad: list[pa.Table] = []
        self._pending: dict[str, int] = {}
        self._acks: list[Any] = []
        self._extra: list[dict[str, Any]] = []
        self._count = 0
        self._first_at: float | None = None
        self._key: str | None = None
        self._quarantined_rows = 0
        self._read: set[str] = set()  # partitions of records read from a broker (add), fenced at commit

    # -- buffering -----------------------------------------------------------------------------
    def add(self, records: Sequence[StreamRecord]) -> Outcome:
        """Validate and buffer records; duplicates of committed or buffered ones are dropped."""
        with self._lock:
            fresh = []
            for r in records:
                done = max(self.committed.get(r.partition, -1), self._pending.get(r.partition, -1))
                if r.position <= done:
                    self.stats.duplicates += 1
                    self._acks.append(r.ack) if r.ack is not None else None
                    continue
                self._pending[r.partition] = r.position
                self._read.add(r.partition)
                fresh.append(r)
                if r.ack is not None:
                    self._acks.append(r.ack)
            self.stats.received += len(records)
            return self._buffer(fresh)

    def _buffer(self, records: Sequence[StreamRecord]) -> Outcome:
        prepared = self.prepare(records)
        self.stage(prepared)
        return prepared.outcome

    def prepare(self, records: Sequence[StreamRecord], *, quarantine: bool = True) -> Prepared:
        """Validate records into their Bronze rows and quarantine rows (no state is changed).

        Rejected records at or below quarantine's checkpoint are left out: an earlier run that
        stopped between its two commits already quarantined them."""
        done = self.quarantined_upto
        return self.rows.prepare(
            records, lambda r: quarantine and r.position > done.get(r.partition, -1) if done else quarantine
        )

    def stage(
        self, prepared: Prepared, positions: dict[str, int] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        """Add prepared rows to the next commit, with the positions they advance and checkpoint notes."""
        with self._lock:
            if self._first_at is None:
                self._first_at = time.monotonic()
            if prepared.good is not None:
                self._good.append(prepared.good)
            if prepared.bad is not None:
                self._bad.append(prepared.bad)
            if positions:
                self._pending.update(positions)
            if extra:
                self._extra.append(extra)
            self._count += prepared.count
            self.stats.buffered = self._count

    def discard(self) -> None:
        """Drop what is buffered (its commit failed); positions stay at the last commit."""
        with self._lock:
            self._reset()
            self.stats.buffered = 0

    def due(self) -> bool:
        if self._count >= self.settings.max_records:
            return True
        return self._first_at is not None and time.monotonic() - self._first_at >= self.settings.max_seconds

    @property
    def buffered(self) -> int:
        return self._count

    # -- committing ----------------------------------------------------------------------------
    def flush(self) -> FlushResult | None:
        """Commit what is buffered: quarantine first, then Bronze with the positions. None if empty."""
        with self._lock:
            if not self._count and not self._acks:
                return None
            started = time.perf_counter()
            if self._read and self._key is None:
                self._fence(self.bronze.refresh())
            if self.owner_check is not None and self._count:
                self.owner_check()  # a paused owner whose lease expired must not commit
            if self._key is None:  # kept until the commit succeeds, so a retried flush is recognised
                self._key = _batch_key(self.name, self._pending, self._extra)
            batch_key = self._key
            now = datetime.now(UTC)
            landed = 0
            snapshot_id = None
            if self._count and self._bad:
                failpoint("stream.before_quarantine_commit")
                self._commit_quarantine(now, batch_key)
                failpoint("stream.after_quarantine_commit")
            quarantined = self._quarantined_rows
            if self._count:
                self._commit_bronze(now, batch_key)
                failpoint("stream.after_bronze_commit")
                landed = sum(t.num_rows for t in self._good)
                current = self.bronze.current_snapshot()
                snapshot_id = current.snapshot_id if current is not None else None
            positions = {**self.committed, **self._pending}
            self.committed = positions
            for partition, position in self._pending.items():  # never lower it: after a crash between
                # the two commits, quarantine may already hold records beyond this batch
                self.quarantined_upto[partition] = max(position, self.quarantined_upto.get(partition, -1))
            result = FlushResult(
                landed, quarantined, dict(positions), self._acks, snapshot_id, time.perf_counter() - started
            )
            rejected = self._count - landed
            self.stats.landed += landed
            self.stats.quarantined += rejected  # rejected records quarantine already held count too
            self.stats.commits += 1 if self._count else 0
            self.stats.last_commit = now if self._count else self.stats.last_commit
            self.stats.last_commit_seconds = result.seconds
            self._reset()
            self.stats.buffered = 0
            return result

    def _commit_quarantine(self, now: datetime, batch_key: str) -> None:
        """Commit the rejected records, fenced and compare-and-swapped like Bronze: every attempt
        leaves out the rejects a rival quarantined (or whose Bronze positions it committed) since,
        and lands only if quarantine did not change after that read (its pyiceberg retries are off)."""
        tries = itertools.count()

        def attempt(table: Any) -> tuple[pa.Table, StreamBatch] | None:
            if next(tries) and self._read:  # a rival committed: its Bronze positions may have moved too
                self._fence(self.bronze.refresh())
            if self._read:
                self._fence_quarantine(table)
            self._check_epoch(self.bronze, table)
            if not self._bad:
                return None  # a rival quarantined every one of them
            return stamp(pa.concat_tables(self._bad), self.run_id, now), self._checkpoint()

        self.quarantine = append(self.quarantine, None, run_id=self.run_id, batch_id=f"{batch_key}:q", attempt=attempt)
        self._quarantine_seen = _snapshot_id(self.quarantine)
        # committed: a retried flush (after a failed Bronze commit) must not repeat it
        self._quarantined_rows = sum(t.num_rows for t in self._bad)
        self._bad = []

    def _commit_bronze(self, now: datetime, batch_key: str) -> None:
        tries = itertools.count()

        def attempt(table: Any) -> tuple[pa.Table, StreamBatch] | None:
            if next(tries) and self._read:  # a retry after a rival's commit: fence again
                self._fence(table)
            self._check_epoch(table)
            if self._read and not self._pending and not self._extra and not any(t.num_rows for t in self._good):
                return None  # every record was fenced away: nothing to land, no position to advance
            return self._landing_rows(now), self._checkpoint()

        self.bronze = append(self.bronze, None, run_id=self.run_id, batch_id=f"{batch_key}:b", attempt=attempt)

    def _check_epoch(self, *tables: Any) -> None:
        """Refuse to commit once a newer owner epoch committed to Bronze or quarantine."""
        if self.epoch is None:
            return
        for table in tables:
            newest = newest_epoch(table)
            if newest is not None and newest > self.epoch:
                raise OwnershipLost(
                    f"source '{self.name}': a newer owner (epoch {newest}) committed since this process "
                    f"(epoch {self.epoch}) took the source; stopping without committing {self._count} records"
                )

    def _checkpoint(self) -> StreamBatch:
        """The positions this batch advanced (only those: this writer's view of the others may be
        stale, as another member of a Kafka group owns them now) and the client batches it holds.
        The commit carries every other partition's position forward from the table it lands on."""
        batches = tuple(b for extra in self._extra for b in (extra.get("http") or {}).get("batches", []))
        until = None
        if batches and self.http_keep_ms is not None:
            until = int(time.time() * 1000) + self.http_keep_ms
        return StreamBatch(self.kind, dict(self._pending), self.epoch, batches, until)

    def _landing_rows(self, now: datetime) -> pa.Table:
        if self._good:
            return stamp(pa.concat_tables(self._good), self.run_id, now)
        empty: pa.Table = self.bronze.schema().as_arrow().empty_table()
        return empty

    def _fence(self, bronze: Any) -> None:
        """Drop buffered records that another writer committed since this one last read the
        checkpoint (`bronze` is the table as it is now): a Kafka member that lost its partitions
        without a revocation (it missed its session) must not commit what the new owner already
        has. Records beyond are kept. Bronze's own commit retries are off, so its commit lands
        only if nothing was committed after this read; otherwise `append` calls this again."""
        failpoint("stream.fence")
        self.bronze = bronze
        fresh = stream_positions(bronze, self._read)
        ahead = {p: fresh[p] for p in sorted(self._read) if fresh.get(p, -1) > self.committed.get(p, -1)}
        dropped = 0
        for partition, upto in ahead.items():
            self._good, good = _drop_upto(self._good, partition, upto)
            self._bad, bad = _drop_upto(self._bad, partition, upto)
            dropped += good + bad
            self.committed[partition] = upto
            if self._pending.get(partition, -1) <= upto:
                self._pending.pop(partition, None)
        if ahead:
            log.warning(
                "source %s: another writer committed %s meanwhile; %d buffered records it holds were dropped",
                self.name,
                ", ".join(f"{p}@{v}" for p, v in ahead.items()),
                dropped,
            )
            self._count -= dropped
            self.stats.duplicates += dropped

    def _fence_quarantine(self, quarantine: Any) -> None:
        """Drop buffered rejects at or below a position a rival quarantined since this writer last
        looked (`quarantine` as it is now): the rival's batch held every reject up to there, even
        when its Bronze commit has not landed yet (a zombie woken between the owner's two commits)."""
        fresh = stream_positions(quarantine, self._read, after=self._quarantine_seen)
        self._quarantine_seen = _snapshot_id(quarantine)
        dropped = 0
        for partition in sorted(self._read):
            upto = fresh.get(partition, -1)
            if upto > self.quarantined_upto.get(partition, -1):
                self._bad, bad = _drop_upto(self._bad, partition, upto)
                dropped += bad
                self.quarantined_upto[partition] = upto
        if dropped:
            log.warning("source %s: another writer quarantined %d buffered rejects meanwhile", self.name, dropped)
            self._count -= dropped
            self.stats.duplicates += dropped


def newest_epoch(table: Any) -> int | None:
    """The owner epoch of the newest stream commit of a table (None: it carries none). Only an owner
    holding the newest epoch can commit, so the newest commit's epoch is the highest."""
    return read_checkpoint(table, StreamPositions).epoch


def stream_positions(
    table: Any, partitions: Collection[str] | None = None, *, after: int | None = None
) -> dict[str, int]:
    """partition → last committed position (only `partitions`, when given; only what commits after
    snapshot `after` advanced, when given: the quarantine fence)."""
    if after is not None:
        return positions_after(table, after, partitions)
    positions = read_checkpoint(table, StreamPositions).positions
    return {p: v for p, v in positions.items() if partitions is None or p in partitions}


def _snapshot_id(table: Any) -> int | None:
    current = table.current_snapshot()
    return int(current.snapshot_id) if current is not None else None


def _drop_upto(tables: list[pa.Table], partition: str, upto: int) -> tuple[list[pa.Table], int]:
    """The tables without their rows of `partition` at or below `upto`, and how many were dropped."""
    import pyarrow.compute as pc

    prefix = f"{partition}@"
    out, dropped = [], 0
    for table in tables:
        labels = table["_source_position"]
        mine = pc.starts_with(labels, prefix)
        position = pc.cast(pc.utf8_slice_codeunits(pc.if_else(mine, labels, f"{prefix}-1"), len(prefix)), pa.int64())
        kept = table.filter(pc.invert(pc.and_(mine, pc.less_equal(position, upto))))
        dropped += table.num_rows - kept.num_rows
        out.append(kept)
    return out, dropped


def run_stream(
    source: StreamSource,
    warehouse: Warehouse,
    run_id: str,
    stop: threading.Event,
    *,
    idle_stop: float | None = None,
    on_status: Callable[[StreamStats], None] | None = None,
    status_every: float = 0.5,
) -> StreamStats:
    """Read, validate and commit until `stop` is set (or, with `idle_stop`, until nothing new has
    arrived for that many seconds); always ends with a final commit."""
    settings = source.config.stream
    if stop.is_set():  # stopped (SIGTERM) before anything started: nothing to read or commit
        return StreamStats()
    writer = StreamWriter(warehouse, source.name, source.contract, source.kind, settings, run_id)
    positions = Positions(writer)
    if not source.claim(positions, stop, patient=idle_stop is None):
        return writer.stats
    writer.epoch = source.epoch
    writer.owner_check = lambda: source.check_owner(force=True)
    source.open(positions)
    idle_since = opened = time.monotonic()
    last_status = 0.0
    try:
        while not stop.is_set():
            source.check_owner()
            room = max(1, settings.max_records - writer.buffered)
            records = source.poll(min(room, 10_000), timeout=min(0.2, settings.max_seconds))
            if records:
                writer.add(records)
                idle_since = time.monotonic()
            if writer.due() or (not records and writer.buffered):
                _commit(source, writer)
            now = time.monotonic()
            if on_status is not None and now - last_status >= status_every:
                writer.stats.lag = source.lag()
                on_status(writer.stats)
                last_status = now
            if not records and not source.ready() and now - opened < JOIN_GRACE_S:
                idle_since = now
            if idle_stop is not None and not records and now - idle_since >= idle_stop:
                break
        _commit(source, writer)
    finally:
        source.close()
    writer.stats.lag = None
    if on_status is not None:
        on_status(writer.stats)
    return writer.stats


def _commit(source: StreamSource, writer: StreamWriter) -> None:
    result = writer.flush()
    if result is not None:
        failpoint("stream.before_ack")
        source.acknowledge(result)


def _batch_key(name: str, pending: dict[str, int], extra: list[dict[str, Any]]) -> str:
    text = name + repr(sorted(pending.items())) + repr(extra) + repr(time.time_ns())
    return hashlib.sha256(text.encode()).hexdigest()[:20]

"""File-drop sources: a landing folder plus a file-name pattern, ingested exactly once per content.

Each valid record lands in `bronze.<source>` with its typed columns and lineage columns; each
invalid record (or unreadable file) lands in `quarantine.<source>` with every error. Files are
committed in batches: first the quarantine part, then Bronze, each snapshot carrying the list
of files (name and sha256) it holds. A file is done once its hash is in Bronze's file ledger
(`storage.checkpoints.FileLedger`, carried forward by every commit), so a
re-dropped file is skipped, and a crash between the two commits is repaired by the next run
without duplicating the quarantine part.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakestack.contracts.arrow import as_version, records_to_arrow
from lakestack.contracts.model import Contract, FileSpec
from lakestack.contracts.validate import Issue, Outcome, RecordValidator
from lakestack.errors import RunError
from lakestack.failpoints import failpoint
from lakestack.ingest.base import FileOutcome, IngestObserver, Source, SourceReport
from lakestack.ingest.landing import Candidate, LandingFolder, _ledger
from lakestack.ingest.readers import READERS, Chunk, FileRejected, Limits
from lakestack.ingest.rows import reason, repeat, stamp
from lakestack.ingest.versions import Versions
from lakestack.storage.checkpoints import BatchFile, FileBatch, LedgerEntry
from lakestack.storage.schema import error_struct_type
from lakestack.storage.warehouse import Attempt, Warehouse, append

log = logging.getLogger(__name__)

BATCH_MAX_ROWS = 1_000_000
BATCH_MAX_FILES = 200


@dataclass(frozen=True, slots=True)
class Written:
    """A landing file's Bronze rows already written as data files (storage/streamed.py), to be
    added to the batch's commit: what a worker hands back instead of the rows themselves."""

    name: str  # the landing file
    files: tuple[Any, ...]  # pyiceberg DataFiles (delta_streamed.DeltaFiles on Delta)
    num_rows: int


@dataclass(slots=True)
class _Batch:
    bronze: list[pa.Table | Written] = field(default_factory=list)
    quarantine: list[pa.Table] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[FileOutcome] = field(default_factory=list)
    rows: int = 0


class FileSource(LandingFolder, Source):
    """Files matching a contract's pattern in a landing folder (ingest/landing.py finds them), read,
    validated and committed to Bronze and quarantine."""

    kind = "files"

    def __init__(
        self,
        name: str,
        contract: Contract,
        landing: Path,
        pattern: str | None = None,
        format: str | None = None,
        *,
        limits: Any = None,
        project: Path | None = None,
        previous: Contract | None = None,
    ) -> None:
        super().__init__(name, contract, landing, pattern, format, project=project)
        self.limits = Limits.resolve(limits)
        self.validator = RecordValidator(contract)
        self.columns = _column_validator(contract, self.spec, self.validator)  # None: record by record
        # in a transition window, the version before `contract` is accepted too (ingest/versions.py)
        self.versions = Versions(contract, previous, _validators={contract.version: self.validator})
        # set for one ingest: the Bronze table rows are streamed into (None: rows held until the commit)
        self._stream_to: Any = None
        self._bronze_io: Any = None
        self._run_id = ""
        self._started = datetime.now(UTC)  # each ingest's Bronze rows carry its start as `_ingested_at`

    # -- ingesting -----------------------------------------------------------------------------
    def ingest(
        self, warehouse: Warehouse, run_id: str, observer: IngestObserver, only: list[str] | None = None
    ) -> SourceReport:
        started = time.perf_counter()
        candidates, refused = self.discover(only)
        observer.source_started(self.name, len(candidates), sum(c.size for c in candidates))
        bronze = warehouse.bronze_table(self.contract)
        quarantine = warehouse.quarantine_table(self.name)
        done, quarantined = _ledger(bronze), _ledger(quarantine)  # re-checked at every commit attempt
        outcomes: list[FileOutcome] = list(refused)
        for outcome in refused:
            observer.file_finished(self.name, outcome)
        batch = _Batch()
        from lakestack.storage.streamed import stream_target

        self._stream_to = stream_target(bronze, "_ingested_at") if self.columns is not None else None
        self._bronze_io = bronze.io  # to delete the data files of a split file read again whole
        self._run_id, self._started = run_id, datetime.now(UTC)
        snapshots: dict[str, int] = {}
        fenced: dict[str, str] = {}  # sha256 → the run that committed the file while this one read it
        to_read: list[tuple[Candidate, str]] = []
        for cand in candidates:  # content hashes first: a file seen before (or twice in this drop) is skipped
            sha = self._hash(cand)
            if sha in done:
                first = done[sha]
                skipped = FileOutcome(
                    cand.name,
                    "skipped",
                    sha,
                    cand.size,
                    reason=f"same content as {first.name}, already ingested (run {first.run})",
                )
                outcomes.append(skipped)
                observer.file_finished(self.name, skipped)
                continue
            done[sha] = LedgerEntry(cand.name, run_id)
            to_read.append((cand, sha))
        for cand, sha, read in self._read_all(to_read):
            outcome = self._collect(cand, sha, read, batch, quarantined)
            outcomes.append(outcome)
            observer.file_finished(self.name, outcome)
            if batch.rows >= BATCH_MAX_ROWS or len(batch.files) >= BATCH_MAX_FILES:
                snapshots.update(self._flush(batch, bronze, quarantine, run_id, fenced))
                batch = _Batch()
        snapshots.update(self._flush(batch, bronze, quarantine, run_id, fenced))
        outcomes = [_committed_elsewhere(o, fenced) for o in outcomes]
        return SourceReport(self.name, tuple(outcomes), time.perf_counter() - started, snapshots)

    def _read_all(self, files: list[tuple[Candidate, str]]) -> Iterator[tuple[Candidate, str, Any]]:
        """Read and validate files, in order; on several cores, in worker processes (forked, so the
        compiled validator is inherited, not pickled), at most two files ahead of the commits. A
        big plain file is read in segments by all the workers at once (ADR 42, ingest/segments.py)."""
        cores = _workers()
        workers = min(cores, len(files))
        if workers == 1 and cores > 1 and self._may_split(files[0][0], cores):
            workers = cores
        if workers < 2:
            for cand, sha in files:
                yield cand, sha, self._read_safely(cand, sha)
            return
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        if self.columns is not None:
            _preload()
        global _WORKER_SOURCE
        _WORKER_SOURCE = self
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:

                def submit(cand: Candidate, sha: str) -> list[Any]:
                    segments = self._segments(cand, workers)
                    if segments is None:
                        return [pool.submit(_read_in_worker, cand, sha)]
                    log.debug("%s: read in %d segments", cand.name, len(segments))
                    return [pool.submit(_read_segment_in_worker, cand, sha, s) for s in segments]

                queue: deque[tuple[Candidate, str, list[Any]]] = deque()
                pending = iter(files)
                for cand, sha in itertools.islice(pending, workers * 2):
                    queue.append((cand, sha, submit(cand, sha)))
                while queue:
                    cand, sha, futures = queue.popleft()
                    yield cand, sha, self._joined(cand, sha, futures, pool)
                    for nxt, nsha in itertools.islice(pending, 1):
                        queue.append((nxt, nsha, submit(nxt, nsha)))
        finally:
            _WORKER_SOURCE = None

    def _segments(self, cand: Candidate, parts: int) -> list[Any] | None:
        """The segments a file is read in by `parts` workers, or None: read whole. Only on the
        column path with rows streamed into data files (memory: a block per worker)."""
        from lakestack.ingest.segments import plan

        return plan(cand.path, self.spec, self.contract, parts) if self._may_split(cand, parts) else None

    def _may_split(self, cand: Candidate, parts: int) -> bool:
        from lakestack.ingest.segments import splittable

        if self.columns is None or self._stream_to is None or self.versions.accepting() is not None:
            return False
        return splittable(self.spec, cand.match.compression, cand.size, parts)

    def _read_segment(self, cand: Candidate, sha: str, segment: Any) -> tuple[Any, ...]:
        """("ok", Written, bad, rows_in) of one segment, or ("whole", why): the column reader
        declined it, so the file is read again whole, as an unsplit file is."""
        from lakestack.ingest.vectorised import NotVectorisable

        failpoint("files.before_read")
        try:
            return ("ok", *self._read_columns(cand, sha, segment))
        except NotVectorisable as exc:
            return ("whole", str(exc))

    def _joined(self, cand: Candidate, sha: str, futures: list[Any], pool: Any) -> tuple[Any, ...]:
        """A file's read from its futures: one (read whole) or a segment's each, joined into one
        file's read with one Written (committed together or not at all)."""
        from lakestack.storage.streamed import discard

        if len(futures) == 1:
            return _worker_result(cand, futures[0])
        parts: list[tuple[Any, ...]] = []
        try:
            for future in futures:
                parts.append(_worker_result(cand, future))
        except BaseException:
            discard([d.file_path for p in parts if p[0] == "ok" for d in p[1].files], self._bronze_io)
            raise
        if any(p[0] != "ok" for p in parts):
            log.debug("%s: read whole (%s)", cand.name, next(p[1] for p in parts if p[0] != "ok"))
            discard([d.file_path for p in parts if p[0] == "ok" for d in p[1].files], self._bronze_io)
            return _worker_result(cand, pool.submit(_read_in_worker, cand, sha))
        written = Written(cand.name, tuple(d for p in parts for d in p[1].files), sum(p[1].num_rows for p in parts))
        bad = pa.concat_tables([p[2] for p in parts])
        return ("ok", written, bad, sum(p[3] for p in parts))

    def _read_safely(self, cand: Candidate, sha: str) -> tuple[Any, ...]:
        """("ok", good, bad, rows_in) or ("rejected", reason, line): plain values that cross processes."""
        try:
            return ("ok", *self._read(cand, sha))
        except FileRejected as exc:
            return ("rejected", exc.reason, exc.line)

    def _collect(
        self, cand: Candidate, sha: str, read: tuple[Any, ...], batch: _Batch, quarantined: dict[str, LedgerEntry]
    ) -> FileOutcome:
        if read[0] == "ok":
            _, good, bad, rows_in = read
            outcome = FileOutcome(cand.name, "landed", sha, cand.size, rows_in, good.num_rows, bad.num_rows)
            if good.num_rows:
                batch.bronze.append(good)
        else:
            _, why, line = read
            bad = self._rejection(cand, sha, FileRejected(why, line))
            outcome = FileOutcome(cand.name, "rejected", sha, cand.size, reason=why, line=line)
        if bad.num_rows and sha not in quarantined:  # else an earlier, interrupted run committed it
            batch.quarantine.append(bad)
        batch.files.append(
            {
                "name": cand.name,
                "sha256": sha,
                "status": outcome.status,
                "landed": outcome.landed,
                "quarantined": outcome.quarantined,
            }
        )
        batch.outcomes.append(outcome)
        batch.rows += outcome.rows_in
        return outcome

    def _read(self, cand: Candidate, sha: str) -> tuple[pa.Table | Written, pa.Table, int]:
        """The file's Bronze and quarantine rows. Memory: on the vectorised path, one block (its
        Bronze rows are written to a data file as they pass, committed with the batch: ADR 0035);
        on the record path, the file's rows (held until their batch commits, so a file is never
        split across commits), bounded by Limits.max_decompressed_bytes, plus one chunk being
        validated (CHUNK_ROWS rows or CHUNK_BYTES). Quarantined rows are held either way."""
        failpoint("files.before_read")
        try:
            return self._read_as(cand, sha, self.contract)
        except FileRejected as exc:
            previous = self.versions.accepting()
            if previous is None:
                raise
            rejected = exc
        try:  # in a transition window: a file whose columns are the previous version's
            return self._read_as(cand, sha, previous)
        except FileRejected:
            raise rejected from None

    def _read_as(self, cand: Candidate, sha: str, contract: Contract) -> tuple[pa.Table | Written, pa.Table, int]:
        if self.columns is not None and contract is self.contract and self.versions.accepting() is None:
            from lakestack.ingest.vectorised import NotVectorisable

            try:
                return self._read_columns(cand, sha)
            except NotVectorisable as exc:  # read record by record, which reports the file exactly
                log.debug("%s: read record by record (%s)", cand.name, exc)
        reader = READERS[self.spec.format]
        goods, bads, rows_in = [], [], 0
        for chunk in reader(cand.path, cand.match.compression, contract, self.spec, self.limits):
            rows_in += len(chunk.positions) + len(chunk.broken)
            for i, (version, outcome) in enumerate(self.versions.validate(chunk.kind, chunk.values, contract)):
                goods.append(self._bronze_rows(chunk, outcome, cand, version))
                if i == 0:
                    bads.append(self._quarantine_rows(chunk, outcome, cand, sha))
        return pa.concat_tables(goods), pa.concat_tables(bads), rows_in

    def _read_columns(self, cand: Candidate, sha: str, segment: Any = None) -> tuple[pa.Table | Written, pa.Table, int]:
        """The vectorised path (contracts/vector.py): blocks of columns; rows it cannot accept go
        through the record path, which lists their errors. Accepted rows are written to a Bronze
        data file block by block when the table allows it (`_stream_to`), else returned.
        `segment`: only that byte range of the file (ingest/segments.py)."""
        from lakestack.ingest.vectorised import columns_reader
        from lakestack.storage.streamed import open_file

        assert self.columns is not None
        reader = columns_reader(self.spec.format)
        out = open_file(self._stream_to, self._started, ("_raw",)) if self._stream_to is not None else None
        goods, bads, rows_in = [], [], 0
        try:
            chunks = (
                reader(cand.path, cand.match.compression, self.contract, self.spec, self.limits)
                if segment is None
                else reader(cand.path, cand.match.compression, self.contract, self.spec, self.limits, segment)
            )
            for chunk in chunks:
                rows_in += chunk.rows
                verdict = self.columns.validate(chunk.kind, chunk.table, chunk.raws)
                raws, lines = chunk.raws, chunk.lines
                if len(verdict.valid) < chunk.rows:
                    raws, lines = raws.take(verdict.valid), lines.take(verdict.valid)
                good = self._with_meta(verdict.typed, raws, lines, cand, self.contract)
                if out is None:
                    goods.append(good)
                else:
                    out.write(stamp(good, self._run_id, self._started))
                if verdict.invalid:
                    rows = [(chunk.lines[i].as_py(), chunk.raws[i].as_py(), issues) for i, issues in verdict.invalid]
                    bads.append(self._quarantine_table(cand, sha, "record", rows))
            written = Written(cand.name, tuple(out.close()), out.rows) if out is not None else None
        except BaseException:
            if out is not None:
                out.discard()
            raise
        bad = pa.concat_tables(bads) if bads else self._quarantine_table(cand, sha, "record", [])
        if written is not None:
            return written, bad, rows_in
        good = pa.concat_tables(goods) if goods else self._with_meta(*_no_rows(self.contract), cand, self.contract)
        return good, bad, rows_in

    def _bronze_rows(self, chunk: Chunk, outcome: Outcome, cand: Candidate, version: Contract) -> pa.Table:
        typed = records_to_arrow(outcome.valid, version)
        if version is not self.contract:
            try:
                typed = as_version(typed, version, self.contract)
            except ValueError as exc:
                raise FileRejected(str(exc)) from None
        idx = outcome.valid_positions
        raws = pa.array([chunk.raws[i] for i in idx], pa.string())
        return self._with_meta(typed, raws, pa.array([chunk.positions[i] for i in idx], pa.int64()), cand, version)

    def _with_meta(
        self, typed: pa.Table, raws: pa.Array, lines: pa.Array, cand: Candidate, version: Contract
    ) -> pa.Table:
        """Typed rows with Bronze's lineage columns."""
        n = typed.num_rows
        meta = {
            "_raw": raws,
            "_ingested_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),  # set to the ingest's start (stamp)
            "_source": repeat(self.name, n, pa.string()),
            "_source_file": repeat(cand.name, n, pa.string()),
            "_source_line": lines,
            "_file_date": repeat(cand.match.file_date, n, pa.date32()),
            "_source_position": pa.nulls(n, pa.string()),
            "_run_id": pa.nulls(n, pa.string()),
            "_contract_version": repeat(version.version, n, pa.int32()),
        }
        for name, column in meta.items():
            typed = typed.append_column(name, column)
        return typed

    def _quarantine_rows(self, chunk: Chunk, outcome: Outcome, cand: Candidate, sha: str) -> pa.Table:
        rows: list[tuple[int | None, str | None, list[Issue]]] = [
            (chunk.positions[i], chunk.raws[i], issues) for i, issues in outcome.invalid
        ]
        rows += [(pos, raw, [Issue("$", rule, message)]) for pos, raw, rule, message in chunk.broken]
        rows.sort(key=lambda r: r[0] or 0)
        return self._quarantine_table(cand, sha, "record", rows)

    def _rejection(self, cand: Candidate, sha: str, exc: FileRejected) -> pa.Table:
        return self._quarantine_table(cand, sha, "file", [(exc.line, None, [Issue("$", "file", exc.reason)])])

    def _quarantine_table(
        self, cand: Candidate, sha: str, scope: str, rows: list[tuple[int | None, str | None, list[Issue]]]
    ) -> pa.Table:
        n = len(rows)
        errors = [[{"path": i.path, "rule": i.rule, "message": i.message} for i in issues] for _, _, issues in rows]
        return pa.table(
            {
                "_source": repeat(self.name, n, pa.string()),
                "_source_file": repeat(cand.name, n, pa.string()),
                "_source_line": pa.array([r[0] for r in rows], pa.int64()),
                "_file_hash": repeat(sha, n, pa.string()),
                "_source_position": pa.nulls(n, pa.string()),
                "_scope": repeat(scope, n, pa.string()),
                "_raw": pa.array([r[1] for r in rows], pa.string()),
                "_errors": pa.array(errors, pa.list_(error_struct_type())),
                "_reason": pa.array([reason(issues) for _, _, issues in rows], pa.string()),
                "_contract_version": repeat(self.contract.version, n, pa.int32()),
                "_run_id": pa.nulls(n, pa.string()),
                "_ingested_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
            }
        )

    def _flush(
        self, batch: _Batch, bronze: Any, quarantine: Any, run_id: str, fenced: dict[str, str]
    ) -> dict[str, int]:
        """Commit a batch: its quarantine part, then its Bronze part.

        Each commit attempt re-reads the ledgers from the fresh tables and leaves out the files
        another run committed meanwhile (a concurrent `lakestack ingest` on the same project, or
        one without the project lock: a remote catalog). The tables' own commit retry is off, so a
        commit lands only if nothing was committed since its attempt read the ledger. Files left
        out of Bronze are recorded in `fenced` (sha256 → that run's id).
        """
        if not batch.files:
            return {}
        now = datetime.now(UTC)
        # The batch id names this run's try at these files: another run (another host) committing
        # the same files must not pass for this one's earlier attempt (`append`'s batch-id check),
        # or this run would report rows as landed that the other one committed.
        key = run_id + ":" + hashlib.sha256("".join(sorted(f["sha256"] for f in batch.files)).encode()).hexdigest()[:20]
        out: dict[str, int] = {}
        if batch.quarantine:
            rows = stamp(pa.concat_tables(batch.quarantine), run_id, now)
            attempt = _quarantine_attempt(rows, batch.files, bronze)
            try:
                quarantine = append(quarantine, None, run_id=run_id, batch_id=f"{key}:q", attempt=attempt)
                out[f"quarantine.{self.name}"] = quarantine.current_snapshot().snapshot_id
            except _NothingLeft:
                log.info("quarantine.%s: every file of the batch was quarantined by another run", self.name)
            failpoint("files.after_quarantine_commit")
        tables = [t for t in batch.bronze if isinstance(t, pa.Table)]
        written = [w for w in batch.bronze if isinstance(w, Written)]
        # one `_ingested_at` for all of a run's Bronze rows, whether written ahead or now: Silver's
        # "latest wins" breaks a tie by it, then by file and line (never by which worker was faster)
        data = stamp(pa.concat_tables(tables), run_id, self._started) if tables else None
        if data is None:
            data = bronze.schema().as_arrow().empty_table()
        failpoint("files.before_bronze_commit")
        try:
            if written:
                bronze = self._commit_written(bronze, data, written, batch.files, f"{key}:b", run_id, fenced)
            else:
                attempt = _bronze_attempt(data, batch.files, fenced)
                bronze = append(bronze, None, run_id=run_id, batch_id=f"{key}:b", attempt=attempt)
            out[f"bronze.{self.name}"] = bronze.current_snapshot().snapshot_id
        except _NothingLeft:
            log.info("bronze.%s: every file of the batch was committed by another run", self.name)
        failpoint("files.after_bronze_commit")
        return out

    @staticmethod
    def _commit_written(
        bronze: Any,
        rows: pa.Table,
        written: list[Written],
        files: list[dict[str, Any]],
        batch_id: str,
        run_id: str,
        fenced: dict[str, str],
    ) -> Any:
        """The Bronze commit of a batch whose rows (some or all) were written ahead: the data files
        of the files another run committed meanwhile are left out (and deleted)."""
        from lakestack.storage.streamed import append_written, discard

        rows_attempt = _bronze_attempt(rows, files, fenced)
        kept: set[str] = set()

        def attempt(table: Any) -> tuple[pa.Table | None, list[Any], Any]:
            made = rows_attempt(table)  # raises _NothingLeft when every file is fenced
            assert made is not None
            data, checkpoint = made
            assert isinstance(checkpoint, FileBatch)
            names = {f.name for f in checkpoint.files}
            kept.clear()
            kept.update(names)
            return data, [d for w in written if w.name in names for d in w.files], checkpoint

        try:
            bronze = append_written(bronze, run_id=run_id, batch_id=batch_id, attempt=attempt)
        except _NothingLeft:
            discard([d.file_path for w in written for d in w.files], bronze.io)
            raise
        # a commit that failed otherwise leaves its files in place: its outcome may be unknown
        discard([d.file_path for w in written if w.name not in kept for d in w.files], bronze.io)
        return bronze


class _NothingLeft(Exception):
    """Raised by a commit attempt when another run committed every file of the batch: commit nothing."""


def _quarantine_attempt(rows: pa.Table, files: list[dict[str, Any]], bronze: Any) -> Attempt:
    """Quarantine rows of the files whose quarantine part (or whole) no run has committed yet."""

    def attempt(table: Any) -> tuple[pa.Table, FileBatch | None]:
        committed = {**_ledger(table), **_ledger(bronze.refresh())}
        data, keep = _fenced(rows, files, committed, "_file_hash", "sha256")
        if not data.num_rows:
            raise _NothingLeft
        return data, _file_batch(keep)

    return attempt


def _bronze_attempt(rows: pa.Table, files: list[dict[str, Any]], fenced: dict[str, str]) -> Attempt:
    """Bronze rows of the files no run has committed to Bronze yet; the others go into `fenced`."""

    def attempt(table: Any) -> tuple[pa.Table, FileBatch | None]:
        committed = _ledger(table)
        data, keep = _fenced(rows, files, committed, "_source_file", "name")
        for f in files:
            if f["sha256"] in committed:
                fenced[f["sha256"]] = committed[f["sha256"]].run or "unknown"
            else:
                fenced.pop(f["sha256"], None)
        if not keep:
            raise _NothingLeft
        return data, _file_batch(keep)

    return attempt


def _fenced(
    rows: pa.Table, files: list[dict[str, Any]], committed: dict[str, Any], column: str, field: str
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The rows and file entries of a batch whose sha256 is not in `committed`."""
    keep = [f for f in files if f["sha256"] not in committed]
    if len(keep) == len(files):
        return rows, keep
    import pyarrow.compute as pc

    wanted = pa.array([f[field] for f in keep], pa.string())
    return rows.filter(pc.is_in(rows[column], value_set=wanted)), keep


def _committed_elsewhere(outcome: FileOutcome, fenced: dict[str, str]) -> FileOutcome:
    """A file another run committed while this one read it: reported by that run, skipped here."""
    if outcome.sha256 is None or outcome.sha256 not in fenced or outcome.status not in ("landed", "rejected"):
        return outcome
    run = fenced[outcome.sha256]
    return replace(
        outcome,
        status="skipped",
        rows_in=0,
        landed=0,
        quarantined=0,
        reason=f"committed by a concurrent run ({run}) while this run read it",
    )


_WORKER_SOURCE: FileSource | None = None


def _column_validator(contract: Contract, spec: FileSpec, validator: RecordValidator) -> Any:
    """The vectorised validator for a source, or None (nested columns, a format without a column
    reader, or LAKESTACK_VECTORISED=0)."""
    from lakestack.contracts.vector import ColumnValidator, supports
    from lakestack.ingest.vectorised import columns_reader

    if os.environ.get("LAKESTACK_VECTORISED", "1") == "0" or columns_reader(spec.format) is None:
        return None
    return ColumnValidator(contract, validator, spec.csv) if supports(contract) else None


def _no_rows(contract: Contract) -> tuple[pa.Table, pa.Array, pa.Array]:
    from lakestack.contracts.arrow import arrow_schema

    return arrow_schema(contract).empty_table(), pa.array([], pa.string()), pa.array([], pa.int64())


def _worker_result(cand: Candidate, future: Any) -> tuple[Any, ...]:
    """A worker's read of a file; a worker that died (the OOM killer, a kill -9) fails the run with
    one clear line: what was committed before stays committed, and the next run reads the file again."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        result: tuple[Any, ...] = future.result()
    except BrokenProcessPool:
        raise RunError(
            f"the worker process reading {cand.name} died (killed, or out of memory); files committed before "
            "it stay committed and the next run reads it again (LAKESTACK_INGEST_WORKERS=1 reads in-process)"
        ) from None
    return result


def _read_in_worker(cand: Candidate, sha: str) -> tuple[Any, ...]:
    assert _WORKER_SOURCE is not None, "worker processes are forked from an ingesting FileSource"
    return _WORKER_SOURCE._read_safely(cand, sha)


def _read_segment_in_worker(cand: Candidate, sha: str, segment: Any) -> tuple[Any, ...]:
    assert _WORKER_SOURCE is not None, "worker processes are forked from an ingesting FileSource"
    return _WORKER_SOURCE._read_segment(cand, sha, segment)


def _preload() -> None:
    """Import what the workers read and write with before they are forked: each would import it
    again otherwise, on every run (0.3-1 s of a short ingest on a busy host)."""
    import importlib

    for module in (
        "pyarrow.csv",
        "pyarrow.json",
        "pyarrow.parquet",
        "pyiceberg.io.pyarrow",
        "lakestack.ingest.vectorised",
        "lakestack.storage.streamed",
        "lakestack.storage.delta_streamed",
    ):
        importlib.import_module(module)


def _workers() -> int:
    """Processes that read files at once: LAKESTACK_INGEST_WORKERS, else up to two cores."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():  # Windows: read in the calling process
        return 1
    configured = os.environ.get("LAKESTACK_INGEST_WORKERS")
    if configured:
        return max(1, int(configured))
    return min(2, os.cpu_count() or 1)


def _file_batch(files: list[dict[str, Any]]) -> FileBatch:
    return FileBatch(tuple(BatchFile(**f) for f in files))

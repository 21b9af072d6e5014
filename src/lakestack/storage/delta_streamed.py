"""File ingest's data files written before the commit, on Delta (ADR 37, ADR 35).

What `storage/streamed.py` does for Iceberg: each block of Bronze rows goes into one Parquet file
in the Delta table's partition folder (`_ingested_at_day=<days since 1970>/`, as delta-rs lays out
Bronze), written by the process that validated it. The commit, in the ingesting process, adds
those files by path in one `create_write_transaction` commit (as `delta_erase` removes and adds
files), compare-and-swap (`max_commit_retries=0`) with the commitInfo `delta.append` writes: the
run and batch ids, the checkpoint, and the `txn` app transaction. A lost race is retried from a
fresh read unless the batch id shows the earlier attempt landed.

`DeltaTarget` is what a forked read worker needs to write a file (the table's folder, columns and
partitioning, read in the parent): the worker never calls delta-rs. Each add action carries
`numRecords` and, from the Parquet footer (no pass over the rows), `nullCount` of every top-level
column and `minValues`/`maxValues` of the integer, decimal, date and UTC timestamp ones
(timestamps in milliseconds, as delta-rs writes them, the maximum rounded up). Strings get no
min/max (Bronze's `_raw` would put long lines in the log), nor floats (Parquet's leave NaN out).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from lakestack.errors import CommitConflictError, StorageError
from lakestack.failpoints import failpoint
from lakestack.storage.checkpoints import commit_properties
from lakestack.storage.delta import DeltaLakeTable, _deltalake, commit_actions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeltaTarget:
    """Where and how streamed files of a Delta table are written (plain values: they cross a fork)."""

    root: str  # the table's folder (a local path or an s3:// URI), no trailing slash
    schema: pa.Schema  # the table's own columns, in the types delta-rs reads them
    partition: str | None  # the derived day column (`_ingested_at_day`), or None: unpartitioned
    fileio: dict[str, str]

    def io(self) -> Any:
        from pyiceberg.io.pyarrow import PyArrowFileIO

        return PyArrowFileIO(dict(self.fileio))


@dataclass(frozen=True, slots=True)
class DeltaFile:
    """A written file, as its add action will name it."""

    file_path: str  # where it is (for deleting it)
    path: str  # relative to the table, as the log names it
    size: int
    partition_values: dict[str, str | None]
    modification_time: int
    stats: str


def target(table: DeltaLakeTable, column: str) -> DeltaTarget | None:
    """A target for `table` if it is unpartitioned or partitioned by the day of `column` alone."""
    part = table.partitioning
    if part is not None and (part.column, part.granularity) != (column, "day"):
        return None
    return DeltaTarget(
        table.uri.rstrip("/"), table.arrow_schema(), part.name if part else None, dict(table.fileio or {})
    )


class DeltaStreamedFile:
    """One Parquet data file of a Delta table, written a block at a time; every row is of the
    ingest started `at` (its partition: the day of `at`). `plain`: columns written without a
    dictionary (see `streamed.StreamedFile`)."""

    def __init__(self, to: DeltaTarget, at: datetime, plain: tuple[str, ...] = ()) -> None:
        self._to = to
        self._values: dict[str, str | None] = {}
        folder = ""
        if to.partition is not None:
            day = (at.astimezone(UTC).date() - date(1970, 1, 1)).days
            self._values = {to.partition: str(day)}
            folder = f"{to.partition}={day}/"
        self.path = f"{folder}part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        self.file_path = f"{to.root}/{self.path}"
        self._plain = plain
        self._io: Any = None
        self._stream: Any = None
        self._writer: Any = None
        self.rows = 0

    def write(self, rows: pa.Table) -> None:
        """Append a block of rows (conformed to the table's columns) as the file's next row group."""
        import pyarrow.parquet as pq

        from lakestack.storage.evolution import conform

        if not rows.num_rows:
            return
        rows = conform(rows, self._to.schema).select(self._to.schema.names).cast(self._to.schema)
        if self._writer is None:
            self._io = self._to.io()
            self._stream = self._io.new_output(self.file_path).create(overwrite=False)
            coded = [n for n in self._to.schema.names if n not in self._plain]
            self._writer = pq.ParquetWriter(
                self._stream, self._to.schema, compression="snappy", use_dictionary=coded if self._plain else True
            )
        self._writer.write_table(rows)
        self.rows += rows.num_rows

    def close(self) -> list[DeltaFile]:
        """The written file ([] when no row was written)."""
        if self._writer is None:
            return []
        self._writer.close()
        footer = self._writer.writer.metadata  # the footer written (pyarrow keeps it on the inner writer)
        self._stream.close()
        size = len(self._io.new_input(self.file_path))
        now = int(time.time() * 1000)
        stats = json.dumps(_stats(footer, self._to.schema, self.rows), separators=(",", ":"))
        return [DeltaFile(self.file_path, self.path, size, self._values, now, stats)]

    def discard(self) -> None:
        """Close and delete the file (its rows will not be committed)."""
        if self._writer is None:
            return
        try:
            self._writer.close()
            self._stream.close()
        except Exception:  # the file is deleted next; a half-written one is fine
            log.debug("closing %s before deleting it failed", self.file_path, exc_info=True)
        from lakestack.storage.streamed import discard

        discard([self.file_path], self._io)


def _stats(footer: Any, schema: pa.Schema, rows: int) -> dict[str, Any]:
    """Delta's file statistics from a Parquet footer's row-group statistics (module doc)."""
    nulls: dict[str, int] = {}
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    columns = {footer.schema.column(i).path: i for i in range(footer.num_columns)}
    for field in schema:
        i = columns.get(field.name)  # a nested column has no path of its own name: left out
        if i is None:
            continue
        kind = field.type
        ranged = (  # floats: Parquet's min/max leave NaN out; naive timestamps: spelled otherwise
            pa.types.is_integer(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_date(kind)
            or (pa.types.is_timestamp(kind) and kind.tz is not None)
        )
        count, low, high, known = 0, None, None, True
        for g in range(footer.num_row_groups):
            st = footer.row_group(g).column(i).statistics
            if st is None or not st.has_null_count:
                known = False
                break
            count += st.null_count
            if ranged and st.has_min_max:
                low = st.min if low is None else min(low, st.min)
                high = st.max if high is None else max(high, st.max)
        if not known:
            continue
        nulls[field.name] = count
        if low is not None and high is not None:
            lows[field.name], highs[field.name] = _json(low, False), _json(high, True)
    out: dict[str, Any] = {"numRecords": rows, "nullCount": nulls}
    if lows:
        out.update(minValues=lows, maxValues=highs)
    return out


def _json(value: Any, up: bool) -> Any:
    """A statistic as Delta's JSON stats write it (`up`: a maximum, rounded up when truncated)."""
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)  # a UTC column's statistic
        ms = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if up and ms != value:
            ms += timedelta(milliseconds=1)
        return ms.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def append_written(
    table: DeltaLakeTable,
    *,
    run_id: str,
    batch_id: str,
    attempt: Any,
    retries: int = 8,
    patience_s: float = 60.0,
) -> DeltaLakeTable:
    """Commit files written ahead (and rows, written now) in one compare-and-swap commit carrying
    the run id, batch id and checkpoint; retried like `warehouse.append` (see there)."""
    from lakestack.storage.streamed import discard
    from lakestack.storage.warehouse import has_batch

    started = time.monotonic()
    for n in itertools.count():
        rows, files, checkpoint = attempt(table)
        own: list[DeltaFile] = []
        try:
            props = commit_properties(table, run_id, batch_id, checkpoint)
            if rows is not None and rows.num_rows:
                own = _write_rows(table, rows)
            failpoint("storage.append.after_write")  # data files written; the log commit is next
            _commit(table, [*files, *own], props)
            failpoint("storage.append.after_commit")
            return table.refresh()
        except CommitConflictError as exc:
            table = table.refresh()
            if has_batch(table, batch_id):
                log.info("batch %s was committed by an earlier attempt", batch_id)
                return table
            discard([f.file_path for f in own], table.io)  # never committed: written again next try
            waited = time.monotonic() - started
            if n >= retries and waited >= patience_s:
                raise CommitConflictError(
                    f"could not commit to {table.identifier} after {n + 1} attempts in {waited:.0f} s: {exc}"
                ) from exc
            time.sleep(min(2.0, 0.05 * 2 ** min(n, 6)) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _write_rows(table: DeltaLakeTable, rows: pa.Table) -> list[DeltaFile]:
    """Rows of the batch not streamed (read record by record) as one more file of the same ingest."""
    part = table.partitioning
    to = target(table, part.column if part is not None else "")
    if to is None:
        raise StorageError(f"{table.identifier}: rows can be added by path only to a table partitioned by day")
    at = rows[part.column][0].as_py() if part is not None and rows.num_rows else datetime.now(UTC)
    out = DeltaStreamedFile(to, at or datetime.now(UTC))
    try:
        out.write(rows)
        return out.close()
    except BaseException:
        out.discard()
        raise


def _commit(table: DeltaLakeTable, files: list[DeltaFile], props: dict[str, str]) -> None:
    """One commit adding `files` by path. CommitConflictError: another commit landed since `table`
    was read (nothing committed)."""
    _deltalake()  # the extra's clear error before delta-rs's own imports
    from deltalake.transaction import AddAction

    actions = [AddAction(f.path, f.size, f.partition_values, f.modification_time, True, f.stats) for f in files]
    commit_actions(table, actions, props, "the ingest")

"""Data files written before their commit, a block of rows at a time (ADR 0037).

A file-drop ingest validates a landing file block by block; each block's Bronze rows are written
straight into one Parquet data file (`StreamedFile`), so memory holds one block, not the file,
and the process that read the file also writes it (a worker, on a core of its own). The commit
that lands them (`append_written`) happens later in the ingesting process and adds the files'
pyiceberg `DataFile`s to one snapshot, with its checkpoint, under the same compare-and-swap and
batch-id rules as `warehouse.append`. Files never committed (a failed run, a fenced file) are
deleted when known, else they are orphans that `lakestack maintain` removes. On Delta the same
steps are in `storage/delta_streamed.py` (`stream_target`, `open_file` and `append_written` route).
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa

from lakestack.errors import CommitConflictError
from lakestack.failpoints import failpoint
from lakestack.storage.checkpoints import Checkpoint, commit_properties
from lakestack.storage.evolution import conform

log = logging.getLogger(__name__)

# Makes one try's rows (written as usual, may be None), its data files written ahead and its
# checkpoint from the table as it then is.
WrittenAttempt = Callable[[Any], tuple[pa.Table | None, list[Any], Checkpoint | None]]

# A column whose values hardly repeat (ids, keys) fills a dictionary before Parquet gives it up and
# writes plainly; with pyiceberg's 2 MiB it gives up late. At 256 KiB a Bronze block of the benchmark
# rows writes in ~15 % less CPU and ~10 % fewer bytes; a column of few distinct values keeps its
# dictionary. A table's own write.parquet.dict-size-bytes wins.
DICT_PAGE_BYTES = 256 << 10
_DICT_SIZE = "write.parquet.dict-size-bytes"


def stream_target(table: Any, column: str) -> Any:
    """What `open_file` writes a streamed file of `table` with, or None when its rows cannot be
    streamed: the pyiceberg table itself, or a `delta_streamed.DeltaTarget` for a Delta table
    (plain values read here, so a forked worker writes without calling delta-rs)."""
    from lakestack.storage.delta import is_delta

    if is_delta(table):
        from lakestack.storage.delta_streamed import target

        return target(table, column)
    return table if streamable(table, column) else None


def open_file(to: Any, at: datetime, plain: tuple[str, ...] = ()) -> Any:
    """A streamed data file of the `stream_target` `to`: `write` blocks, then `close` (the files to
    commit, each with a `file_path`) or `discard`."""
    from lakestack.storage.delta_streamed import DeltaStreamedFile, DeltaTarget

    if isinstance(to, DeltaTarget):
        return DeltaStreamedFile(to, at, plain)
    return StreamedFile(to, at, plain)


def streamable(table: Any, column: str) -> bool:
    """Whether rows of `table` can be streamed into files ahead of the commit: a pyiceberg or Delta
    table, unpartitioned or partitioned by the day of `column` alone (Bronze: `_ingested_at`)."""
    from pyiceberg.table import Table
    from pyiceberg.transforms import DayTransform

    from lakestack.storage.delta import is_delta

    if is_delta(table):
        from lakestack.storage.delta_streamed import target

        return target(table, column) is not None
    if not isinstance(table, Table):
        return False
    spec = table.metadata.spec()
    if not spec.fields:
        return True
    field = spec.fields[0]
    source = table.metadata.schema().find_column_name(field.source_id)
    return len(spec.fields) == 1 and isinstance(field.transform, DayTransform) and source == column


class StreamedFile:
    """One Parquet data file of `table`, written a block at a time. Every row must carry the same
    partition value: `at` (the day of the partition column, which the caller sets to `at`).
    Columns in `plain` are written without dictionary encoding (Bronze's `_raw`: every value
    differs, so the dictionary Parquet tries first is built and thrown away, ~25 % of the write)."""

    def __init__(self, table: Any, at: datetime, plain: tuple[str, ...] = ()) -> None:
        from pyiceberg.io.fileformat import FileFormatFactory
        from pyiceberg.io.pyarrow import pyarrow_to_schema
        from pyiceberg.manifest import FileFormat
        from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
        from pyiceberg.schema import sanitize_column_names
        from pyiceberg.table.locations import load_location_provider

        metadata = table.metadata
        self._metadata, self._io = metadata, table.io
        self._arrow = metadata.schema().as_arrow()
        schema = metadata.schema()
        self._file_schema = sanitize_column_names(schema)
        self._task_schema = pyarrow_to_schema(
            self._arrow, name_mapping=schema.name_mapping, format_version=metadata.format_version
        )
        self._model = FileFormatFactory.get(FileFormat.PARQUET)
        spec = metadata.spec()
        self._key = None
        if spec.fields:
            day = (at.date() - datetime(1970, 1, 1).date()).days  # the day transform's value
            value = PartitionFieldValue(field=spec.fields[0], value=day)
            self._key = PartitionKey(field_values=[value], partition_spec=spec, schema=schema)
        provider = load_location_provider(table_location=metadata.location, table_properties=metadata.properties)
        self.path: str = provider.new_data_location(
            data_file_name=f"00000-0-{uuid.uuid4()}.parquet", partition_key=self._key
        )
        self._output = self._io.new_output(self.path)
        self._writer: Any = None
        self._plain = plain
        self.rows = 0

    def write(self, rows: pa.Table) -> None:
        """Append a block of rows (conformed to the table's schema) as the file's next row group."""
        from pyiceberg.io.pyarrow import _to_requested_schema

        if not rows.num_rows:
            return
        rows = conform(rows, self._arrow)
        if self._writer is None:
            self._writer = self._model.create_writer(self._output, self._file_schema, self._metadata.properties)
            # pyiceberg's writer takes no such options (pinned below 0.13: its kwargs are stable)
            kwargs = dict(self._writer._parquet_writer_kwargs)
            if self._plain:
                kwargs["use_dictionary"] = [f.name for f in self._file_schema.fields if f.name not in self._plain]
            if _DICT_SIZE not in self._metadata.properties:
                kwargs["dictionary_pagesize_limit"] = DICT_PAGE_BYTES
            self._writer._parquet_writer_kwargs = kwargs
        for batch in rows.to_batches():
            fitted = _to_requested_schema(
                requested_schema=self._file_schema,
                file_schema=self._task_schema,
                batch=batch,
                include_field_ids=True,
                format_model=self._model,
            )
            self._writer.write(pa.Table.from_batches([fitted]))
        self.rows += rows.num_rows

    def close(self) -> list[Any]:
        """The written file as a pyiceberg `DataFile` ([] when no row was written)."""
        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
        from pyiceberg.typedef import Record

        if self._writer is None:
            return []
        statistics = self._writer.close()
        return [
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=self.path,
                file_format=FileFormat.PARQUET,
                partition=self._key.partition if self._key else Record(),
                file_size_in_bytes=len(self._output),
                sort_order_id=None,
                spec_id=self._metadata.default_spec_id,
                equality_ids=None,
                key_metadata=None,
                **statistics.to_serialized_dict(),
            )
        ]

    def discard(self) -> None:
        """Close and delete the file (its rows will not be committed)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # the file is deleted next; a half-written one is fine
                log.debug("closing %s before deleting it failed", self.path, exc_info=True)
            discard([self.path], self._io)


def discard(paths: list[str], io: Any) -> None:
    """Delete data files that will not be committed; one that cannot be deleted stays an orphan."""
    for path in paths:
        try:
            io.delete(path)
        except OSError:
            log.info("could not delete the uncommitted data file %s (an orphan for `lakestack maintain`)", path)


def append_written(
    table: Any,
    *,
    run_id: str,
    batch_id: str,
    attempt: WrittenAttempt,
    retries: int = 8,
    patience_s: float = 60.0,
) -> Any:
    """Commit data files written ahead (and rows, written now) in one snapshot with the run id,
    batch id and checkpoint; retried like `warehouse.append` (see there)."""
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

    from lakestack.storage.delta import is_delta
    from lakestack.storage.warehouse import has_batch, write_data_files

    if is_delta(table):  # the same steps, adding the files by path to one Delta commit
        from lakestack.storage import delta_streamed

        return delta_streamed.append_written(
            table, run_id=run_id, batch_id=batch_id, attempt=attempt, retries=retries, patience_s=patience_s
        )
    started = time.monotonic()
    for n in itertools.count():
        rows, files, checkpoint = attempt(table)
        try:
            props = commit_properties(table, run_id, batch_id, checkpoint)
            with table.transaction() as tx, tx.update_snapshot(snapshot_properties=props).fast_append() as update:
                if rows is not None and rows.num_rows:
                    conformed = conform(rows, table.schema().as_arrow())
                    files = [*files, *write_data_files(tx.table_metadata, table.io, conformed, update.commit_uuid)]
                for data_file in files:
                    update.append_data_file(data_file)
                failpoint("storage.append.after_write")  # data files written; the catalog commit is next
            failpoint("storage.append.after_commit")
            return table
        except (CommitFailedException, CommitStateUnknownException) as exc:
            table = table.refresh()
            if has_batch(table, batch_id):
                log.info("batch %s was committed by an earlier attempt", batch_id)
                return table
            waited = time.monotonic() - started
            if n >= retries and waited >= patience_s:
                raise CommitConflictError(
                    f"could not commit to {table.name()} after {n + 1} attempts in {waited:.0f} s: {exc}"
                ) from exc
            time.sleep(min(2.0, 0.05 * 2 ** min(n, 6)) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")

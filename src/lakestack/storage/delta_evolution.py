"""Widening a column's type on a Delta table (ADR 35): delta-rs cannot change a column's type in
place, so the table's rows are rewritten with the widened schema in one overwrite commit
(`schema_mode="overwrite"`, the same partitioning and table properties).

The rewrite keeps the exactly-once protocol's records: its commitInfo carries the table's whole
checkpoint state (`maintenance.carried`: stream positions, file ledgers, upstream snapshots) like
every maintenance commit, and it is marked `lakestack.maintenance: widen`, so incremental readers
treat its files as rewritten rows, not new ones (`delta_log`, `maintenance.is_rewrite`), as they
skip a compaction. Renames stay refused: they need Delta column mapping, and delta-rs 1.6 refuses
to write `delta.columnMapping.mode` ("Column mapping is not supported for write operation").
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from lakestack.errors import CommitConflictError, StorageError
from lakestack.storage.delta import APP_ID, DeltaLakeTable, _deltalake, _first_line

log = logging.getLogger(__name__)

WIDEN = "widen"  # the `lakestack.maintenance` value of a widening rewrite
DONE_HERE = ("add", "optional", "widen")  # the steps a Delta table takes


def refuse_unsupported(table: DeltaLakeTable, steps: list[Any]) -> None:
    """StorageError, before anything is committed, for steps a Delta table cannot take."""
    renames = [s.column for s in steps if s.action == "rename"]
    if renames:
        raise StorageError(
            f"{table.identifier}: renaming a column ({', '.join(renames)}) needs Delta column mapping, "
            "which delta-rs does not write yet; add the column under its new name instead, or keep the old name"
        )
    refused = [f"{s.action} {s.column}" for s in steps if s.action not in DONE_HERE or len(s.path) != 1]
    if refused:
        raise StorageError(
            f"{table.identifier}: a Delta table takes added, widened and optional top-level columns only "
            f"for now; this contract version also needs: {', '.join(refused)}"
        )


def widen(table: DeltaLakeTable, steps: list[Any], *, batch_id: str) -> DeltaLakeTable:
    """Rewrite every row of `table` with the widened column types of `steps` (action `widen`, top
    level) in one compare-and-swap overwrite commit that carries the table's state. Rows are
    streamed batch by batch from the current version. CommitConflictError if the table changed."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    from lakestack.storage.checkpoints import BATCH_ID
    from lakestack.storage.maintenance import MAINTENANCE, carried

    deltalake = _deltalake()
    from deltalake.exceptions import CommitFailedError

    wanted = {s.column: schema_to_pyarrow(s.field_type) for s in steps if s.action == WIDEN}
    if not wanted:
        return table
    current = pa.schema(table.delta.schema().to_arrow())
    schema = pa.schema([f.with_type(wanted.get(f.name, f.type)) for f in current])
    dataset = table.delta.to_pyarrow_dataset()
    batches = (
        pa.Table.from_batches([b]).select(schema.names).cast(schema).to_batches()[0]
        for b in dataset.to_batches(columns=schema.names)
        if b.num_rows
    )
    rows = pa.RecordBatchReader.from_batches(schema, batches)
    version = table.version
    props = {**carried(table), BATCH_ID: batch_id, MAINTENANCE: WIDEN}
    properties = deltalake.CommitProperties(
        custom_metadata=props, max_commit_retries=0, app_transactions=[deltalake.Transaction(APP_ID, version + 1)]
    )
    part = table.partitioning
    try:
        deltalake.write_deltalake(
            table.delta,
            rows,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=[part.name] if part is not None else None,
            commit_properties=properties,
            storage_options=table.storage_options,
        )
    except CommitFailedError as exc:
        raise CommitConflictError(f"{table.identifier} changed since version {version} ({exc})") from exc
    except Exception as exc:  # delta-rs errors: translate at the boundary
        raise StorageError(f"cannot widen {table.identifier}: {_first_line(exc)}") from None
    table = table.refresh()
    log.warning(
        "%s: rewrote every row to widen %s (Delta has no in-place type change); version %s",
        table.identifier,
        ", ".join(f"{k} to {v}" for k, v in wanted.items()),
        table.version,
    )
    return table

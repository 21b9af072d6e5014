"""The `_replayed_from` lineage column of Bronze: which quarantined record a Bronze row came from.

A quarantine replay (pipeline/replay.py) lands rows that a newer contract accepts in Bronze with
`_replayed_from` set to the record's replay key: `<sha256 of the landing file>#<line>` for a file
record, `@<partition@offset>` for a stream record. Rows ingested normally hold null. The column is
added to a Bronze table (one metadata commit, optional, so every older file reads it as null) the
first time a replay lands rows in it; tables never replayed into keep the schema they had. On a
Delta table (ADR 35) that commit is delta-rs `alter.add_columns`; the replay's append is the same
`warehouse.append` as on Iceberg, with the batch id in the version's commitInfo.

The set of keys Bronze holds is what makes replay exactly-once: a replay commit leaves out every
row whose key is already there, so a rerun after a crash, or a second replay, lands nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from lakestack.errors import StorageError
from lakestack.failpoints import failpoint

log = logging.getLogger(__name__)

REPLAYED_FROM = "_replayed_from"
DOC = "the quarantined record this row was replayed from (<sha256>#<line> or @<position>); null when ingested"


def has_replayed_column(table: Any) -> bool:
    return any(f.name == REPLAYED_FROM for f in table.schema().fields)


def ensure_replayed_column(table: Any) -> Any:
    """`table` with an optional string column `_replayed_from` (added in one commit when missing)."""
    from lakestack.storage.delta import is_delta

    if has_replayed_column(table):
        return table
    if is_delta(table):
        return _ensure_on_delta(table)
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.types import StringType

    failpoint("replay.before_schema")
    try:
        with table.transaction() as tx, tx.update_schema() as update:
            update.add_column(REPLAYED_FROM, StringType(), doc=DOC, required=False)
    except CommitFailedException:  # a rival changed the table first: fine if it added the column
        table = table.refresh()
        if not has_replayed_column(table):
            raise StorageError(
                f"{'.'.join(table.name())}: the schema changed while adding {REPLAYED_FROM}; retry"
            ) from None
        return table
    failpoint("replay.after_schema")
    log.info("%s: added %s", ".".join(table.name()), REPLAYED_FROM)
    return table.refresh()


def _ensure_on_delta(table: Any, retries: int = 4) -> Any:
    """The column added to a Delta table: a compare-and-swap `alter.add_columns` commit (nullable,
    after the others; older files read it as null). A commit landing meanwhile (an ingest appending
    to Bronze) fails it: the table is read again and, unless a rival added the column, it is tried
    again, up to `retries` times."""
    import pyarrow as pa

    from lakestack.storage.delta import _deltalake

    deltalake = _deltalake()
    from deltalake.exceptions import CommitFailedError

    column = deltalake.Field.from_arrow(pa.field(REPLAYED_FROM, pa.string(), nullable=True, metadata={"comment": DOC}))
    failpoint("replay.before_schema")
    for attempt in range(retries + 1):
        try:
            table.delta.alter.add_columns([column], commit_properties=deltalake.CommitProperties(max_commit_retries=0))
            break
        except CommitFailedError:
            table = table.refresh()
            if has_replayed_column(table):
                return table
            if attempt == retries:
                raise StorageError(
                    f"{table.identifier}: the table kept changing while adding {REPLAYED_FROM}; retry"
                ) from None
    failpoint("replay.after_schema")
    log.info("%s: added %s", table.identifier, REPLAYED_FROM)
    return table.refresh()


def replayed_keys(table: Any) -> set[str]:
    """The replay keys of every Bronze row a replay landed (empty before the first replay)."""
    if not has_replayed_column(table) or table.current_snapshot() is None:
        return set()
    from pyiceberg.expressions import NotNull

    present = NotNull(REPLAYED_FROM)  # type: ignore[arg-type, call-arg]
    scan = table.scan(row_filter=present, selected_fields=(REPLAYED_FROM,))
    return {k for k in scan.to_arrow().column(REPLAYED_FROM).to_pylist() if k is not None}

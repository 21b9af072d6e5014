"""A table's snapshots: its lineage, what each commit made, time travel, and rollback.

A table's *lineage* is its current snapshot and that snapshot's ancestors: the commits that make
up what the table holds now. A rollback points the table back at an older snapshot; the snapshots
after it stay in the metadata (time travel can still read them, `lakestack rollback` can return
to them) but leave the lineage, so checkpoints and batch ids are read from the lineage only
(`warehouse.history`). Which snapshot was current at a moment comes from the table's snapshot log,
which a rollback appends to, so time travel sees rollbacks as they happened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakestack.errors import CommitConflictError, StorageError
from lakestack.failpoints import failpoint

log = logging.getLogger(__name__)

ROLLBACK = "lakestack.rollback"  # table property: the newest rollback (run id, from, to, when)


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One snapshot of a table as `lakestack history` shows it."""

    snapshot_id: int
    parent_id: int | None
    committed_at: datetime
    operation: str | None
    run_id: str | None  # the lakestack run id of the commit (`lakestack.run-id`)
    batch_id: str | None
    added_rows: int | None
    deleted_rows: int | None
    total_rows: int | None
    total_files: int | None
    current: bool
    in_lineage: bool  # False: a rollback left it (still readable by time travel)


@dataclass(frozen=True, slots=True)
class Rollback:
    """What a rollback changed: the table's current snapshot before and after."""

    identifier: str
    from_snapshot: int | None
    to_snapshot: int
    changed: bool  # False: the table already was at `to_snapshot`; nothing was committed


def lineage(table: Any) -> Iterator[Any]:
    """The current snapshot and its ancestors, newest first (pyiceberg `Snapshot`s)."""
    metadata = table.metadata
    by_id = {s.snapshot_id: s for s in metadata.snapshots}
    snapshot = by_id.get(metadata.current_snapshot_id) if metadata.current_snapshot_id is not None else None
    seen: set[int] = set()
    while snapshot is not None and snapshot.snapshot_id not in seen:
        seen.add(snapshot.snapshot_id)
        yield snapshot
        parent = snapshot.parent_snapshot_id
        snapshot = by_id.get(parent) if parent is not None else None


def snapshots(table: Any) -> list[SnapshotInfo]:
    """Every snapshot the table's metadata holds, newest commit first."""
    current = table.metadata.current_snapshot_id
    kept = {s.snapshot_id for s in lineage(table)}
    ordered = sorted(table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0), reverse=True)
    return [_info(s, current, kept) for s in ordered]


def snapshot(table: Any, snapshot_id: int) -> SnapshotInfo | None:
    """One snapshot of the table, or None when its metadata does not hold it (never was, or expired)."""
    found = table.metadata.snapshot_by_id(snapshot_id)
    if found is None:
        return None
    return _info(found, table.metadata.current_snapshot_id, {s.snapshot_id for s in lineage(table)})


def _info(snapshot: Any, current: int | None, kept: set[int]) -> SnapshotInfo:
    from lakestack.storage.warehouse import BATCH_ID, RUN_ID

    summary = snapshot.summary
    props: dict[str, str] = summary.additional_properties if summary else {}
    operation = summary.operation.value if summary is not None and summary.operation is not None else None
    return SnapshotInfo(
        snapshot_id=snapshot.snapshot_id,
        parent_id=snapshot.parent_snapshot_id,
        committed_at=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC),
        operation=operation,
        run_id=props.get(RUN_ID),
        batch_id=props.get(BATCH_ID),
        added_rows=_int(props.get("added-records")),
        deleted_rows=_int(props.get("deleted-records")),
        total_rows=_int(props.get("total-records")),
        total_files=_int(props.get("total-data-files")),
        current=snapshot.snapshot_id == current,
        in_lineage=snapshot.snapshot_id in kept,
    )


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


def current_at(table: Any, when: datetime) -> int | None:
    """The id of the snapshot that was the table's current one at `when`, from the snapshot log
    (so a rollback counts from the moment it was made; the snapshot may have been expired since);
    None when the table had none yet."""
    moment = int(when.timestamp() * 1000)
    for entry in reversed(table.metadata.snapshot_log):
        if entry.timestamp_ms <= moment:
            return int(entry.snapshot_id)
    return None


def first_commit(table: Any) -> datetime | None:
    """When the table's oldest snapshot still in its log became current."""
    log_entries = table.metadata.snapshot_log
    if log_entries:
        return datetime.fromtimestamp(log_entries[0].timestamp_ms / 1000, UTC)
    oldest = min((s.timestamp_ms for s in table.metadata.snapshots), default=None)
    return datetime.fromtimestamp(oldest / 1000, UTC) if oldest is not None else None


def last_rollback(table: Any) -> dict[str, Any] | None:
    """The newest rollback recorded on the table (run id, from, to, at), if any."""
    raw = table.metadata.properties.get(ROLLBACK)
    try:
        found = json.loads(raw) if raw else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def rollback(table: Any, snapshot_id: int, *, run_id: str) -> Rollback:
    """Make `snapshot_id` the table's current snapshot, in one metadata commit (no data is written).

    An ancestor of the current snapshot is rolled back to (Iceberg's rollback-to-snapshot); a
    snapshot an earlier rollback left is set current again (set-current-snapshot). The commit
    asserts the current snapshot it read, so a rival commit in between makes it fail
    (CommitConflictError) rather than discard the rival's snapshot. The rollback is recorded in
    the table property `lakestack.rollback`.
    """
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException
    from pyiceberg.table.update.snapshot import ManageSnapshots

    from lakestack.storage import delta

    if delta.is_delta(table):  # a restore: a new version (storage/delta.py)
        return delta.rollback(table, snapshot_id, run_id=run_id)  # type: ignore[no-any-return]
    name = ".".join(table.name()[-2:])
    if table.metadata.snapshot_by_id(snapshot_id) is None:
        raise StorageError(f"{name} has no snapshot {snapshot_id}")
    before = table.metadata.current_snapshot_id
    if before == snapshot_id:
        return Rollback(name, before, snapshot_id, changed=False)
    ancestor = any(s.snapshot_id == snapshot_id for s in lineage(table))
    record = {"run_id": run_id, "from": before, "to": snapshot_id, "at": datetime.now(UTC).isoformat()}
    try:
        with table.transaction() as tx:
            manage = ManageSnapshots(transaction=tx)
            if ancestor:
                manage.rollback_to_snapshot(snapshot_id)
            else:
                manage.set_current_snapshot(snapshot_id=snapshot_id)
            tx.set_properties({ROLLBACK: json.dumps(record, separators=(",", ":"))})
            failpoint("rollback.before_commit")
    except (CommitFailedException, CommitStateUnknownException) as exc:
        fresh = table.refresh()
        if fresh.metadata.current_snapshot_id == snapshot_id:  # the commit did land
            return Rollback(name, before, snapshot_id, changed=True)
        raise CommitConflictError(
            f"{name} changed while rolling back; look at 'lakestack history' and retry ({exc})"
        ) from exc
    failpoint("rollback.after_commit")
    log.info("%s rolled back from %s to %s (run %s)", name, before, snapshot_id, run_id)
    return Rollback(name, before, snapshot_id, changed=True)

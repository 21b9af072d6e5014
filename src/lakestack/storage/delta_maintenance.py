"""`lakestack maintain` on Delta tables (ADR 35): compaction is delta-rs `optimize.compact`, expiry
is `vacuum`, history retention is `delete`; each commit carries the table's state like every other.

`storage.maintenance` and `storage.expiry` route a Delta table here, so `pipeline/maintain.py` runs
the same steps on both formats. What differs:

- Delta has no manifests: the manifest step finds nothing to rewrite.
- Expiry: Delta's log keeps every version (commitInfo, so every checkpoint, stays readable); what
  goes is the data files that only versions older than the retention reference. `vacuum` runs
  with every other version in `keep_versions`: the one current at the start of the retention
  window (time travel), the last `keep_last` and the newer ones. Versions other tables'
  checkpoints pin need only the log (their readers plan files, they do not read them).
- Orphans (`find_orphans`): Parquet files in the table folder that no version of the log adds or
  removes (a writer killed before its commit, a commit that lost its compare-and-swap) and side
  files in `_lakestack/` that no version's state names, older than `orphan_min_age`. `vacuum`
  deletes only files the log removed; `vacuum(full=True)` also takes files the current state does
  not reference, but it knows removed files only while their tombstones are in the state (a log
  checkpoint drops them after `deletedFileRetentionDuration`), so it could take a file a version
  kept for time travel still needs; the log walk here never does.
- Bronze: only partitions whose every file each Silver reader has read are compacted (optimize
  takes all the small files of a partition, it cannot be given some); Silver's incremental read
  skips the files optimize added (`dataChange: false`, `storage.delta_log`), so nothing is read twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from lakestack.errors import CommitConflictError
from lakestack.failpoints import failpoint
from lakestack.storage.delta import SIDE_FOLDER, DeltaLakeTable, _deltalake

log = logging.getLogger(__name__)
# never orphans: the log itself, and change-data files (`cdc` actions; lakestack turns no CDF on)
UNTOUCHED = ("_delta_log/", "_change_data/")


def footprint(table: DeltaLakeTable) -> Any:
    from lakestack.storage.maintenance import Footprint

    files = [t.file for t in table.scan().plan_files()]
    current = table.current_snapshot()
    return Footprint(
        files=len(files),
        bytes=sum(f.file_size_in_bytes for f in files),
        records=sum(f.record_count for f in files),
        snapshots=len(table.metadata.snapshots),
        manifests=0,
        snapshot_id=current.snapshot_id if current is not None else None,
    )


def plan_compaction(table: DeltaLakeTable, target_bytes: int, eligible: Any = None) -> Any:
    """Bins of a partition's small files (`maintenance._pack`), as for Iceberg.

    `eligible(version, version)` (Bronze: what every Silver reader has read) is asked about each
    live file's data version (`delta_log.data_versions`). optimize takes every small file of the
    partitions it is given, so a partition holding any file not eligible is left whole."""
    from lakestack.storage.maintenance import SMALL_SHARE, CompactionPlan, _pack

    tasks = table.scan().plan_files()
    held: set[Any] = set()
    if eligible is not None and tasks:
        held = _held_partitions(table, [t.file for t in tasks], eligible)
    groups: dict[Any, list[Any]] = defaultdict(list)
    for task in tasks:
        if task.file.file_size_in_bytes < target_bytes * SMALL_SHARE and task.file.partition not in held:
            groups[task.file.partition].append(task.file)
    bins: list[tuple[Any, ...]] = []
    partitions = lone = 0
    for files in groups.values():
        packed = [b for b in _pack(files, target_bytes) if len(b) > 1]
        lone += len(files) == 1
        partitions += bool(packed)
        bins.extend(packed)
    return CompactionPlan(tuple(bins), partitions, lone)


def _held_partitions(table: DeltaLakeTable, files: list[Any], eligible: Any) -> set[Any]:
    """Partitions holding a file some reader has not read (its data version is not eligible)."""
    from lakestack.storage import delta_log

    current = table.version
    versions = delta_log.data_versions(table, current)
    held = set()
    for data_file in files:
        version = versions.get(delta_log.relative(table.uri, data_file.file_path), current)
        if not eligible(version, version):
            held.add(data_file.partition)
    if held:
        log.info("%s: %d partition(s) hold rows a reader has not read; not compacted", table.identifier, len(held))
    return held


def compact(table: DeltaLakeTable, target_bytes: int, *, run_id: str, batch_id: str, eligible: Any = None) -> Any:
    """`optimize.compact` over the partitions that have bins, in one compare-and-swap commit whose
    commitInfo carries the table's state (`maintenance._props`)."""
    from deltalake.exceptions import CommitFailedError

    from lakestack.storage.maintenance import Rewritten, _props
    from lakestack.storage.warehouse import has_batch

    plan = plan_compaction(table, target_bytes, eligible)
    if not plan.bins:
        return table, Rewritten(0, 0, None)
    part = table.partitioning
    values = sorted({str(f.partition[0]) for b in plan.bins for f in b if f.partition[0] is not None})
    filters = [(part.name, "in", values)] if part is not None and values else None
    properties = _deltalake().CommitProperties(
        custom_metadata=_props(table, "compact", run_id, batch_id), max_commit_retries=0
    )
    try:
        metrics = table.delta.optimize.compact(
            partition_filters=filters, target_size=target_bytes, commit_properties=properties
        )
    except CommitFailedError as exc:
        table = table.refresh()
        if has_batch(table, batch_id):
            return table, Rewritten(plan.files, -1, table.current_snapshot().snapshot_id)  # type: ignore[union-attr]
        raise CommitConflictError(f"{table.identifier}: compaction lost to another commit ({exc})") from exc
    failpoint("maintain.compact.after_commit")
    table = table.refresh()
    snapshot = table.current_snapshot()
    removed, added = int(metrics.get("numFilesRemoved", 0)), int(metrics.get("numFilesAdded", 0))
    return table, Rewritten(removed, added, snapshot.snapshot_id if snapshot is not None else None)


def plan_expiry(
    table: DeltaLakeTable, *, now_ms: int, retention_ms: int, keep_last: int, pinned: dict[int, str] | None = None
) -> Any:
    """Versions older than the retention whose files may go, and those kept with why. Versions that
    other tables' checkpoints pin (`pinned`) need no data files on Delta: their readers plan files
    from the log (which vacuum keeps), so only time travel's window start is kept."""
    from lakestack.storage.expiry import ExpiryPlan

    snaps = table.metadata.snapshots  # oldest first
    cutoff = now_ms - retention_ms
    keep = {s.snapshot_id for s in snaps[-keep_last:]} if keep_last > 0 else set()
    old = [s.snapshot_id for s in snaps if s.timestamp_ms < cutoff and s.snapshot_id not in keep]
    if not old:
        return ExpiryPlan(())
    needed: dict[int, str] = {}
    window = [s.snapshot_id for s in snaps if s.timestamp_ms <= cutoff]
    if window:
        needed.setdefault(window[-1], "time travel to the start of the retention window")
    kept = tuple((v, why) for v, why in sorted(needed.items()) if v in old)
    return ExpiryPlan(tuple(v for v in old if v not in needed), kept)


def expire(table: DeltaLakeTable, plan: Any) -> tuple[DeltaLakeTable, Any]:
    """`vacuum` keeping every version but the expired ones: deletes the data files only expired
    versions reference (see the module doc)."""
    from lakestack.storage.expiry import Deleted

    if not plan.expire:
        return table, Deleted(0, 0)
    gone = set(plan.expire)
    keep = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in gone]
    failpoint("maintain.expire.before_commit")
    deleted = table.delta.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False, keep_versions=keep)
    failpoint("maintain.expire.after_commit")
    return table.refresh(), Deleted(len(deleted), 0)


def delete_older(
    table: DeltaLakeTable, column: str, before: datetime, *, run_id: str, batch_id: str, dry_run: bool
) -> int:
    """Delete a history table's rows whose `column` is before `before`; how many."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake.exceptions import CommitFailedError

    from lakestack.storage.maintenance import _props

    values = table.scan().to_arrow().column(column)
    old = int(pc.sum(pc.less(values, pa.scalar(before, values.type))).as_py() or 0)
    if not old or dry_run:
        return old
    predicate = f"\"{column}\" < CAST('{before.isoformat()}' AS TIMESTAMP)"
    properties = _deltalake().CommitProperties(
        custom_metadata=_props(table, "history", run_id, batch_id), max_commit_retries=0
    )
    failpoint("maintain.history.before_commit")
    try:
        table.delta.delete(predicate, commit_properties=properties)
    except CommitFailedError as exc:  # a run recorded itself meanwhile: the next maintain deletes them
        log.info("%s changed while deleting old rows; left for the next run (%s)", table.identifier, exc)
        return 0
    failpoint("maintain.history.after_commit")
    return old


def find_orphans(table: DeltaLakeTable, *, now_ms: int, min_age_ms: int, nested: Any = ()) -> dict[str, int]:
    """Files in the table folder that no log version references, older than `min_age_ms` (see the
    module doc); `_delta_log/` is never touched. Listing comes before the log is read, so a file
    committed meanwhile is seen as live; one written but not committed yet is young."""
    from lakestack.storage import delta_log
    from lakestack.storage.expiry import CheckpointUnreadable, _key, list_files

    listed = list_files(table)
    table = table.refresh()
    io = table.io
    root = _key(io, table.location()).rstrip("/") + "/"
    referenced = delta_log.referenced_files(table, table.version)
    try:
        from lakestack.storage.checkpoints import referenced_files

        side = {_key(io, p) for p in referenced_files(table)}
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointUnreadable(
            f"a checkpoint of {table.identifier} cannot be read ({exc}), so the files it references are unknown"
        ) from exc
    nested_keys = tuple(_key(io, n).rstrip("/") + "/" for n in nested)
    candidates = {
        f.path: f.size
        for f in listed
        if f.mtime_ms <= now_ms - min_age_ms
        and not f.path.startswith(tuple(root + folder for folder in UNTOUCHED))
        and (f.path.startswith(root + SIDE_FOLDER + "/") or f.path.endswith(".parquet"))
        and not f.path.endswith(".pending")  # an erasure's marker: `delta_erase.clean_pending` reads it
        and not (nested_keys and f.path.startswith(nested_keys))
    }
    orphans = {p: n for p, n in candidates.items() if p not in side and p.removeprefix(root) not in referenced}
    fresh = table.refresh()
    if orphans and fresh.version != table.version:  # a commit landed meanwhile: what it references is live
        later = delta_log.referenced_files(fresh, fresh.version)
        orphans = {p: n for p, n in orphans.items() if p.removeprefix(root) not in later}
    return orphans

"""Snapshot expiry that keeps what checkpoints and time travel need, and orphan-file removal.

Expiry removes snapshots older than the retention, oldest first along the current snapshot's
ancestors (readers walk them, and the walk ends at a missing parent), stopping at the first of:

- the newest `keep_last` snapshots, branch and tag heads;
- the snapshot that was current at the start of the retention window (time travel to any moment
  inside the window needs it);
- snapshots other tables' checkpoints name (`pinned`: the Bronze snapshot a Silver dataset last
  read, the upstream snapshots a Gold model was built from);
- snapshots holding checkpoint state that no newer snapshot holds (`checkpoints.needed_snapshots`:
  none once the newest commit carries the compact checkpoint, as every maintenance commit does,
  except client batch ids younger than the HTTP dedup window).

The snapshot expiry stops at is reported with its reason. A checkpoint this module cannot read
makes expiry of that table refuse, with the reason. After the commit, files only the expired
snapshots reached (data files, manifests, manifest lists) are deleted; a crash in between leaves
them as orphans for orphan removal.

Orphan removal lists the table's location, then loads the table, and deletes only files that no
live snapshot and no metadata file in the log references and that are older than a safety age.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lakestack.failpoints import failpoint
from lakestack.storage.snapshots import lineage

log = logging.getLogger(__name__)


class CheckpointUnreadable(ValueError):
    """A snapshot's checkpoint cannot be read: nothing it might reference can be proven unused."""


@dataclass(frozen=True, slots=True)
class ExpiryPlan:
    """Snapshots to expire; those past the retention that are kept, with why; or why none may go."""

    expire: tuple[int, ...]
    kept: tuple[tuple[int, str], ...] = ()
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Deleted:
    """Files deleted (or, dry, that would be) and their bytes."""

    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str  # as the table's FileIO spells it (scheme-less for S3: bucket/key)
    size: int
    mtime_ms: int


def plan_expiry(
    table: Any,
    *,
    now_ms: int,
    retention_ms: int,
    keep_last: int,
    pinned: Mapping[int, str] | None = None,
) -> ExpiryPlan:
    """Which snapshots older than `now_ms - retention_ms` may be expired (see the module docstring).

    Readers find checkpoints by walking the current snapshot's ancestors, and that walk ends at the
    first missing parent, so only the oldest part of the lineage is expired, up to the first
    snapshot that must stay; snapshots a rollback left (outside the lineage) go by age alone.
    """
    from lakestack.storage import delta, delta_maintenance

    if delta.is_delta(table):  # storage/delta_maintenance.py
        return delta_maintenance.plan_expiry(  # type: ignore[no-any-return]
            table, now_ms=now_ms, retention_ms=retention_ms, keep_last=keep_last, pinned=dict(pinned or {})
        )
    snaps = sorted(table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
    cutoff = now_ms - retention_ms
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    protected |= {s.snapshot_id for s in snaps[-keep_last:]} if keep_last > 0 else set()
    old = {s.snapshot_id for s in snaps if s.timestamp_ms < cutoff and s.snapshot_id not in protected}
    if not old:
        return ExpiryPlan(())
    line = list(lineage(table))[::-1]  # oldest first
    needed: dict[int, str] = {}
    window_start = _current_at(line, cutoff)
    if window_start is not None:
        needed[window_start] = "time travel to the start of the retention window"
    for snapshot_id, why in (pinned or {}).items():
        needed.setdefault(snapshot_id, why)
    refused = checkpoint_needs(table, needed, now_ms)
    if refused is not None:
        return ExpiryPlan((), (), refused)
    on_line = {s.snapshot_id for s in line}
    expire = [s for s in snaps if s.snapshot_id in old and s.snapshot_id not in on_line | set(needed)]
    kept: list[tuple[int, str]] = []
    for i, snap in enumerate(line):
        sid = snap.snapshot_id
        if sid not in old:
            break
        if sid in needed:
            later = sum(1 for s in line[i + 1 :] if s.snapshot_id in old)
            why = needed[sid] + (f"; the {later:,} older-than-retention snapshots after it stay too" if later else "")
            kept.append((sid, why))
            break
        expire.append(snap)
    return ExpiryPlan(tuple(s.snapshot_id for s in expire), tuple(kept))


def _current_at(line: list[Any], ts_ms: int) -> int | None:
    """The lineage snapshot that was current at `ts_ms` (None: none was yet); `line` oldest first."""
    found = None
    for snap in line:
        if snap.timestamp_ms > ts_ms:
            break
        found = snap.snapshot_id
    return found


def checkpoint_needs(table: Any, needed: dict[int, str], now_ms: int) -> str | None:
    """Add to `needed` the snapshots whose checkpoint state no newer snapshot holds
    (`checkpoints.needed_snapshots`); the reason expiry must refuse instead, when a checkpoint
    cannot be read (then nothing can be proven safe to drop)."""
    from lakestack.storage.checkpoints import needed_snapshots

    try:
        held = needed_snapshots(table, now_ms=now_ms)
    except (ValueError, KeyError, TypeError) as exc:
        return f"a checkpoint of {table.name()} cannot be read ({exc}), so no snapshot is proven safe to drop: refused"
    for snapshot_id in held:
        needed.setdefault(snapshot_id, "it holds checkpoint state no newer snapshot carries")
    return None


def expire(table: Any, plan: ExpiryPlan) -> tuple[Any, Deleted]:
    """Commit the plan, then delete the files only the expired snapshots reached."""
    from lakestack.storage import delta, delta_maintenance

    if delta.is_delta(table):  # storage/delta_maintenance.py
        return delta_maintenance.expire(table, plan)  # type: ignore[no-any-return]
    if not plan.expire:
        return table, Deleted(0, 0)
    gone = set(plan.expire)
    before = reachable(table, [s for s in table.metadata.snapshots if s.snapshot_id in gone], metadata=False)
    failpoint("maintain.expire.before_commit")
    from pyiceberg.table.update.snapshot import ExpireSnapshots

    with table.transaction() as tx:
        update = ExpireSnapshots(tx)
        # by_ids checks each id against a fresh deep copy of the whole metadata: O(n²) for n
        # snapshots (minutes at a few thousand); the plan's ids come from this metadata already
        update._snapshot_ids_to_expire = set(plan.expire)
        update.commit()
    failpoint("maintain.expire.after_commit")
    table = table.refresh()
    live = _live(table)
    unreached = {path: size for path, size in before.items() if path not in live}
    return table, delete_files(table, unreached)


def reachable(table: Any, snapshots: Iterable[Any], *, metadata: bool = True) -> dict[str, int]:
    """Every file `snapshots` reach (manifest lists, manifests, data and delete files), with its
    size where known (-1 otherwise), keyed as the FileIO spells paths; with `metadata`, also the
    table's metadata file, its metadata log and statistics files."""
    io = table.io
    out: dict[str, int] = {}
    seen: set[str] = set()
    for snap in snapshots:
        out[_key(io, snap.manifest_list)] = -1
        for manifest in snap.manifests(io):
            out[_key(io, manifest.manifest_path)] = manifest.manifest_length
            if manifest.manifest_path in seen:
                continue
            seen.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                out[_key(io, entry.data_file.file_path)] = entry.data_file.file_size_in_bytes
    if metadata:
        for path in _metadata_files(table):
            out[_key(io, path)] = -1
    return out


def _metadata_files(table: Any) -> Iterator[str]:
    yield table.metadata_location
    for entry in table.metadata.metadata_log:
        yield entry.metadata_file
    for stats in [*table.metadata.statistics, *table.metadata.partition_statistics]:
        yield stats.statistics_path


def _key(io: Any, location: str) -> str:
    scheme, _netloc, path = io.parse_location(location)
    return f"{scheme}://{path}" if scheme != "file" else path


def delete_files(table: Any, files: Mapping[str, int]) -> Deleted:
    """Delete files (keys from `reachable`/`find_orphans`); one already gone is not an error."""
    io = table.io
    count = size = 0
    for key, length in sorted(files.items()):
        failpoint("maintain.delete_file")
        try:
            io.delete(key if "://" in key else f"file://{key}")
        except FileNotFoundError:
            continue
        count += 1
        size += max(length, 0)
    return Deleted(count, size)


def list_files(table: Any) -> list[FileInfo]:
    """Every file under the table's location (through the table's own FileIO filesystem)."""
    from pyarrow import fs as pafs

    io = table.io
    scheme, netloc, root = io.parse_location(table.location())
    filesystem = io.fs_by_scheme(scheme, netloc)
    selector = pafs.FileSelector(root.rstrip("/"), recursive=True, allow_not_found=True)
    out = []
    for info in filesystem.get_file_info(selector):
        if info.type == pafs.FileType.File:
            mtime = int(info.mtime.timestamp() * 1000) if info.mtime is not None else 0
            out.append(FileInfo(f"{scheme}://{info.path}" if scheme != "file" else info.path, info.size or 0, mtime))
    return out


def find_orphans(table: Any, *, now_ms: int, min_age_ms: int, nested: Iterable[str] = ()) -> dict[str, int]:
    """Files under the table's location that nothing live references, older than `min_age_ms`.

    Listing comes first and the table is loaded after it, so a file committed before the load is
    seen as live; a file written but not yet committed is young. `nested`: other tables' locations;
    files under one of them are never this table's orphans.
    """
    from lakestack.storage import delta

    if delta.is_delta(table):  # the log's versions, not manifests (storage/delta_maintenance.py)
        from lakestack.storage import delta_maintenance

        return delta_maintenance.find_orphans(table, now_ms=now_ms, min_age_ms=min_age_ms, nested=nested)
    listed = list_files(table)
    table = table.refresh()
    live = _live(table)
    root = _key(table.io, table.location()).rstrip("/") + "/"
    ours = (root + "data/", root + "metadata/")  # what Iceberg writers put there; nothing else is touched
    nested_keys = tuple(_key(table.io, n).rstrip("/") + "/" for n in nested)
    orphans = {
        f.path: f.size
        for f in listed
        if f.path not in live
        and f.mtime_ms <= now_ms - min_age_ms
        and f.path.startswith(ours)
        and not (nested_keys and f.path.startswith(nested_keys))
    }
    fresh = table.refresh()
    if orphans and fresh.metadata_location != table.metadata_location:  # a commit landed meanwhile
        live = _live(fresh)
        orphans = {p: s for p, s in orphans.items() if p not in live}
    return orphans


def _live(table: Any) -> set[str]:
    """Everything a live snapshot or the metadata references, and the checkpoints' side files."""
    from lakestack.storage.checkpoints import referenced_files

    try:
        side = referenced_files(table)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointUnreadable(
            f"a checkpoint of {table.name()} cannot be read ({exc}), so the files it references are unknown"
        ) from exc
    return set(reachable(table, table.metadata.snapshots)) | {_key(table.io, p) for p in side}

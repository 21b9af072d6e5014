"""Row erasure on Delta tables (ADR 35, ADR 23): the same steps as `storage/rewrite.py` on Iceberg.

`storage.rewrite` routes a Delta table here, so `pipeline/erase.py` runs unchanged on both formats.

- **Rewrite.** Each data file of the current version that holds a row `match` selects is read, and
  the other rows are written as a new Parquet file in the same partition folder (none when nothing
  is left). One `create_write_transaction` commit removes the old files and adds the new ones, by
  path: only the files holding the subject change, as on Iceberg. It is compare-and-swap
  (`max_commit_retries=0`, CommitFailedError → a fresh read and another try, unless the batch id
  shows the earlier attempt landed) and its commitInfo carries the table's whole checkpoint state
  (`maintenance.carried`), the run and batch ids, `lakestack.maintenance` = erase and the removed
  files. The new files' add actions say `dataChange: false`, so Silver's incremental read of
  Bronze (`delta_log.unread_files`) does not take the rewritten rows for new ones, unless they were
  made from files it had not read yet. A pending marker in `_lakestack/` names the write id (in
  every new file's name) and the batch id, so files a killed or beaten attempt wrote are deleted
  by the next erasure.
- **Expiry.** Delta's log keeps every version, and an old version's add actions keep column
  statistics (a file's min/max, which may be the subject's value) as well as its files. What
  Iceberg's expiry of every snapshot before the erasure does is, on Delta: `vacuum` keeping only
  the versions from the erasure on (the files only older versions reference are deleted), a log
  checkpoint at the current version, then the log files of every version before the erasure are
  deleted. Time travel to those versions then fails ("no files in log segment"), as reading an
  expired Iceberg snapshot does; the versions from the erasure on stay readable.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import pyarrow as pa

from lakestack.errors import CommitConflictError, StorageError
from lakestack.failpoints import failpoint
from lakestack.storage.delta import SIDE_FOLDER, DeltaLakeTable, _deltalake, commit_actions

log = logging.getLogger(__name__)

PENDING = "lakestack-erase-"  # _lakestack/<PENDING><write id>.pending: a rewrite writing files
LOG = "_delta_log"

Hit = tuple[Any, pa.Table, int]  # (the planned task, the file's rows, rows matching)


def scan(table: DeltaLakeTable, match: Any) -> list[Hit]:
    """(task, the file's rows, rows matching) for each data file of the current version holding a match."""
    import pyarrow.compute as pc

    out = []
    for task in table.scan().plan_files():
        data = read_file(table, task.file.file_path)
        if not data.num_rows:
            continue
        found = int(pc.sum(pc.fill_null(match(data), False)).as_py() or 0)
        if found:
            out.append((task, data, found))
    return out


def read_file(table: DeltaLakeTable, path: str) -> pa.Table:
    """One data file's rows in the table's columns (a column added after it was written reads null;
    the derived partition column is not in the files)."""
    import pyarrow.parquet as pq

    from lakestack.storage.evolution import conform

    with table.io.new_input(path).open() as stream:
        data = pq.read_table(stream)
    return conform(data, table.arrow_schema())


def erase_rows(table: DeltaLakeTable, match: Any, props: Any, retries: int) -> tuple[DeltaLakeTable, Any]:
    """Rewrite the files holding rows `match` selects, without those rows, in one commit; `props`
    makes the commit properties from the table as read and the files removed (see the module doc)."""
    from lakestack.storage.rewrite import Erased, _concat
    from lakestack.storage.warehouse import has_batch

    for attempt in range(retries + 1):
        snap = table.current_snapshot()
        if snap is None:
            return table, Erased(0, (), 0, None, None)
        hits = scan(table, match)
        if not hits:
            return table, Erased(0, (), 0, snap.snapshot_id, snap.snapshot_id)
        rows = sum(n for _t, _d, n in hits)
        removed = tuple(t.file.file_path for t, _d, _n in hits)
        matched = _concat([d for _t, d, _n in hits], match, table)
        commit = props(table, removed)
        try:
            written = _commit(table, hits, match, commit)
        except CommitConflictError as exc:
            table = table.refresh()
            if has_batch(table, commit["lakestack.batch-id"]):
                return table, Erased(rows, removed, -1, snap.snapshot_id, _current(table))
            clean_pending(table)  # this attempt's files: never committed
            if attempt == retries:
                raise CommitConflictError(f"{table.identifier}: erasure kept losing to other commits ({exc})") from exc
            log.info("%s changed while erasing; reading it again", table.identifier)
            continue
        failpoint("erase.rewrite.after_commit")
        table = table.refresh()
        return table, Erased(rows, removed, written, snap.snapshot_id, _current(table), matched)
    raise AssertionError("unreachable")


def _current(table: DeltaLakeTable) -> int | None:
    snap = table.current_snapshot()
    return snap.snapshot_id if snap is not None else None


def _commit(table: DeltaLakeTable, hits: list[Hit], match: Any, props: dict[str, str]) -> int:
    """Write each hit file's other rows as a new file, then one commit removing the old files and
    adding the new ones; how many files were written. CommitConflictError: another commit landed
    since `table` was read (nothing committed; the files written stay for `clean_pending`)."""
    import pyarrow.compute as pc

    _deltalake()  # the extra's clear error before delta-rs's own imports
    from deltalake.transaction import AddAction, RemoveAction

    write_id = str(uuid.uuid4())
    marker = f"{table.side_files_location}/{PENDING}{write_id}.pending"
    with table.io.new_output(marker).create(overwrite=True) as out:  # the files named by it are ours
        out.write(json.dumps({"batch_id": props["lakestack.batch-id"]}).encode())
    part = table.partitioning
    root = table.uri.rstrip("/")
    now = int(time.time() * 1000)
    actions: list[Any] = []
    added: list[str] = []
    for n, (task, data, _found) in enumerate(hits):
        values = {part.name: _text(task.file.partition[0])} if part is not None else {}
        kept = data.filter(pc.invert(pc.fill_null(match(data), False)))
        if kept.num_rows:
            folder = f"{part.name}={values[part.name]}/" if part is not None else ""
            path = f"{folder}part-{n:05d}-{write_id}-c000.snappy.parquet"
            size = _write_parquet(table, f"{root}/{path}", kept)
            stats = json.dumps({"numRecords": kept.num_rows})
            actions.append(AddAction(path, size, values, now, False, stats))  # dataChange false: no new rows
            added.append(f"{root}/{path}")
        old = _relative(root, task.file.file_path)
        actions.append(RemoveAction(old, True, now, int(task.file.file_size_in_bytes), values or None))
    failpoint("erase.rewrite.after_write")  # new files written; the log commit is next
    commit_actions(table, actions, props, "the erasure")
    table.io.delete(marker)
    return len(added)


def _text(value: Any) -> str | None:
    return None if value is None else str(int(value))


def _relative(root: str, path: str) -> str:
    """A planned (absolute) data file path as the log names it, relative to the table."""
    from urllib.parse import unquote

    if not path.startswith(root + "/"):
        raise StorageError(f"data file {path} is not under its table {root}")
    return unquote(path[len(root) + 1 :])


def _write_parquet(table: DeltaLakeTable, location: str, data: pa.Table) -> int:
    import pyarrow.parquet as pq

    output = table.io.new_output(location)
    with output.create(overwrite=False) as out:
        pq.write_table(data, out, compression="snappy")
    return int(table.io.new_input(location).__len__())


def clean_pending(table: DeltaLakeTable) -> int:
    """Delete the data files of rewrites that never committed (a crash, a lost race), then their
    markers; how many files. A marker whose batch id a version holds committed: only it goes."""
    from lakestack.storage.expiry import delete_files
    from lakestack.storage.warehouse import has_batch

    listed = _listing(table, SIDE_FOLDER)
    markers = [(p, s) for p, s in listed.items() if p.rsplit("/", 1)[-1].startswith(PENDING)]
    if not markers:
        return 0
    table = table.refresh()
    live = set(table.file_paths())
    files = {p: s for p, s in _listing(table, "").items() if p.endswith(".parquet")} if markers else {}
    count = 0
    for marker, size in markers:
        write_id = marker.rsplit("/", 1)[-1].removeprefix(PENDING).removesuffix(".pending")
        with table.io.new_input(marker).open() as stream:
            batch_id = json.loads(stream.read() or b"{}").get("batch_id")
        if not (batch_id and has_batch(table, batch_id)):
            stale = {p: s for p, s in files.items() if write_id in p and _uri(table, p) not in live}
            count += delete_files(table, stale).files
        delete_files(table, {marker: size})
    return count


def _listing(table: DeltaLakeTable, sub: str) -> dict[str, int]:
    """Files under the table's folder `sub` ('' for all of it), as delete keys → sizes; `_delta_log`
    is left out of the whole-table listing."""
    from pyarrow import fs as pafs

    io = table.io
    scheme, netloc, root = io.parse_location(table.location())
    filesystem = io.fs_by_scheme(scheme, netloc)
    base = root.rstrip("/") + (f"/{sub}" if sub else "")
    out = {}
    for info in filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True)):
        if info.type != pafs.FileType.File or (not sub and f"/{LOG}/" in info.path):
            continue
        out[f"{scheme}://{info.path}" if scheme != "file" else info.path] = int(info.size or 0)
    return out


def _uri(table: DeltaLakeTable, key: str) -> str:
    """A listing key as the planned paths spell it (file URIs for a local table)."""
    from pathlib import Path

    return key if "://" in key else Path(key).as_uri()


# -- expiry ----------------------------------------------------------------------------------------
def expire_before(table: DeltaLakeTable, snapshot: Any, props: dict[str, str]) -> tuple[DeltaLakeTable, Any]:
    """Make the versions before the erasure version `snapshot` unreadable: vacuum the files only they
    reference, checkpoint the log at the current version, delete their log files (module doc).
    `props`: what the vacuum's own commits carry (the table's state)."""
    from lakestack.storage.expiry import delete_files
    from lakestack.storage.rewrite import Expired

    erased = snapshot.snapshot_id
    older = tuple(s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id < erased)
    sizes = _listing(table, "")
    vacuumed = _vacuum(table, [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id >= erased], props)
    deleted = [p for p in vacuumed if _key(table, p) in sizes]  # vacuum also names tombstones deleted before
    gone = sum(sizes[_key(table, p)] for p in deleted)
    table = table.refresh()
    table.delta.create_checkpoint()  # the state at the current version, so the log before can go
    stale = {p: s for p, s in _listing(table, LOG).items() if _log_version(p, erased) < erased}
    delete_files(table, stale)
    table = table.refresh()
    log.info("%s: versions before %s expired, %d data files deleted", table.identifier, erased, len(deleted))
    return table, Expired(older, len(deleted), gone)


def _vacuum(table: DeltaLakeTable, keep: list[int], props: dict[str, str]) -> list[str]:
    """`vacuum` keeping `keep`: the data files only other versions reference are deleted (its own two
    commits carry `props`); the deleted files, relative to the table."""
    deltalake = _deltalake()
    from deltalake.exceptions import CommitFailedError

    failpoint("maintain.expire.before_commit")
    try:
        deleted = table.delta.vacuum(
            retention_hours=0,
            dry_run=False,
            enforce_retention_duration=False,
            keep_versions=keep,
            commit_properties=deltalake.CommitProperties(custom_metadata=props),
        )
    except CommitFailedError as exc:
        raise CommitConflictError(f"{table.identifier}: vacuum lost to another commit ({exc})") from exc
    failpoint("maintain.expire.after_commit")
    return list(deleted)


def _key(table: DeltaLakeTable, path: str) -> str:
    """A vacuumed path (relative to the table, or absolute) as a listing key."""
    from urllib.parse import unquote

    from lakestack.storage.expiry import _key as key

    root = table.uri.rstrip("/")
    return key(table.io, path if "://" in path else f"{root}/{unquote(path)}")


def _log_version(path: str, other: int) -> int:
    """The version a `_delta_log` file belongs to (`00000000000000000012.json`, `....checkpoint.parquet`,
    `.crc`); `other` for `_last_checkpoint` and the like."""
    name = path.rsplit("/", 1)[-1]
    return int(name[:20]) if len(name) > 20 and name[:20].isdigit() and name[20] == "." else other


def holds_older(table: DeltaLakeTable, snapshot: Any) -> bool:
    """Whether versions before the erasure version `snapshot` can still be read."""
    return any(s.snapshot_id < snapshot.snapshot_id for s in table.metadata.snapshots)


def sweep(table: DeltaLakeTable, removed: list[str]) -> tuple[int, int]:
    """Delete the `removed` data files still on disk that no readable version references: those whose
    erasure version is the oldest readable one or older (what a crash inside vacuum left); (files, bytes)."""
    from lakestack.storage.expiry import delete_files
    from lakestack.storage.rewrite import erasure_snapshots, removed_files

    table = table.refresh()
    oldest = min((s.snapshot_id for s in table.metadata.snapshots), default=None)
    if oldest is None:
        return 0, 0
    erased_at = {p: s.snapshot_id for s in erasure_snapshots(table) for p in removed_files([s])}
    live = set(table.file_paths())
    on_disk = _listing(table, "")
    stale = {
        _key(table, p): on_disk[_key(table, p)]
        for p in removed
        if p not in live and erased_at.get(p, oldest + 1) <= oldest and _key(table, p) in on_disk
    }
    if not stale:
        return 0, 0
    deleted = delete_files(table, stale)
    return deleted.files, deleted.bytes

"""Row erasure on Iceberg: rewrite only the data files that hold matching rows, then expire the
snapshots that still reach the old files and delete those files.

`erase_rows` reads each live data file of the current snapshot, and for a file holding at least
one row `match` selects, writes the other rows as a new file (none when nothing is left) and drops
the old one, all in one ``overwrite`` snapshot. Like a compaction commit (storage/maintenance.py)
it carries the table's whole checkpoint state forward (`maintenance.carried`: the file ledger,
stream positions, upstream snapshot ids, client batch ids), and a new file keeps the data sequence
number of the file it replaces, so an incremental reader (Silver reading Bronze by sequence
number) never takes the rewritten rows for new ones. pyiceberg's own ``Table.delete(filter)``
does the same rewrite, but only for predicates it can express and without either of those two
guarantees, so it is not used here.

`expire_before` expires every snapshot older than the erasure commit (the whole lineage before it,
since readers walk the lineage and stop at the first missing parent) with `expiry.expire`, which
deletes the files only those snapshots reached. Before that, `seal` rewrites the current manifests
without their deleted entries when those still list a removed file: a deleted entry keeps the old
file's column bounds, which may be the subject's value, and keeps the file reachable. The erasure
commit names the data files it removed (summary key `erase.removed-files`, outside the `lakestack.`
keys later commits carry forward), so `sweep` can delete those a crash between the expiry commit
and the deletions left behind.

A Delta table (ADR 35) is routed to `storage/delta_erase.py`, which does the same on Delta's log:
a commit removing the old files and adding the new ones by path, then `vacuum` and the log files of
the versions before the erasure deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lakestack.errors import CommitConflictError, StorageError
from lakestack.failpoints import failpoint
from lakestack.storage.checkpoints import BATCH_ID, RUN_ID

log = logging.getLogger(__name__)

ERASE = "erase"  # the `lakestack.maintenance` value of an erasure commit
REMOVED = "erase.removed-files"  # summary key: JSON list of the data files an erasure commit removed
RETRIES = 4
Match = Callable[[Any], Any]  # an Arrow table of one data file's rows → a boolean array: erase these


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure found in one table (and, unless dry, rewrote)."""

    rows: int
    files: tuple[str, ...]  # the data files that held matching rows (rewritten, or would be)
    written: int  # new data files
    snapshot_before: int | None
    snapshot_after: int | None
    matched: Any = None  # the matching rows (Arrow), for what the caller derives from them


@dataclass(frozen=True, slots=True)
class Expired:
    """Snapshots expired after an erasure and the files deleted with them."""

    snapshots: tuple[int, ...] = ()
    files: int = 0
    bytes: int = 0
    kept: tuple[tuple[int, str], ...] = field(default_factory=tuple)  # snapshots that could not go, with why


def find_rows(table: Any, match: Match) -> Erased:
    """The rows `match` selects, per data file, without changing anything."""
    from lakestack.storage import delta, delta_erase

    snap = table.current_snapshot()
    if snap is None:
        return Erased(0, (), 0, None, None)
    if delta.is_delta(table):
        found = delta_erase.scan(table, match)
        return Erased(
            sum(n for _t, _d, n in found),
            tuple(t.file.file_path for t, _d, _n in found),
            0,
            snap.snapshot_id,
            snap.snapshot_id,
            _concat([d for _t, d, _n in found], match, table),
        )
    hits = _scan(table, snap, match)
    return Erased(
        sum(n for _e, _d, n in hits),
        tuple(e.data_file.file_path for e, _d, _n in hits),
        0,
        snap.snapshot_id,
        snap.snapshot_id,
        _concat([d for _e, d, _n in hits], match, table),
    )


def erase_rows(
    table: Any, match: Match, *, run_id: str, batch_id: str, extra: dict[str, str] | None = None
) -> tuple[Any, Erased]:
    """Rewrite the files holding rows `match` selects, without those rows, in one commit (whose
    summary also gets `extra`: keys outside `lakestack.`, which later commits do not carry)."""
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException, ValidationException

    from lakestack.storage import delta, delta_erase
    from lakestack.storage.warehouse import has_batch

    if delta.is_delta(table):

        def commit_props(read: Any, removed: tuple[str, ...]) -> dict[str, str]:
            return {**_props(read, run_id, batch_id), **(extra or {}), REMOVED: json.dumps(removed)}

        return delta_erase.erase_rows(table, match, commit_props, RETRIES)  # type: ignore[no-any-return]
    for attempt in range(RETRIES + 1):
        snap = table.current_snapshot()
        if snap is None:
            return table, Erased(0, (), 0, None, None)
        hits = _scan(table, snap, match)
        if not hits:
            return table, Erased(0, (), 0, snap.snapshot_id, snap.snapshot_id)
        rows = sum(n for _e, _d, n in hits)
        matched = _concat([d for _e, d, _n in hits], match, table)
        try:
            props = {**_props(table, run_id, batch_id), **(extra or {}), REMOVED: json.dumps(_paths(hits))}
            written = _commit(table, hits, match, props)
        except (CommitFailedException, CommitStateUnknownException, ValidationException) as exc:
            table = table.refresh()
            if has_batch(table, batch_id):
                return table, Erased(rows, _paths(hits), -1, snap.snapshot_id, table.current_snapshot().snapshot_id)
            clean_pending(table)  # this attempt's files: never committed
            if attempt == RETRIES:
                raise CommitConflictError(f"{table.name()}: erasure kept losing to other commits ({exc})") from exc
            log.info("%s changed while erasing; reading it again", table.name())
            continue
        failpoint("erase.rewrite.after_commit")
        table = table.refresh()
        return table, Erased(
            rows, _paths(hits), written, snap.snapshot_id, table.current_snapshot().snapshot_id, matched
        )
    raise AssertionError("unreachable")


def _paths(hits: list[tuple[Any, Any, int]]) -> tuple[str, ...]:
    return tuple(e.data_file.file_path for e, _d, _n in hits)


def _props(table: Any, run_id: str, batch_id: str) -> dict[str, str]:
    from lakestack.storage.maintenance import MAINTENANCE, carried

    return {**carried(table), RUN_ID: run_id, BATCH_ID: batch_id, MAINTENANCE: ERASE}


def _scan(table: Any, snap: Any, match: Match) -> list[tuple[Any, Any, int]]:
    """(manifest entry, the file's rows, rows matching) for each live data file holding a match."""
    import pyarrow.compute as pc
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.manifest import DataFileContent
    from pyiceberg.table import FileScanTask

    from lakestack.storage.maintenance import _live_entries

    out = []
    schema = table.schema()
    for entry in _live_entries(table, snap):
        if entry.data_file.content != DataFileContent.DATA:
            raise StorageError(
                f"{table.name()} has delete files (not written by lakestack): erasure cannot prove which rows are live"
            )
        data = ArrowScan(table.metadata, table.io, schema, AlwaysTrue()).to_table([FileScanTask(entry.data_file)])
        if not data.num_rows:
            continue
        found = int(pc.sum(pc.fill_null(match(data), False)).as_py() or 0)
        if found:
            out.append((entry, data, found))
    return out


def _concat(tables: list[Any], match: Match, table: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not tables:
        return table.schema().as_arrow().empty_table()
    return pa.concat_tables([t.filter(pc.fill_null(match(t), False)) for t in tables], promote_options="permissive")


def _commit(table: Any, hits: list[tuple[Any, Any, int]], match: Match, props: dict[str, str]) -> int:
    import pyarrow.compute as pc

    from lakestack.storage.warehouse import write_data_files

    arrow = table.schema().as_arrow()
    written = 0
    with table.transaction() as tx:
        producer = _producer(tx, table.io, props)
        marker = _marker(table, str(producer.commit_uuid))
        table.io.new_output(marker).create(overwrite=True).close()  # the files named by it are ours
        for entry, data, _n in hits:
            kept = data.filter(pc.invert(pc.fill_null(match(data), False))).cast(arrow)
            for data_file in write_data_files(tx.table_metadata, table.io, kept, producer.commit_uuid):
                producer.append_data_file(data_file)
                producer.sequences[data_file.file_path] = int(entry.sequence_number or 0)
                written += 1
            producer.delete_data_file(entry.data_file)
        failpoint("erase.rewrite.after_write")  # new files written; the catalog commit is next
        producer.commit()
    table.io.delete(marker)
    return written


PENDING = "lakestack-erase-"  # metadata/<PENDING><write uuid>.pending: a rewrite writing files


def _marker(table: Any, write_uuid: str) -> str:
    return f"{table.location().rstrip('/')}/metadata/{PENDING}{write_uuid}.pending"


def clean_pending(table: Any) -> int:
    """Delete the data files of rewrites that never committed (a crash, a lost race): files named by
    a pending marker's write id that no snapshot references, then the marker; how many files. They
    hold every row of the files they were to replace but the subject's: other subjects' rows, which
    a later erasure of those could not reach."""
    from lakestack.storage import delta, delta_erase
    from lakestack.storage.expiry import _live, delete_files, list_files

    if delta.is_delta(table):
        return delta_erase.clean_pending(table)

    listed = list_files(table)
    markers = [f for f in listed if f.path.rsplit("/", 1)[-1].startswith(PENDING)]
    if not markers:
        return 0
    live = _live(table.refresh())
    count = 0
    for marker in markers:
        uuid = marker.path.rsplit("/", 1)[-1].removeprefix(PENDING).removesuffix(".pending")
        stale = {f.path: f.size for f in listed if "/data/" in f.path and uuid in f.path and f.path not in live}
        count += delete_files(table, stale).files
        delete_files(table, {marker.path: marker.size})
    return count


def _producer(tx: Any, io: Any, props: dict[str, str]) -> Any:
    """pyiceberg's overwrite producer whose new files keep the data sequence number of the file
    they replace (see `maintenance._replace_producer`); an ``overwrite``, since rows are removed."""
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    from lakestack.storage.maintenance import _SequencedWriter

    class _Erase(_OverwriteFiles):
        sequences: dict[str, int]

        def new_manifest_writer(self, spec: Any) -> Any:
            return _SequencedWriter(super().new_manifest_writer(spec), self.sequences)

    producer = _Erase(operation=Operation.OVERWRITE, transaction=tx, io=io, snapshot_properties=props)
    producer.sequences = {}
    return producer


# -- expiry ----------------------------------------------------------------------------------------
def erasure_snapshots(table: Any) -> list[Any]:
    """The table's erasure commits (`lakestack.maintenance` = erase), oldest first."""
    from lakestack.storage.maintenance import MAINTENANCE

    snaps = sorted(table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
    return [s for s in snaps if (s.summary.additional_properties if s.summary else {}).get(MAINTENANCE) == ERASE]


def expire_before(table: Any, snapshot: Any) -> tuple[Any, Expired]:
    """Expire every snapshot older than the erasure commit `snapshot`, except branch and tag heads
    (reported as kept), and delete the files only they reached. On Delta: vacuum, then the log
    files of the versions before the erasure (`delta_erase.expire_before`)."""
    from lakestack.storage import delta, delta_erase
    from lakestack.storage.expiry import ExpiryPlan, expire

    if delta.is_delta(table):  # vacuum's own commits carry the table's state, as every commit does
        from lakestack.storage.maintenance import MAINTENANCE, carried

        return delta_erase.expire_before(table, snapshot, {**carried(table), MAINTENANCE: "expire"})  # type: ignore[no-any-return]

    heads = {ref.snapshot_id: name for name, ref in table.metadata.refs.items()}
    older = [
        s
        for s in table.metadata.snapshots
        if s.snapshot_id != snapshot.snapshot_id
        and (s.timestamp_ms, s.sequence_number or 0) <= (snapshot.timestamp_ms, snapshot.sequence_number or 0)
    ]
    kept = tuple((s.snapshot_id, f"the head of '{heads[s.snapshot_id]}'") for s in older if s.snapshot_id in heads)
    ids = tuple(s.snapshot_id for s in older if s.snapshot_id not in heads)
    if not ids:
        return table, Expired(kept=kept)
    table, deleted = expire(table, ExpiryPlan(ids))
    return table, Expired(ids, deleted.files, deleted.bytes, kept)


def removed_files(snapshots: list[Any]) -> list[str]:
    """The data files the erasure commits `snapshots` removed."""
    out: list[str] = []
    for snap in snapshots:
        out.extend(json.loads((snap.summary.additional_properties if snap.summary else {}).get(REMOVED, "[]")))
    return sorted(set(out))


def seal(
    table: Any, removed: list[str], *, run_id: str, batch_id: str, extra: dict[str, str]
) -> tuple[Any, Any | None]:
    """When the current snapshot's manifests still list a removed file as deleted (a deleted entry
    keeps the file's column bounds, which may be the subject's value), rewrite the manifests without
    deleted entries in one ``replace`` commit marked as an erasure (with `removed` and `extra`);
    the table and that commit (None when there was nothing to seal). A Delta table has no
    manifests: its old versions' statistics go with their log files (`expire_before`)."""
    from lakestack.storage.delta import is_delta
    from lakestack.storage.maintenance import MAINTENANCE, _ManifestRewrite

    if is_delta(table):
        return table, None

    snap = table.current_snapshot()
    gone = set(removed)
    listed = any(
        entry.data_file.file_path in gone
        for manifest in snap.manifests(table.io)
        if manifest.deleted_files_count
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False)
    )
    if not listed:
        return table, None
    props = {**_props(table, run_id, batch_id), MAINTENANCE: ERASE, **extra, REMOVED: json.dumps(removed)}
    with table.transaction() as tx:
        _ManifestRewrite.make(tx, table.io, props).commit()
    failpoint("erase.seal.after_commit")
    table = table.refresh()
    return table, table.current_snapshot()


def sweep(table: Any, removed: list[str]) -> tuple[int, int]:
    """Delete the `removed` data files still on disk that no live snapshot references (what a crash
    between the expiry commit and the deletions left); (files, bytes)."""
    from lakestack.storage import delta, delta_erase
    from lakestack.storage.expiry import _key, _live, delete_files

    if delta.is_delta(table):
        return delta_erase.sweep(table, removed)

    live = _live(table.refresh())
    keys = {_key(table.io, p): -1 for p in removed if _key(table.io, p) not in live}
    if not keys:
        return 0, 0
    deleted = delete_files(table, keys)
    return deleted.files, deleted.bytes


def holds_older(table: Any, snapshot: Any) -> bool:
    """Whether snapshots older than the erasure commit `snapshot` are still there."""
    from lakestack.storage import delta, delta_erase

    if delta.is_delta(table):
        return delta_erase.holds_older(table, snapshot)
    return any(
        s.snapshot_id != snapshot.snapshot_id and s.timestamp_ms <= snapshot.timestamp_ms
        for s in table.metadata.snapshots
    )

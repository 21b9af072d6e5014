"""Table maintenance on Iceberg: compaction, manifest rewrite, history retention, and footprints.

Snapshot expiry and orphan-file removal are in `storage/expiry.py`. Every commit made here is a
``replace`` snapshot (Iceberg's operation for a rewrite that changes no rows) or, for history
retention, a delete; each carries the run id, a batch id, ``lakestack.maintenance`` naming the step,
and the newest checkpoint of the table carried forward unchanged, so every reader of checkpoints
(file ledger, stream positions, Silver's and Gold's upstream snapshot ids) finds the same state on
the newest commit as before it. Incremental readers skip ``replace`` snapshots (their rows are not
new: `warehouse.files_added_after`), the convention Spark's incremental reads follow too.

Commits are compare-and-swap (lakestack tables have pyiceberg's own retry off): a commit that lost
a race is planned again from the fresh table, up to a few times.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lakestack.errors import CommitConflictError, StorageError
from lakestack.failpoints import failpoint
from lakestack.storage.checkpoints import BATCH_ID, CHECKPOINT, RUN_ID
from lakestack.storage.snapshots import lineage
from lakestack.storage.warehouse import has_batch, write_data_files

log = logging.getLogger(__name__)

MAINTENANCE = "lakestack.maintenance"  # summary property: which maintenance step made a snapshot
_OWN = frozenset({RUN_ID, BATCH_ID, MAINTENANCE, CHECKPOINT, "lakestack.state"})  # set by each commit itself
SMALL_SHARE = 0.75  # a data file below this share of the target size is small
MANIFEST_TARGET_BYTES = 8 * 1024 * 1024  # Iceberg's commit.manifest.target-size-bytes default
RETRIES = 4


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a table costs to open and read: its live data files and bytes, snapshots and manifests."""

    files: int
    bytes: int
    records: int
    snapshots: int
    manifests: int
    snapshot_id: int | None = None  # the current snapshot


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """Bins of small data files to rewrite, each bin within one partition; what stays as it is."""

    bins: tuple[tuple[Any, ...], ...]  # DataFile objects
    partitions: int  # partitions with at least one bin
    lone_small: int  # partitions holding a single small file (nothing to merge with inside it)
    skipped: str | None = None  # why the table is not compacted at all
    sequences: Mapping[str, int] = field(default_factory=dict)  # file path → data sequence number

    @property
    def files(self) -> int:
        return sum(len(b) for b in self.bins)

    @property
    def bytes(self) -> int:
        return sum(f.file_size_in_bytes for b in self.bins for f in b)


@dataclass(frozen=True, slots=True)
class Rewritten:
    """A committed (or, dry, planned) rewrite: files before and after, and its snapshot."""

    removed: int
    added: int
    snapshot_id: int | None


def footprint(table: Any) -> Footprint:
    """The current snapshot's totals (from its summary) with the table's snapshot and manifest counts."""
    from lakestack.storage import delta, delta_maintenance

    if delta.is_delta(table):  # storage/delta_maintenance.py
        return delta_maintenance.footprint(table)  # type: ignore[no-any-return]
    snap = table.current_snapshot()
    summary = snap.summary.additional_properties if snap is not None and snap.summary else {}
    return Footprint(
        files=int(summary.get("total-data-files", 0)),
        bytes=int(summary.get("total-files-size", 0)),
        records=int(summary.get("total-records", 0)),
        snapshots=len(table.metadata.snapshots),
        manifests=len(snap.manifests(table.io)) if snap is not None else 0,
        snapshot_id=snap.snapshot_id if snap is not None else None,
    )


def carried(table: Any) -> dict[str, str]:
    """The summary properties a maintenance commit carries so that nothing readers keep there is
    lost: the table's whole checkpoint state (`checkpoints.carry_forward`: after it, no older
    snapshot is needed), the newest per-commit checkpoint verbatim for readers that still walk
    those, and any other `lakestack.*` key of the current snapshot (the open alerts of
    `_lakestack.alerts`, which its readers take from the current snapshot)."""
    from lakestack.storage.checkpoints import carry_forward

    current = table.current_snapshot()
    summary = current.summary.additional_properties if current is not None and current.summary else {}
    props = {k: v for k, v in summary.items() if k.startswith("lakestack.") and k not in _OWN}
    try:
        props.update(carry_forward(table))
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(
            f"{table.name()}: a checkpoint cannot be read ({exc}); maintenance will not commit without carrying it"
        ) from exc
    for snap in lineage(table):
        raw = (snap.summary.additional_properties if snap.summary else {}).get(CHECKPOINT)
        if raw:
            props[CHECKPOINT] = raw
            break
    return props


def _props(table: Any, step: str, run_id: str, batch_id: str) -> dict[str, str]:
    return {**carried(table), RUN_ID: run_id, BATCH_ID: batch_id, MAINTENANCE: step}


def is_rewrite(snapshot: Any) -> bool:
    """A ``replace`` snapshot (a Delta ``optimize`` version, or a Delta table rewritten to widen a
    column): files rewritten, no row added or removed (incremental readers skip it)."""
    if snapshot.summary is None:
        return False
    if snapshot.summary.additional_properties.get(MAINTENANCE) == "widen":
        return True
    return snapshot.summary.operation is not None and str(snapshot.summary.operation.value) in ("replace", "optimize")


def unread_snapshots(table: Any, since: int) -> set[int]:
    """Snapshots of the lineage after `since` that added rows (not rewrites): what an incremental
    reader whose checkpoint is `since` has not read yet. All of them when `since` is not found."""
    out: set[int] = set()
    for snap in lineage(table):
        if snap.snapshot_id == since:
            break
        if not is_rewrite(snap):
            out.add(snap.snapshot_id)
    return out


# -- compaction ------------------------------------------------------------------------------------
Eligible = Callable[[int, int], bool]  # (snapshot id that added a file, its data sequence number) → may rewrite


def plan_compaction(table: Any, target_bytes: int, eligible: Eligible | None = None) -> CompactionPlan:
    """Bin-pack the small data files of each partition into bins of at most `target_bytes`.

    `eligible(snapshot_id, sequence)` says whether a file added then may be rewritten (Bronze:
    only files every Silver consumer has read, since a rewritten file is not new to them). Files
    of an older partition spec, and tables with delete files, are left alone.
    """
    from lakestack.storage import delta, delta_maintenance

    if delta.is_delta(table):  # storage/delta_maintenance.py
        return delta_maintenance.plan_compaction(table, target_bytes, eligible)  # type: ignore[no-any-return]
    from pyiceberg.manifest import DataFileContent

    snap = table.current_snapshot()
    if snap is None:
        return CompactionPlan((), 0, 0)
    spec_id = table.metadata.default_spec_id
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    sequences: dict[str, int] = {}
    for entry in _live_entries(table, snap):
        data_file = entry.data_file
        if data_file.content != DataFileContent.DATA:
            return CompactionPlan((), 0, 0, "the table has delete files (not written by lakestack)")
        small = data_file.file_size_in_bytes < target_bytes * SMALL_SHARE
        if (
            small
            and data_file.spec_id == spec_id
            and (eligible is None or eligible(entry.snapshot_id, int(entry.sequence_number or 0)))
        ):
            groups[tuple(data_file.partition)].append(data_file)
            sequences[data_file.file_path] = int(entry.sequence_number or 0)
    bins: list[tuple[Any, ...]] = []
    partitions = lone = 0
    for files in groups.values():
        packed = [b for b in _pack(files, target_bytes) if len(b) > 1]
        lone += len(files) == 1
        partitions += bool(packed)
        bins.extend(packed)
    kept = {f.file_path: sequences[f.file_path] for b in bins for f in b}
    return CompactionPlan(tuple(bins), partitions, lone, None, kept)


def _live_entries(table: Any, snap: Any) -> Iterator[Any]:
    for manifest in snap.manifests(table.io):
        yield from manifest.fetch_manifest_entry(table.io, discard_deleted=True)


def _pack(files: list[Any], target: int) -> list[tuple[Any, ...]]:
    """First-fit by commit order (oldest first), so a bin holds neighbouring commits' rows."""
    bins: list[list[Any]] = []
    sizes: list[int] = []
    for data_file in sorted(files, key=lambda f: f.file_path):
        size = data_file.file_size_in_bytes
        for i, used in enumerate(sizes):
            if used + size <= target:
                bins[i].append(data_file)
                sizes[i] += size
                break
        else:
            bins.append([data_file])
            sizes.append(size)
    return [tuple(b) for b in bins]


def compact(
    table: Any,
    target_bytes: int,
    *,
    run_id: str,
    batch_id: str,
    eligible: Eligible | None = None,
    on_bin: Callable[[int, int], None] | None = None,
) -> tuple[Any, Rewritten]:
    """Rewrite the planned bins in one ``replace`` snapshot; rows and their values are unchanged.

    A commit that lost a race (a stream appended meanwhile) is planned again from the fresh table.
    """
    from lakestack.storage import delta, delta_maintenance

    if delta.is_delta(table):  # storage/delta_maintenance.py
        return delta_maintenance.compact(table, target_bytes, run_id=run_id, batch_id=batch_id, eligible=eligible)  # type: ignore[no-any-return]
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException, ValidationException

    for attempt in range(RETRIES + 1):
        plan = plan_compaction(table, target_bytes, eligible)
        if not plan.bins:
            return table, Rewritten(0, 0, None)
        try:
            added = _commit_compaction(table, plan, _props(table, "compact", run_id, batch_id), on_bin)
            failpoint("maintain.compact.after_commit")
            table = table.refresh()
            return table, Rewritten(plan.files, added, table.current_snapshot().snapshot_id)
        except (CommitFailedException, CommitStateUnknownException, ValidationException) as exc:
            table = table.refresh()
            if has_batch(table, batch_id):
                return table, Rewritten(plan.files, -1, table.current_snapshot().snapshot_id)
            if attempt == RETRIES:
                raise CommitConflictError(f"{table.name()}: compaction kept losing to other commits ({exc})") from exc
            log.info("%s changed while compacting; planning again", table.name())
    raise AssertionError("unreachable")


def _commit_compaction(
    table: Any, plan: CompactionPlan, props: dict[str, str], on_bin: Callable[[int, int], None] | None
) -> int:
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.table import FileScanTask

    added = 0
    with table.transaction() as tx:
        producer = _replace_producer(tx, table.io, props)
        arrow = table.schema().as_arrow()
        for n, files in enumerate(plan.bins):
            scan = ArrowScan(tx.table_metadata, table.io, table.schema(), AlwaysTrue())
            data = scan.to_table([FileScanTask(f) for f in files]).cast(arrow)
            sequence = max(plan.sequences.get(f.file_path, 0) for f in files)
            for data_file in write_data_files(tx.table_metadata, table.io, data, producer.commit_uuid):
                producer.append_data_file(data_file)
                producer.sequences[data_file.file_path] = sequence
                added += 1
            for data_file in files:
                producer.delete_data_file(data_file)
            if on_bin is not None:
                on_bin(n + 1, len(plan.bins))
        failpoint("maintain.compact.after_write")  # new files written; the catalog commit is next
        producer.commit()
    return added


def _replace_producer(tx: Any, io: Any, props: dict[str, str]) -> Any:
    """pyiceberg's overwrite producer, committed as Iceberg's ``replace`` operation (pyiceberg 0.12
    has no public rewrite: apache/iceberg-python#3131), with the totals it computes.

    A new file keeps the newest data sequence number of the files it replaces (Java's
    `RewriteFiles.dataSequenceNumber`), so a reader that picks files by sequence number (Silver
    reading Bronze incrementally) does not take rewritten rows for new ones."""
    from pyiceberg.table.snapshots import Operation, Summary
    from pyiceberg.table.update.snapshot import _OverwriteFiles
    from pyiceberg.typedef import EMPTY_DICT

    class _Rewrite(_OverwriteFiles):
        sequences: dict[str, int]

        def new_manifest_writer(self, spec: Any) -> Any:
            return _SequencedWriter(super().new_manifest_writer(spec), self.sequences)

        def _summary(self, snapshot_properties: Any = EMPTY_DICT) -> Summary:
            summary = super()._summary(snapshot_properties)
            return Summary(Operation.REPLACE, **summary.additional_properties)

    producer = _Rewrite(operation=Operation.OVERWRITE, transaction=tx, io=io, snapshot_properties=props)
    producer.sequences = {}
    return producer


class _SequencedWriter:
    """A manifest writer that gives the files it adds an explicit data sequence number."""

    def __init__(self, writer: Any, sequences: dict[str, int]) -> None:
        self._writer, self._sequences = writer, sequences

    def __enter__(self) -> _SequencedWriter:
        self._writer.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._writer.__exit__(*exc)

    def add(self, entry: Any) -> _SequencedWriter:
        sequence = self._sequences.get(entry.data_file.file_path)
        if sequence is not None:
            entry.sequence_number = sequence
        self._writer.add(entry)
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


# -- manifests -------------------------------------------------------------------------------------
def manifests_to_rewrite(table: Any) -> tuple[int, int]:
    """(data manifests now, manifests after a rewrite); equal when a rewrite would gain nothing."""
    from lakestack.storage import delta

    if delta.is_delta(table):  # storage/delta_maintenance.py
        return 0, 0  # no manifests
    snap = table.current_snapshot()
    if snap is None:
        return 0, 0
    from pyiceberg.manifest import ManifestContent

    manifests = [m for m in snap.manifests(table.io) if m.content == ManifestContent.DATA]
    by_spec: dict[int, int] = defaultdict(int)
    for m in manifests:
        by_spec[m.partition_spec_id] += m.manifest_length
    after = sum(max(1, -(-size // MANIFEST_TARGET_BYTES)) for size in by_spec.values())
    dead = any(not (m.has_added_files() or m.has_existing_files()) for m in manifests)
    return len(manifests), after if (after < len(manifests) or dead) else len(manifests)


def rewrite_manifests(table: Any, *, run_id: str, batch_id: str) -> tuple[Any, Rewritten]:
    """Merge the current snapshot's data manifests per partition spec (about 8 MB each), in one
    ``replace`` snapshot. Entries keep the snapshot id that added them and their sequence numbers,
    so incremental readers and time travel see the same files as before."""
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

    for attempt in range(RETRIES + 1):
        before, after = manifests_to_rewrite(table)
        if after >= before:
            return table, Rewritten(0, 0, None)
        try:
            with table.transaction() as tx:
                producer = _ManifestRewrite.make(tx, table.io, _props(table, "manifests", run_id, batch_id))
                producer.commit()
            failpoint("maintain.manifests.after_commit")
            table = table.refresh()
            current = table.current_snapshot()
            return table, Rewritten(before, len(current.manifests(table.io)), current.snapshot_id)
        except (CommitFailedException, CommitStateUnknownException) as exc:
            table = table.refresh()
            if has_batch(table, batch_id):
                return table, Rewritten(before, -1, None)
            if attempt == RETRIES:
                raise CommitConflictError(f"{table.name()}: manifest rewrite kept losing to other commits") from exc
    raise AssertionError("unreachable")


class _ManifestRewrite:
    @staticmethod
    def make(tx: Any, io: Any, props: dict[str, str]) -> Any:
        from pyiceberg.manifest import ManifestContent
        from pyiceberg.table.snapshots import Operation, Summary
        from pyiceberg.table.update.snapshot import _SnapshotProducer
        from pyiceberg.typedef import EMPTY_DICT

        class Producer(_SnapshotProducer[Any]):
            def _deleted_entries(self) -> list[Any]:
                return []

            def _existing_manifests(self) -> list[Any]:
                parent_id = self._parent_snapshot_id
                metadata = self._transaction.table_metadata
                parent = metadata.snapshot_by_id(parent_id) if parent_id is not None else None
                manifests = parent.manifests(io) if parent is not None else []
                kept = [m for m in manifests if m.content != ManifestContent.DATA]
                by_spec: dict[int, list[Any]] = defaultdict(list)
                for m in manifests:
                    if m.content == ManifestContent.DATA:
                        by_spec[m.partition_spec_id].append(m)
                for spec_id, group in by_spec.items():
                    kept.extend(self._merged(spec_id, group))
                failpoint("maintain.manifests.after_write")  # new manifests written; the commit is next
                return kept

            def _merged(self, spec_id: int, group: list[Any]) -> list[Any]:
                chunks: list[list[Any]] = [[]]
                size = 0
                for manifest in group:
                    if size >= MANIFEST_TARGET_BYTES:
                        chunks.append([])
                        size = 0
                    chunks[-1].append(manifest)
                    size += manifest.manifest_length
                out = []
                for chunk in chunks:
                    with self.new_manifest_writer(self.spec(spec_id)) as writer:
                        for manifest in chunk:
                            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                                writer.existing(entry)
                    out.append(writer.to_manifest_file())
                return out

            def _summary(self, snapshot_properties: Any = EMPTY_DICT) -> Summary:
                summary = super()._summary(snapshot_properties)
                return Summary(Operation.REPLACE, **summary.additional_properties)

        return Producer(Operation.OVERWRITE, tx, io, snapshot_properties=props)


# -- history tables ----------------------------------------------------------------------------
def delete_older(table: Any, column: str, before: datetime, *, run_id: str, batch_id: str, dry_run: bool) -> int:
    """Delete the rows whose `column` is before `before` (a `_lakestack` history table); how many."""
    from lakestack.storage import delta, delta_maintenance

    if delta.is_delta(table):  # storage/delta_maintenance.py
        return delta_maintenance.delete_older(table, column, before, run_id=run_id, batch_id=batch_id, dry_run=dry_run)
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import LessThan

    predicate = LessThan(column, before.isoformat())  # type: ignore[call-arg, arg-type]  # pyiceberg's stubs
    old: int = table.scan(row_filter=predicate, selected_fields=(column,)).to_arrow().num_rows
    if not old or dry_run:
        return old
    failpoint("maintain.history.before_commit")
    try:
        table.delete(predicate, snapshot_properties=_props(table, "history", run_id, batch_id))
    except CommitFailedException as exc:  # a run recorded itself meanwhile: the next maintain deletes them
        log.info("%s changed while deleting old rows; left for the next run (%s)", table.name(), exc)
        return 0
    failpoint("maintain.history.after_commit")
    return old

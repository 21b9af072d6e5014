"""The lakehouse's tables: layer namespaces, table creation, and commits that carry checkpoints.

Every commit lakestack makes carries, in its snapshot summary, the run id, a batch id and (for
writers that read a source) the source checkpoint. A writer resumes from the checkpoints it finds
there, and checks for its batch id before retrying a commit whose outcome it does not know, so a
retry never duplicates data (see DESIGN.md, "exactly-once by construction").
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakestack.contracts.model import Contract
from lakestack.errors import CommitConflictError, StorageError
from lakestack.failpoints import failpoint
from lakestack.storage import delta
from lakestack.storage.checkpoints import BATCH_ID, CHECKPOINT, RUN_ID, Checkpoint, commit_properties
from lakestack.storage.datafiles import DataFileWriter, WriteTarget
from lakestack.storage.delta import is_delta
from lakestack.storage.evolution import conform
from lakestack.storage.schema import bronze_schema, day_partition, quarantine_schema

log = logging.getLogger(__name__)

NAMESPACES = ("bronze", "silver", "gold", "quarantine", "_lakestack")
__all__ = ["BATCH_ID", "CHECKPOINT", "RUN_ID"]  # the summary keys live in storage.checkpoints
CONTRACT = "lakestack.contract"
# Every lakestack table is committed with its own retries (`append`'s batch-id check and fences,
# Silver's recomputed MERGE), never blindly by pyiceberg: a blind retry re-applies a commit whose
# premise (the fence, the ledger, the files it read) a rival's commit just changed.
NO_AUTO_RETRY = "commit.retry.num-retries"
BASE_PROPERTIES = {"format-version": "2", NO_AUTO_RETRY: "0"}
BRONZE_PROPERTIES = {**BASE_PROPERTIES, "write.parquet.compression-codec": "zstd"}


@dataclass(frozen=True, slots=True)
class Commit:
    """A snapshot lakestack wrote, with what it carried."""

    snapshot_id: int
    timestamp_ms: int
    run_id: str | None
    batch_id: str | None
    checkpoint: dict[str, Any] | None
    added_records: int


class Warehouse:
    """Tables by layer over one pyiceberg catalog."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self._ensured = False

    def ensure_namespaces(self) -> None:
        if self._ensured:
            return
        existing = {ns[0] for ns in self.catalog.list_namespaces()}
        for ns in NAMESPACES:
            if ns not in existing:
                self._create_namespace(ns)
        self._ensured = True

    def _create_namespace(self, namespace: str) -> None:
        """Create a namespace; a rival process creating it at the same moment is not an error."""
        from pyiceberg.exceptions import NamespaceAlreadyExistsError
        from sqlalchemy.exc import IntegrityError

        try:
            self.catalog.create_namespace(namespace)
        except (NamespaceAlreadyExistsError, IntegrityError):
            # SqlCatalog checks, then inserts: two first starts both pass the check and one insert
            # fails on the unique key. Either way the namespace must exist now.
            if not self.catalog.namespace_exists(namespace):
                raise
            log.debug("namespace %s was created by another process", namespace)

    def exists(self, identifier: str) -> bool:
        return bool(self.catalog.table_exists(identifier))

    def load(self, identifier: str) -> Any:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table(identifier)
        except NoSuchTableError:
            raise StorageError(f"table {identifier} does not exist") from None

    def drop(self, identifier: str) -> None:
        """Remove the table from the catalog; its files stay (it can be registered again)."""
        self.catalog.drop_table(identifier)

    def tables(self) -> list[str]:
        out = []
        for ns in NAMESPACES:
            if (ns,) in {tuple(n) for n in self.catalog.list_namespaces()}:
                out += [".".join(t) for t in self.catalog.list_tables(ns)]
        return sorted(out)

    def bronze_table(self, contract: Contract) -> Any:
        """`bronze.<source>`, created from the contract on first use, partitioned by ingestion day."""
        self.ensure_namespaces()
        identifier = f"bronze.{contract.source}"
        if self.exists(identifier):
            return self._open(identifier)
        schema = bronze_schema(contract)
        props = {CONTRACT: contract.ref, **BRONZE_PROPERTIES}
        props.update({f"lakestack.pii.{k}": v for k, v in contract.pii_columns().items()})
        return self._create(identifier, schema, day_partition(schema, "_ingested_at"), props)

    def silver_table(self, model: Any) -> Any:
        """`silver.<name>`: the contract's columns plus lineage, partitioned by day of the model's time column."""
        from lakestack.storage.schema import SILVER_COLUMNS, contract_schema

        self.ensure_namespaces()
        identifier = f"silver.{model.name}"
        if self.exists(identifier):
            return self._open(identifier)
        schema = contract_schema(model.contract, SILVER_COLUMNS)
        props = {
            CONTRACT: model.contract.ref,
            **BRONZE_PROPERTIES,
            "lakestack.key": ",".join(model.key),
        }
        props.update({f"lakestack.pii.{k}": v for k, v in model.contract.pii_columns().items()})
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC

        spec = day_partition(schema, model.partition_by) if model.partition_by else UNPARTITIONED_PARTITION_SPEC
        return self._create(identifier, schema, spec, props)

    def gold_table(
        self,
        model: Any,
        schema: pa.Schema,
        *,
        replace: bool = False,
        pii: dict[str, str] | None = None,
        granularity: str = "day",
    ) -> Any:
        """`gold.<name>` with the columns a model's SELECT returns; partitioned by `granularity`
        (day, month or year of its partition_by column) when it has partition_by."""
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
        from pyiceberg.schema import Schema

        self.ensure_namespaces()
        identifier = model.identifier
        if self.exists(identifier):
            if not replace:
                return self._open(identifier)
            self.catalog.drop_table(identifier)  # the model's columns changed: a full rebuild starts over
        settings = model.settings
        props = {**BRONZE_PROPERTIES, "lakestack.model": model.name}
        props.update(
            {f"lakestack.{k}": v for k, v in (("description", settings.description), ("owner", settings.owner)) if v}
        )
        props.update({f"lakestack.pii.{k}": v for k, v in (pii or {}).items()})
        table = self._create(identifier, schema, UNPARTITIONED_PARTITION_SPEC, props)
        if settings.partition_by:
            iceberg: Schema = table.schema()
            with table.update_spec() as spec:
                from lakestack.storage.partitioning import transform

                spec.add_field(
                    iceberg.find_field(settings.partition_by).name,
                    transform(granularity),  # type: ignore[arg-type]
                    f"{settings.partition_by}_{granularity}",
                )
            table = self.load(identifier)
        return table

    def system_table(self, identifier: str, schema: pa.Schema) -> Any:
        """A `_lakestack.*` table (run records, check results), created on first use."""
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC

        self.ensure_namespaces()
        if self.exists(identifier):
            return self._open(identifier)
        return self._create(identifier, schema, UNPARTITIONED_PARTITION_SPEC, dict(BASE_PROPERTIES))

    def quarantine_table(self, source: str) -> Any:
        """`quarantine.<source>`: rejected records and files with every error."""
        self.ensure_namespaces()
        identifier = f"quarantine.{source}"
        if self.exists(identifier):
            return self._open(identifier)
        schema = quarantine_schema()
        return self._create(identifier, schema, day_partition(schema, "_ingested_at"), dict(BASE_PROPERTIES))

    def _open(self, identifier: str) -> Any:
        """Load a table, turning off pyiceberg's blind commit retry on one an older lakestack made."""
        table = self.load(identifier)
        if table.metadata.properties.get(NO_AUTO_RETRY) == "0":
            return table
        from pyiceberg.exceptions import CommitFailedException

        try:
            with table.transaction() as tx:
                tx.set_properties({NO_AUTO_RETRY: "0"})
        except CommitFailedException:  # another writer committed first; the next open sets it
            log.info("%s: could not set %s yet", identifier, NO_AUTO_RETRY)
        return self.load(identifier)

    def _create(self, identifier: str, schema: Any, spec: Any, props: dict[str, str]) -> Any:
        from pyiceberg.exceptions import TableAlreadyExistsError

        try:
            return self.catalog.create_table(identifier, schema=schema, partition_spec=spec, properties=props)
        except TableAlreadyExistsError:  # another writer created it first
            return self._open(identifier)


def history(table: Any, *, newest_first: bool = False) -> Iterator[Commit]:
    """The commits of a table's lineage (its current snapshot and that one's ancestors), oldest
    first (or newest first), with what lakestack stored in them. Snapshots a rollback left are not
    part of it: their checkpoints and batch ids no longer describe what the table holds."""
    from lakestack.storage.snapshots import lineage

    newest = list(lineage(table))
    for snap in newest if newest_first else reversed(newest):
        summary = snap.summary.additional_properties if snap.summary else {}
        raw = summary.get(CHECKPOINT)
        yield Commit(
            snapshot_id=snap.snapshot_id,
            timestamp_ms=snap.timestamp_ms,
            run_id=summary.get(RUN_ID),
            batch_id=summary.get(BATCH_ID),
            checkpoint=json.loads(raw) if raw else None,
            added_records=int(summary.get("added-records", 0)),
        )


def has_batch(table: Any, batch_id: str) -> bool:
    return any(c.batch_id == batch_id for c in history(table))


# Makes one try's data and checkpoint from the table as it then is; None: nothing is left to commit
# (a rival's commit already holds all of it), so `append` commits nothing.
Attempt = Callable[[Any], tuple[pa.Table, Checkpoint | None] | None]


def append(
    table: Any,
    data: pa.Table | None,
    *,
    run_id: str,
    batch_id: str,
    checkpoint: Checkpoint | None = None,
    retries: int = 8,
    attempt: Attempt | None = None,
    patience_s: float = 60.0,
) -> Any:
    """Append `data` in one snapshot that carries the run id, batch id and checkpoint.

    A conflicting or unknown-outcome commit is retried from a fresh read of the table, unless the
    table already has a snapshot with this batch id (then the earlier attempt did land). With
    `attempt`, the data and checkpoint are made before each try from the table as it then is; on
    a table whose own commit retries are off (`commit.retry.num-retries` 0, as Bronze has), a
    commit succeeds only if nothing was committed since, so what `attempt` read still holds.

    Gives up (CommitConflictError) after `retries + 1` tries *and* `patience_s` seconds: with
    several writers committing back to back, nine tries (about 7 s of backoff) were lost in a row
    now and then (benchmarks/catalog_commits.py, docs/scaling.md); backoff stays capped at 2 s.
    """
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

    started = time.monotonic()
    for n in itertools.count():
        if attempt is not None:
            made = attempt(table)
            if made is None:
                return table
            data, checkpoint = made
        assert data is not None, "append needs data or an attempt"
        try:
            props = commit_properties(table, run_id, batch_id, checkpoint)  # the table's state carried forward
            if is_delta(table):
                failpoint("storage.append.after_write")  # delta-rs writes the files and commits in one call
                table = delta.append(table, conform(data, table.schema().as_arrow()), props)
            else:
                _fast_append(table, conform(data, table.schema().as_arrow()), props)
            failpoint("storage.append.after_commit")
            return table
        except (CommitFailedException, CommitStateUnknownException, CommitConflictError) as exc:
            table = table.refresh()
            if has_batch(table, batch_id):
                log.info("batch %s was committed by an earlier attempt", batch_id)
                return table
            waited = time.monotonic() - started
            if n >= retries and waited >= patience_s:
                raise CommitConflictError(
                    f"could not commit to {table.name()} after {n + 1} attempts in {waited:.0f} s: {exc}"
                ) from exc
            time.sleep(min(2.0, 0.05 * 2 ** min(n, 6)) * random.uniform(0.5, 1.5))  # jitter: rivals fall out of step
    raise AssertionError("unreachable")


def _fast_append(table: Any, data: pa.Table, props: dict[str, str]) -> None:
    """pyiceberg's append, with the data files written by `write_data_files` (one sort instead of a
    filter per partition; a batch of one ingestion day, as Bronze's always is, is not even sorted)."""
    with table.transaction() as tx, tx.update_snapshot(snapshot_properties=props).fast_append() as update:
        for data_file in write_data_files(tx.table_metadata, table.io, data, update.commit_uuid):
            update.append_data_file(data_file)
        failpoint("storage.append.after_write")  # data files written; the catalog commit is next


def replace_files(
    table: Any,
    remove: list[Any],
    data: pa.Table | DataFileWriter,
    *,
    run_id: str,
    batch_id: str,
    checkpoint: Checkpoint | None = None,
    respec: Callable[[Any], None] | None = None,
) -> Any:
    """In one snapshot, drop the given data files and add `data` (written as new files).

    `data` is an Arrow table, or a writer an engine made for a query's result
    (`Engine.writer(query)`): it is called inside the transaction and its files are committed.

    `respec(transaction)`, when given, changes the partition spec in the same commit, before the
    new files are written (Gold choosing a coarser granularity on a full rebuild).

    This is the Silver MERGE commit: the caller read exactly the files it removes, so a
    concurrent change to them makes the commit fail (CommitConflictError) instead of losing rows;
    the caller re-reads and tries again.
    """
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException, ValidationException

    if isinstance(data, pa.Table):
        data = conform(data, table.schema().as_arrow())  # a column a newer contract dropped is null
    if is_delta(table):
        return _replace_delta(table, remove, data, run_id, batch_id, checkpoint, respec)
    try:
        with table.transaction() as tx:
            if respec is not None:
                respec(tx)
            props = commit_properties(table, run_id, batch_id, checkpoint)  # the table's state carried forward
            update = tx.update_snapshot(snapshot_properties=props)
            with update.overwrite() as overwrite:
                for data_file in remove:
                    overwrite.delete_data_file(data_file)
                if isinstance(data, pa.Table):
                    written = write_data_files(tx.table_metadata, table.io, data, overwrite.commit_uuid)
                else:
                    target = WriteTarget(
                        tx.table_metadata, table.io, overwrite.commit_uuid, tx.table_metadata.schema().as_arrow()
                    )
                    written = data(target)
                for data_file in written:
                    overwrite.append_data_file(data_file)
                failpoint("storage.replace.after_write")  # data files written; the catalog commit is next
    except (CommitFailedException, CommitStateUnknownException, ValidationException) as exc:
        # pyiceberg retries a conflicting commit itself and refuses (ValidationException) when the
        # files this merge read were changed by the other writer: the merge must be recomputed.
        table = table.refresh()
        if has_batch(table, batch_id):
            return table
        raise CommitConflictError(f"{table.name()} changed while merging; re-read and retry ({exc})") from exc
    failpoint("storage.replace.after_commit")
    return table


def _replace_delta(
    table: Any,
    remove: list[Any],
    data: pa.Table | DataFileWriter,
    run_id: str,
    batch_id: str,
    checkpoint: Any,
    respec: Any,
) -> Any:
    """`replace_files` on a Delta table (`storage.delta.replace`: whole partitions by predicate)."""
    if not isinstance(data, pa.Table):  # an engine's writer: it hands back the rows (`delta.Staged`)
        schema = table.schema().as_arrow()
        staged = data(WriteTarget(delta.Staged(schema.empty_table()), None, None, schema))
        data = pa.concat_tables([s.data for s in staged]) if staged else schema.empty_table()
    props = commit_properties(table, run_id, batch_id, checkpoint)
    failpoint("storage.replace.after_write")
    try:
        table = delta.replace(table, [f.file_path for f in remove], data, props, respec)
    except CommitConflictError as exc:
        table = table.refresh()
        if has_batch(table, batch_id):
            return table
        raise CommitConflictError(f"{table.name()} changed while merging; re-read and retry ({exc})") from exc
    failpoint("storage.replace.after_commit")
    return table


_TASK_IDS: OrderedDict[str, itertools.count[int]] = OrderedDict()  # per write uuid: the next file's task id


def task_ids(write_uuid: Any) -> itertools.count[int]:
    """The task ids of one commit's files. A file is named `00000-<task id>-<write uuid>` inside its
    partition folder, and a commit writes data in several calls (one per rewritten file, group or
    block): each call starting at 0 gave two files of one partition the same name, the second
    overwriting the first while the commit listed both."""
    key = str(write_uuid)
    ids = _TASK_IDS.get(key)
    if ids is None:
        ids = _TASK_IDS[key] = itertools.count(0)
        while len(_TASK_IDS) > 256:  # commits long done
            _TASK_IDS.popitem(last=False)
    return ids


def write_data_files(metadata: Any, io: Any, data: pa.Table, write_uuid: Any) -> list[Any]:
    """Parquet data files for `data`, split by partition; the files of one `write_uuid` never share
    a name, however many calls write them.

    pyiceberg filters the whole table once per partition value. For the common lakestack layout, one
    day-partitioned column, the rows are split with one sort instead and every day becomes write
    tasks directly (pyiceberg's writer runs them in parallel). This uses pyiceberg's write internals
    (pinned below 0.13); any other partition spec takes pyiceberg's public path.
    """

    import pyarrow.compute as pc
    from pyiceberg.io.pyarrow import _dataframe_to_data_files
    from pyiceberg.transforms import DayTransform

    if isinstance(metadata, delta.Staged):  # a Delta commit: delta-rs writes the files (`_replace_delta`)
        return [delta.Staged(data)]
    if not data.num_rows:
        return []
    spec = metadata.spec()
    column = metadata.schema().find_column_name(spec.fields[0].source_id) if len(spec.fields) == 1 else None
    days = pc.cast(data[column], pa.date32()) if column else None
    if days is None or days.null_count or not isinstance(spec.fields[0].transform, DayTransform):
        return list(_dataframe_to_data_files(metadata, data, io, write_uuid=write_uuid, counter=task_ids(write_uuid)))
    bounds = pc.min_max(days)
    if bounds["min"] == bounds["max"]:  # one day: no sort, no copy
        return _write_days(metadata, io, data, write_uuid, [(0, data.num_rows, _epoch_day(bounds["min"]))])
    order = pc.sort_indices(days)
    data, days = data.take(order), days.take(order)
    runs = pc.run_end_encode(days.combine_chunks())
    ends = runs.run_ends.to_pylist()
    values = runs.values.cast(pa.int32()).to_pylist()  # days since 1970-01-01, the day transform's value
    return _write_days(metadata, io, data, write_uuid, list(zip([0, *ends[:-1]], ends, values, strict=True)))


def _epoch_day(day: pa.Scalar) -> int:
    value: int = day.cast(pa.int32()).as_py()  # days since 1970-01-01, the day transform's value
    return value


def _write_days(metadata: Any, io: Any, data: pa.Table, write_uuid: Any, runs: list[tuple[int, int, int]]) -> list[Any]:

    from pyiceberg.io.pyarrow import bin_pack_arrow_table, pyarrow_to_schema, write_file
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
    from pyiceberg.table import TableProperties, WriteTask
    from pyiceberg.utils.properties import property_as_int

    spec, schema = metadata.spec(), metadata.schema()
    target: int = property_as_int(  # type: ignore[assignment]  # has a default, never None
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    task_schema = pyarrow_to_schema(
        data.schema, name_mapping=schema.name_mapping, format_version=metadata.format_version
    )
    counter = task_ids(write_uuid)
    tasks = (
        WriteTask(
            write_uuid=write_uuid,
            task_id=next(counter),
            record_batches=batches,
            schema=task_schema,
            partition_key=PartitionKey(
                field_values=[PartitionFieldValue(field=spec.fields[0], value=day)], partition_spec=spec, schema=schema
            ),
        )
        for start, end, day in runs
        for batches in bin_pack_arrow_table(data.slice(start, end - start), target)
    )
    return list(write_file(io=io, table_metadata=metadata, tasks=tasks))


def files_added_after(table: Any, snapshot_id: int | None, sequence: int | None = None) -> tuple[list[str], int | None]:
    """Data files of the current snapshot added after `snapshot_id` (all when None), and the current id.

    Valid for append-only tables such as Bronze: every file added later is new data. A file is
    newer when its data sequence number is above the snapshot's (`sequence`, when the caller kept
    it), so this holds after that snapshot and those before the current one have been expired.
    """
    if is_delta(table):
        return delta.files_added_after(table, snapshot_id)
    current = table.current_snapshot()
    if current is None:
        return [], None
    since = _sequence_of(table, snapshot_id, sequence)
    paths = []
    for manifest in current.manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            if since is None or (entry.sequence_number or 0) > since:
                paths.append(entry.data_file.file_path)
    return paths, current.snapshot_id


def _sequence_of(table: Any, snapshot_id: int | None, sequence: int | None) -> int | None:
    """The sequence number of `snapshot_id`; None (read every file) when there is none to go by."""
    if snapshot_id is None or sequence is not None:
        return sequence if snapshot_id is not None else None
    snap = table.snapshot_by_id(snapshot_id)
    if snap is not None:
        return int(snap.sequence_number or 0)
    log.warning(
        "%s: snapshot %s is expired and its sequence number was not kept; every file is read again",
        table.name(),
        snapshot_id,
    )
    return None


def partitions_changed(table: Any, since: int) -> set[int] | None:
    """Days (since 1970-01-01) whose partitions' files changed after snapshot `since`; every day of
    a changed month or year partition (`storage.partitioning`).

    None when a changed file is not partitioned by one day, month or year transform (then any
    change means "all").
    """
    from lakestack.storage.partitioning import days_of, granularity_of

    if granularity_of(table.spec()) is None:
        return None
    specs = table.specs()
    before = {t.file.file_path: t.file for t in table.scan(snapshot_id=since).plan_files()}
    now = {t.file.file_path: t.file for t in table.scan().plan_files()}
    changed = [f for p, f in now.items() if p not in before] + [f for p, f in before.items() if p not in now]
    days: set[int] = set()
    for data_file in changed:
        granularity = granularity_of(specs[data_file.spec_id])
        if granularity is None:
            return None
        days.update(days_of(data_file.partition[0], granularity))
    return days


def last_checkpoint(table: Any) -> dict[str, Any] | None:
    """The per-commit checkpoint of the newest commit that carries one. Superseded by
    `storage.checkpoints.read_checkpoint` (typed, and exact after expiry); kept for callers not yet moved."""
    for commit in reversed(list(history(table))):
        if commit.checkpoint is not None:
            return commit.checkpoint
    return None

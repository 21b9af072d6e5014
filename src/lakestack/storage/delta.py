"""Delta Lake tables (delta-rs, the `deltalake` package) behind the same storage seam as Iceberg (ADR 0035).

A `DeltaWarehouse` keeps each table in its own folder, `<warehouse>/<namespace>/<table>/` with its
`_delta_log/` (a local folder or an S3 prefix); there is no catalog. A loaded table is a
`DeltaLakeTable`: it answers the part of pyiceberg's `Table` that lakestack's storage, pipeline and
engines read (the current snapshot and its lineage, the snapshot summaries that carry checkpoints,
the schema, the partition spec, a scan planned to Parquet files), so `storage.checkpoints`,
`warehouse.history` and the engines read a Delta table as they read an Iceberg one. Writes go
through `append` and `replace` here, which `storage.warehouse.append` / `replace_files` route to.

How Iceberg's terms map (see the ADR for what differs):

- a snapshot is a table version; its id and its sequence number are the version (the empty
  version 0 that creates the table is no snapshot: a new table has none, as in Iceberg);
- the snapshot summary is the version's `commitInfo`: lakestack's keys (`lakestack.run-id`,
  `lakestack.batch-id`, `lakestack.checkpoint`, `lakestack.state`) are custom commit metadata;
- every commit also records an app transaction (`txn`, app id `lakestack`, version = the table
  version it creates), so a Delta reader sees which version lakestack last wrote;
- commits are compare-and-swap (`max_commit_retries=0`): a commit fails if any other commit
  landed since the table was read, as Iceberg tables with `commit.retry.num-retries` 0 do;
- the checkpoint side files (file ledgers, folded HTTP batch ids) live in `_lakestack/` beside
  `_delta_log/`, written through pyiceberg's `PyArrowFileIO` (a plain file IO, local or S3).

- partitioning by Iceberg's day/month/year transforms is a derived int column (`Partitioning`);
  replacing whole partitions is an overwrite with a predicate on it (`replace`).

On S3 (`storage_options_for`), commits are conditional puts (compare-and-swap without a lock table).

Schema evolution (added columns), rollback (restore) and maintenance are in `evolve`, `rollback` and
`storage/delta_maintenance.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from lakestack.errors import CommitConflictError, MissingExtraError, StorageError
from lakestack.storage.partitioning import GRANULARITIES, Granularity

log = logging.getLogger(__name__)

ROLLBACK = "lakestack.rollback"  # as storage/snapshots.py names it
APP_ID = "lakestack"  # the app id of the `txn` action every lakestack commit records
SIDE_FOLDER = "_lakestack"  # checkpoint side files, beside `_delta_log/`


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError:
        raise MissingExtraError("Delta Lake tables (format: delta)", "delta") from None
    return deltalake


# -- what a loaded Delta table looks like to lakestack ---------------------------------------------
@dataclass(frozen=True, slots=True)
class Operation:
    """The commit's operation as Delta names it (`WRITE`, `MERGE`, `OPTIMIZE`), lower case."""

    value: str


@dataclass(frozen=True, slots=True)
class Summary:
    """A version's `commitInfo` as a snapshot summary: lakestack's keys and Iceberg-named figures."""

    operation: Operation | None
    additional_properties: dict[str, str]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """When a version became current (Delta never moves back: a restore is a new version)."""

    snapshot_id: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One table version as an Iceberg snapshot."""

    snapshot_id: int
    parent_snapshot_id: int | None
    timestamp_ms: int
    summary: Summary

    @property
    def sequence_number(self) -> int:
        return self.snapshot_id


@dataclass(frozen=True, slots=True)
class DataFile:
    """An `add` action as a planned data file (unpartitioned: no partition values)."""

    file_path: str
    record_count: int
    file_size_in_bytes: int
    partition: tuple[Any, ...] = ()
    spec_id: int = 0


@dataclass(frozen=True, slots=True)
class Task:
    file: DataFile
    delete_files: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Metadata:
    """The parts of Iceberg's table metadata lakestack reads."""

    location: str
    properties: dict[str, str]
    snapshots: list[Snapshot]
    current_snapshot_id: int | None
    schemas: list[Any] = field(default_factory=list)

    @property
    def snapshot_log(self) -> list[LogEntry]:
        return [LogEntry(s.snapshot_id, s.timestamp_ms) for s in self.snapshots]

    def snapshot_by_id(self, snapshot_id: int) -> Snapshot | None:
        return next((s for s in self.snapshots if s.snapshot_id == snapshot_id), None)


@dataclass(frozen=True, slots=True)
class Partitioning:
    """A Delta table partitioned by Iceberg's day, month or year transform of one column: Delta
    partitions by identity only, so the transform's value (days, months or years since 1970, an
    int) is a derived column `_<column>_<granularity>` that storage fills before each write.
    delta-rs keeps partition columns out of the Parquet files: engines reading them see the table's
    own columns; Delta readers see the derived one too."""

    column: str
    granularity: Granularity

    @property
    def name(self) -> str:
        return f"_{self.column}_{self.granularity}"

    @classmethod
    def of(cls, partition_columns: list[str]) -> Partitioning | None:
        if len(partition_columns) != 1:
            return None
        name = partition_columns[0]
        for granularity in GRANULARITIES:
            if name.startswith("_") and name.endswith(f"_{granularity}"):
                return cls(name[1 : -len(granularity) - 1], granularity)
        return None

    def values(self, data: pa.Table) -> pa.Array:
        from lakestack.storage.partitioning import transform_values

        return transform_values(data[self.column], self.granularity)


class DeltaLakeTable:
    """A Delta table at one version, read like a pyiceberg `Table` (see the module doc)."""

    def __init__(
        self,
        identifier: str,
        uri: str,
        storage_options: dict[str, str] | None = None,
        fileio: dict[str, str] | None = None,
    ) -> None:
        self.identifier = identifier
        self.uri = uri
        self.storage_options = storage_options
        self.fileio = fileio  # pyiceberg FileIO properties (S3) for the checkpoint side files
        self.delta = _deltalake().DeltaTable(uri, storage_options=storage_options)
        self._metadata: Metadata | None = None
        self._schema: Any = None

    # identity and state
    def name(self) -> tuple[str, ...]:
        return tuple(self.identifier.split("."))

    @property
    def version(self) -> int:
        return int(self.delta.version())

    def refresh(self) -> DeltaLakeTable:
        """Read the newest version (in place, as pyiceberg's `refresh` does)."""
        self.delta = _deltalake().DeltaTable(self.uri, storage_options=self.storage_options)
        self._metadata = None
        self._schema = None
        return self

    @property
    def properties(self) -> dict[str, str]:
        return {k: v for k, v in self.delta.metadata().configuration.items() if v is not None}

    @property
    def metadata_location(self) -> str:
        return f"{self.uri.rstrip('/')}/_delta_log/{self.version:020d}.json"

    def location(self) -> str:
        return self.uri

    @property
    def side_files_location(self) -> str:
        """Where checkpoint side files go: a folder Delta's vacuum leaves alone (its name starts with `_`)."""
        return f"{self.uri.rstrip('/')}/{SIDE_FOLDER}"

    @property
    def metadata(self) -> Metadata:
        if self._metadata is None:
            log = self.delta.history()
            if any(int(c["version"]) > self.version or int(c["version"]) < 0 for c in log):
                # a table loaded at an older version: delta-rs numbers the newest commits from it
                latest = _deltalake().DeltaTable(self.uri, storage_options=self.storage_options)
                log = [c for c in latest.history() if int(c["version"]) <= self.version]
            snapshots = _snapshots(log)
            current = snapshots[-1].snapshot_id if snapshots and snapshots[-1].snapshot_id == self.version else None
            if current is not None:  # the current version's totals, as Iceberg's summary has them
                tasks = self.scan().plan_files()
                totals = {
                    "total-records": str(sum(t.file.record_count for t in tasks)),
                    "total-data-files": str(len(tasks)),
                }
                last = snapshots[-1]
                snapshots[-1] = Snapshot(
                    last.snapshot_id,
                    last.parent_snapshot_id,
                    last.timestamp_ms,
                    Summary(last.summary.operation, {**last.summary.additional_properties, **totals}),
                )
            properties = self.properties
            rollbacks = [s.summary.additional_properties.get(ROLLBACK) for s in snapshots]
            if any(rollbacks):  # the newest rollback, as Iceberg keeps it in a table property
                properties[ROLLBACK] = next(r for r in reversed(rollbacks) if r)
            self._metadata = Metadata(self.uri, properties, snapshots, current, [self.schema()])
        return self._metadata

    def snapshots(self) -> list[Snapshot]:
        return list(self.metadata.snapshots)

    def current_snapshot(self) -> Snapshot | None:
        current = self.metadata.current_snapshot_id
        return self.metadata.snapshot_by_id(current) if current is not None else None

    def snapshot_by_id(self, snapshot_id: int) -> Snapshot | None:
        return self.metadata.snapshot_by_id(snapshot_id)

    @property
    def io(self) -> Any:
        """A plain file IO for checkpoint side files (`storage.checkpoint_files`)."""
        from pyiceberg.io.pyarrow import PyArrowFileIO

        return PyArrowFileIO(dict(self.fileio or {}))

    # schema and partitioning
    @property
    def partitioning(self) -> Partitioning | None:
        """The table's date partitioning: its derived partition column, read from the Delta metadata."""
        return Partitioning.of(self.delta.metadata().partition_columns)

    def arrow_schema(self) -> pa.Schema:
        """The table's own columns (without the derived partition column)."""
        schema = pa.schema(self.delta.schema().to_arrow())
        part = self.partitioning
        return schema.remove(schema.get_field_index(part.name)) if part is not None else schema

    def schema(self) -> Any:
        """The table's columns as a pyiceberg `Schema` (fresh field ids, in column order)."""
        if self._schema is None:
            from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids
            from pyiceberg.schema import assign_fresh_schema_ids

            self._schema = assign_fresh_schema_ids(_pyarrow_to_schema_without_ids(self.arrow_schema()))
        return self._schema

    def spec(self) -> Any:
        """The Iceberg partition spec the Delta partitioning stands for (one day, month or year field)."""
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec

        from lakestack.storage.partitioning import transform

        part = self.partitioning
        if part is None:
            return UNPARTITIONED_PARTITION_SPEC
        source = self.schema().find_field(part.column).field_id
        field = PartitionField(source, 1000, transform(part.granularity), f"{part.column}_{part.granularity}")
        return PartitionSpec(field, spec_id=0)

    def specs(self) -> dict[int, Any]:
        return {0: self.spec()}

    # reading
    def scan(
        self, snapshot_id: int | None = None, row_filter: Any = None, selected_fields: tuple[str, ...] = ("*",)
    ) -> DeltaScan:
        return DeltaScan(self, snapshot_id, row_filter, selected_fields)

    def at(self, version: int) -> Any:
        """The `deltalake.DeltaTable` at `version`."""
        try:
            return _deltalake().DeltaTable(self.uri, version=version, storage_options=self.storage_options)
        except Exception as exc:  # a version whose log files were cleaned up
            raise StorageError(f"{self.identifier}: version {version} cannot be read ({_first_line(exc)})") from None

    def file_paths(self, version: int | None = None) -> list[str]:
        return [t.file.file_path for t in self.scan(snapshot_id=version).plan_files()]


class DeltaScan:
    """A planned read of a Delta table at a version: its Parquet files (no delete files: lakestack
    writes no deletion vectors), or Arrow."""

    def __init__(self, table: DeltaLakeTable, version: int | None, row_filter: Any, selected: tuple[str, ...]) -> None:
        self.table = table
        self.version = version
        self.row_filter = row_filter
        self.selected = selected

    def _delta(self) -> Any:
        return self.table.delta if self.version is None else self.table.at(self.version)

    def plan_files(self) -> list[Task]:
        delta = self._delta()
        if delta.deletion_vectors is not None and _has_deletion_vectors(delta):
            raise StorageError(f"{self.table.identifier}: deletion vectors are not read by lakestack yet")
        actions = pa.table(delta.get_add_actions(flatten=True))
        root = self.table.uri.rstrip("/")
        part = Partitioning.of(delta.metadata().partition_columns)
        values = actions[f"partition.{part.name}"].to_pylist() if part else [None] * actions.num_rows
        return [
            Task(DataFile(_absolute(root, path), int(rows or 0), int(size), (int(v) if v is not None else None,)))
            for path, rows, size, v in zip(
                actions["path"].to_pylist(),
                actions["num_records"].to_pylist(),
                actions["size_bytes"].to_pylist(),
                values,
                strict=True,
            )
        ]

    def projection(self) -> Any:
        return self.table.schema()

    def to_arrow(self) -> pa.Table:
        schema = self.table.arrow_schema()
        if not self.plan_files():
            data = schema.empty_table()
        else:
            data = pa.table(self._delta().to_pyarrow_table(columns=schema.names)).cast(schema)
        if self.row_filter is not None:
            from pyiceberg.expressions.visitors import bind
            from pyiceberg.io.pyarrow import expression_to_pyarrow

            data = data.filter(expression_to_pyarrow(bind(self.table.schema(), self.row_filter, case_sensitive=True)))
        if self.selected != ("*",):
            data = data.select(list(self.selected))
        return data

    def to_arrow_batch_reader(self) -> pa.RecordBatchReader:
        return self.to_arrow().to_reader()


def _has_deletion_vectors(delta: Any) -> bool:
    features = delta.protocol().reader_features or []
    return "deletionVectors" in features


def _absolute(root: str, path: str) -> str:
    if "://" in path:
        return path
    if root.startswith("/"):
        root = Path(root).as_uri()
    return f"{root}/{path}"


def _snapshots(history: list[dict[str, Any]]) -> list[Snapshot]:
    """The table's versions as snapshots, oldest first; the empty version that creates the table is none.
    A restore's parent is the version it restored, so (as after an Iceberg rollback) the versions
    between leave the lineage that checkpoints and batch ids are read from; time travel still reads them."""
    out: list[Snapshot] = []
    for commit in sorted(history, key=lambda c: int(c["version"])):
        version = int(commit["version"])
        metrics = commit.get("operationMetrics") or {}
        if version == 0 and commit.get("operation") == "CREATE TABLE" and not metrics.get("num_added_files"):
            continue
        props = {k: str(v) for k, v in commit.items() if k.startswith(("lakestack.", "erase."))}
        for ours, theirs in (("added-records", "num_added_rows"), ("deleted-records", "num_deleted_rows")):
            if metrics.get(theirs) is not None:
                props[ours] = str(metrics[theirs])
        parent = out[-1].snapshot_id if out else None
        if commit.get("operation") == "RESTORE":  # the versions after the restored one leave the lineage
            restored = int((commit.get("operationParameters") or {}).get("version", -1))
            parent = restored if any(s.snapshot_id == restored for s in out) else None
        operation = Operation(str(commit["operation"]).lower()) if commit.get("operation") else None
        out.append(Snapshot(version, parent, int(commit["timestamp"]), Summary(operation, props)))
    return out


# -- the warehouse ---------------------------------------------------------------------------------
class DeltaWarehouse:
    """Tables by layer as Delta tables in folders under one warehouse location (no catalog)."""

    format = "delta"

    def __init__(
        self,
        location: str,
        storage_options: dict[str, str] | None = None,
        *,
        fileio: dict[str, str] | None = None,
        filesystem: Any = None,
    ) -> None:
        """`location`: a local folder (`file://` URI) or `s3://bucket/prefix`; for S3, delta-rs's
        `storage_options` (`storage_options_for`), pyiceberg FileIO properties for the checkpoint
        side files, and a pyarrow filesystem to list the tables (`storage/filesystems.py`)."""
        _deltalake()
        self.location = location.rstrip("/")
        self.storage_options = storage_options
        self.fileio = fileio
        self.filesystem = filesystem
        self.remote = self.location.startswith("s3://")

    def ensure_namespaces(self) -> None:
        if self.remote:
            return  # an object store has no folders to make
        for ns in _namespaces():
            self._root().joinpath(ns).mkdir(parents=True, exist_ok=True)

    def _root(self) -> Path:
        return Path(unquote(urlsplit(self.location).path)) if "://" in self.location else Path(self.location)

    def uri(self, identifier: str) -> str:
        namespace, _, name = identifier.partition(".")
        if self.remote:
            return f"{self.location}/{namespace}/{name}"
        return (self._root() / namespace / name).as_uri()

    def exists(self, identifier: str) -> bool:
        return bool(_deltalake().DeltaTable.is_deltatable(self.uri(identifier), self.storage_options))

    def load(self, identifier: str) -> DeltaLakeTable:
        if not self.exists(identifier):
            raise StorageError(f"table {identifier} does not exist")
        return DeltaLakeTable(identifier, self.uri(identifier), self.storage_options, self.fileio)

    def drop(self, identifier: str) -> None:
        """Take the table out of the warehouse; its files stay, moved to `<namespace>/.dropped/`
        (moving the folder back registers it again). Local warehouses only for now."""
        import time

        if self.remote:
            raise StorageError(f"dropping {identifier} is not supported on an S3 Delta warehouse yet")
        namespace, _, name = identifier.partition(".")
        folder = self._root() / namespace / name
        kept = self._root() / namespace / ".dropped" / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(kept)
        log.info("%s dropped; its files are in %s", identifier, kept)

    def tables(self) -> list[str]:
        if self.remote:
            return self._remote_tables()
        out = []
        for ns in _namespaces():
            folder = self._root() / ns
            if folder.is_dir():
                out += [f"{ns}.{p.name}" for p in folder.iterdir() if (p / "_delta_log").is_dir()]
        return sorted(out)

    def _remote_tables(self) -> list[str]:
        """Tables under an object-store warehouse: folders of a namespace holding `_delta_log/`."""
        from pyarrow import fs as pafs

        base = self.location.removeprefix("s3://")
        out = []
        for ns in _namespaces():
            found = self.filesystem.get_file_info(pafs.FileSelector(f"{base}/{ns}", allow_not_found=True))
            for info in found:
                if info.type == pafs.FileType.Directory:
                    name = info.path.rsplit("/", 1)[-1]
                    if self.exists(f"{ns}.{name}"):
                        out.append(f"{ns}.{name}")
        return sorted(out)

    def bronze_table(self, contract: Any) -> DeltaLakeTable:
        """`bronze.<source>`, partitioned by ingestion day."""
        from lakestack.storage.schema import bronze_schema

        props = {"lakestack.contract": contract.ref, **_pii(contract.pii_columns())}
        schema = bronze_schema(contract).as_arrow()
        return self._table(f"bronze.{contract.source}", schema, props, Partitioning("_ingested_at", "day"))

    def silver_table(self, model: Any) -> DeltaLakeTable:
        """`silver.<name>`, partitioned by day of the model's time column (when it has one)."""
        from lakestack.storage.schema import SILVER_COLUMNS, contract_schema

        schema = contract_schema(model.contract, SILVER_COLUMNS).as_arrow()
        props = {
            "lakestack.contract": model.contract.ref,
            "lakestack.key": ",".join(model.key),
            **_pii(model.contract.pii_columns()),
        }
        part = Partitioning(model.partition_by, "day") if model.partition_by else None
        return self._table(f"silver.{model.name}", schema, props, part)

    def gold_table(
        self,
        model: Any,
        schema: pa.Schema,
        *,
        replace: bool = False,
        pii: dict[str, str] | None = None,
        granularity: Granularity = "day",
    ) -> DeltaLakeTable:
        """`gold.<name>` with the columns a model's SELECT returns, partitioned by `granularity` of its
        partition_by column; `replace`: the model's columns changed, and a new version replaces the
        schema, the partitioning and the rows (the versions before stay readable)."""
        settings = model.settings
        props = {"lakestack.model": model.name, **_pii(pii or {})}
        props.update(
            {f"lakestack.{k}": v for k, v in (("description", settings.description), ("owner", settings.owner)) if v}
        )
        part = Partitioning(settings.partition_by, granularity) if settings.partition_by else None
        if part is not None and part.column not in schema.names:
            raise StorageError(f"{model.identifier}: partition_by '{part.column}' is not a column of the model")
        if replace and self.exists(model.identifier):
            self._create(model.identifier, schema, props, part, mode="overwrite")
            return self.load(model.identifier)
        return self._table(model.identifier, schema, props, part)

    def system_table(self, identifier: str, schema: pa.Schema) -> DeltaLakeTable:
        return self._table(identifier, schema, {}, None)

    def quarantine_table(self, source: str) -> DeltaLakeTable:
        """`quarantine.<source>`, partitioned by ingestion day."""
        from lakestack.storage.schema import quarantine_schema

        schema = quarantine_schema().as_arrow()
        return self._table(f"quarantine.{source}", schema, {}, Partitioning("_ingested_at", "day"))

    def _table(
        self, identifier: str, schema: pa.Schema, props: dict[str, str], part: Partitioning | None
    ) -> DeltaLakeTable:
        self.ensure_namespaces()
        if not self.exists(identifier):
            try:
                self._create(identifier, schema, props, part, mode="error")
            except StorageError:  # another writer created it first
                if not self.exists(identifier):
                    raise
        return self.load(identifier)

    def _create(
        self, identifier: str, schema: pa.Schema, props: dict[str, str], part: Partitioning | None, mode: str
    ) -> None:
        columns = _plain(schema)
        if part is not None:
            columns = columns.append(pa.field(part.name, pa.int32()))
        try:
            _deltalake().DeltaTable.create(
                self.uri(identifier),
                columns,
                mode=mode,
                partition_by=[part.name] if part is not None else None,
                name=identifier,
                configuration=props,
                storage_options=self.storage_options,
                raise_if_key_not_exists=False,
            )
        except Exception as exc:  # delta-rs errors: translate at the boundary
            raise StorageError(f"cannot create {identifier}: {_first_line(exc)}") from None


def _namespaces() -> tuple[str, ...]:
    from lakestack.storage.warehouse import NAMESPACES

    return NAMESPACES


def _pii(columns: dict[str, str]) -> dict[str, str]:
    return {f"lakestack.pii.{k}": v for k, v in columns.items()}


def _plain(schema: pa.Schema) -> pa.Schema:
    """An Arrow schema without pyiceberg's field-id metadata (Delta keeps its own)."""
    return pa.schema([f.remove_metadata() for f in schema]).remove_metadata()


# -- commits ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Staged:
    """What an engine's writer hands back for a Delta commit: the rows (delta-rs writes the files)."""

    data: pa.Table


def is_delta(table: Any) -> bool:
    return isinstance(table, DeltaLakeTable)


def append(table: DeltaLakeTable, data: pa.Table, props: dict[str, str]) -> DeltaLakeTable:
    """Append `data` in one compare-and-swap commit carrying `props` in its commitInfo."""
    return _write(table, data, props, "append")


def replace(
    table: DeltaLakeTable, remove: Collection[str], data: pa.Table, props: dict[str, str], respec: Any = None
) -> DeltaLakeTable:
    """Drop the data files `remove` and add `data`, in one compare-and-swap commit.

    Delta removes files by predicate, not by name: removing every file is an overwrite, removing
    those of some partitions an overwrite where the partition column is in those partitions and
    the ones `data` lands in (delta-rs refuses rows outside the predicate). A file set that is not
    whole partitions is refused (StorageError), since the overwrite would drop rows the caller
    meant to keep. `respec` (a `partitioning.Respec`, Gold choosing another granularity on a full
    rebuild) repartitions the table in the same commit.
    """
    held = {t.file.file_path: t.file.partition for t in table.scan().plan_files()}
    removed = set(remove)
    if not removed <= set(held):
        raise CommitConflictError(f"{table.identifier}: files to replace are gone (another commit)")
    if respec is not None:
        if removed != set(held):
            raise StorageError(f"{table.identifier}: repartitioning replaces every file")
        return _write(table, data, props, "overwrite", repartition=Partitioning(respec.column, respec.granularity))
    if not removed:
        return _write(table, data, props, "append")
    if removed == set(held):
        return _write(table, data, props, "overwrite")
    part = table.partitioning
    if part is None:
        raise StorageError(f"{table.identifier}: an unpartitioned Delta table is replaced whole or not at all")
    values = {held[path][0] for path in removed} | set(part.values(data).to_pylist())
    kept = [path for path, value in held.items() if value[0] in values and path not in removed]
    if kept or None in values:
        raise StorageError(f"{table.identifier}: the files to replace are not whole partitions")
    return _write(table, data, props, "overwrite", predicate=_in(part.name, sorted(values)))


def _in(column: str, values: list[int]) -> str:
    """A delta-rs (DataFusion SQL) predicate `"column" IN (...)` over int partition values."""
    quoted = '"' + column.replace('"', '""') + '"'
    return f"{quoted} IN ({', '.join(str(int(v)) for v in values)})"


def _write(
    table: DeltaLakeTable,
    data: pa.Table,
    props: dict[str, str],
    mode: str,
    *,
    predicate: str | None = None,
    repartition: Partitioning | None = None,
) -> DeltaLakeTable:
    """One write_deltalake commit that fails (CommitConflictError, nothing committed) if any commit
    landed since `table` was read; the derived partition column is filled here."""
    deltalake = _deltalake()
    from deltalake.exceptions import CommitFailedError

    version = table.version
    part = repartition or table.partitioning
    rows = _plain_data(data, table.arrow_schema())
    if part is not None:
        rows = rows.append_column(pa.field(part.name, pa.int32()), part.values(rows))
    properties = deltalake.CommitProperties(
        custom_metadata=props,
        max_commit_retries=0,
        app_transactions=[deltalake.Transaction(APP_ID, version + 1)],
    )
    options: dict[str, Any] = {"predicate": predicate} if predicate else {}
    if repartition is not None:
        options.update(schema_mode="overwrite", partition_by=[repartition.name])
    elif part is not None:
        options["partition_by"] = [part.name]
    try:
        deltalake.write_deltalake(
            table.delta,
            rows,
            mode=mode,
            commit_properties=properties,
            storage_options=table.storage_options,
            **options,
        )
    except CommitFailedError as exc:
        raise CommitConflictError(f"{table.identifier} changed since version {version} ({exc})") from exc
    except Exception as exc:  # delta-rs errors: translate at the boundary
        raise StorageError(f"cannot commit to {table.identifier}: {_first_line(exc)}") from None
    return table.refresh()


def _plain_data(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """`data` in the Delta table's Arrow types (plain strings and lists, as delta-rs reads them)."""
    return data.select(schema.names).cast(schema)


def files_added_after(table: DeltaLakeTable, version: int | None) -> tuple[list[str], int | None]:
    """Data files of the current version holding rows committed after `version` (all when None).
    Valid for append-only tables such as Bronze. Files an optimize commit added (`dataChange: false`)
    hold rows read before and are skipped, unless they were made from files not read yet
    (`delta_log.unread_files`); without the log files, every file the table did not hold at `version`."""
    from lakestack.storage import delta_log

    current = table.current_snapshot()
    if current is None:
        return [], None
    now = table.file_paths()
    if version is None:
        return now, current.snapshot_id
    try:
        before = set(table.file_paths(version))
    except StorageError:
        log.warning("%s: version %s cannot be read; every file is read again", table.identifier, version)
        return now, current.snapshot_id
    new = [p for p in now if p not in before]
    unread = delta_log.unread_files(table, version, current.snapshot_id)
    if unread is None:
        log.warning(
            "%s: the log after version %s is cleaned up; compacted files are read again", table.identifier, version
        )
        return new, current.snapshot_id
    return [p for p in new if delta_log.relative(table.uri, p) in unread], current.snapshot_id


def storage_options_for(s3: Any) -> dict[str, str]:
    """delta-rs storage options for an environment's `s3:` block. Commits use S3 conditional puts
    (`AWS_CONDITIONAL_PUT: etag`), so compare-and-swap holds across writers without a lock table."""
    from lakestack.config import reveal

    options = {"AWS_CONDITIONAL_PUT": "etag"}
    if s3.endpoint_url:
        options["AWS_ENDPOINT_URL"] = s3.endpoint_url
        if s3.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if s3.region:
        options["AWS_REGION"] = s3.region
    for key, ref in (
        ("AWS_ACCESS_KEY_ID", s3.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key),
        ("AWS_SESSION_TOKEN", s3.session_token),
    ):
        value = reveal(ref)
        if value:
            options[key] = value
    return options


def commit_actions(table: DeltaLakeTable, actions: list[Any], props: dict[str, str], what: str) -> None:
    """One compare-and-swap commit of add/remove actions by path (files written ahead: a streamed
    ingest, an erasure's rewrite), carrying `props` in its commitInfo and the `txn` of every lakestack
    commit. CommitConflictError when the table moved past `table.version`; StorageError naming
    `what` for anything else delta-rs raises."""
    deltalake = _deltalake()
    from deltalake.exceptions import CommitFailedError

    part = table.partitioning
    properties = deltalake.CommitProperties(
        custom_metadata=props,
        max_commit_retries=0,
        app_transactions=[deltalake.Transaction(APP_ID, table.version + 1)],
    )
    try:
        table.delta.create_write_transaction(
            actions,
            mode="append",
            schema=table.delta.schema(),
            partition_by=[part.name] if part is not None else None,
            commit_properties=properties,
        )
    except CommitFailedError as exc:
        raise CommitConflictError(f"{table.identifier} changed since version {table.version} ({exc})") from exc
    except Exception as exc:  # delta-rs errors: translate at the boundary
        raise StorageError(f"cannot commit {what} to {table.identifier}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def rollback(table: DeltaLakeTable, version: int, *, run_id: str) -> Any:
    """Make the table hold what `version` held: a restore, which is a new version (Delta's log only
    grows) whose parent in the lineage is `version` and whose commitInfo carries the state as of
    `version` (so readers resume from its checkpoint) and the rollback record. CommitConflictError
    when another commit landed since `table` was read."""
    import json
    from datetime import UTC, datetime

    from lakestack.failpoints import failpoint
    from lakestack.storage.checkpoints import BATCH_ID, RUN_ID, carry_forward
    from lakestack.storage.snapshots import Rollback

    deltalake = _deltalake()
    from deltalake.exceptions import CommitFailedError

    name = table.identifier
    if table.snapshot_by_id(version) is None:
        raise StorageError(f"{name} has no snapshot {version}")
    before = table.metadata.current_snapshot_id
    if before == version:
        return Rollback(name, before, version, changed=False)
    then = DeltaLakeTable(name, table.uri, table.storage_options, table.fileio)
    then.delta = table.at(version)
    record = {"run_id": run_id, "from": before, "to": version, "at": datetime.now(UTC).isoformat()}
    props = {
        **carry_forward(then),
        RUN_ID: run_id,
        BATCH_ID: f"rollback:{run_id}:{version}",
        ROLLBACK: json.dumps(record, separators=(",", ":")),
    }
    failpoint("rollback.before_commit")
    try:
        table.delta.restore(
            version, commit_properties=deltalake.CommitProperties(custom_metadata=props, max_commit_retries=0)
        )
    except CommitFailedError as exc:
        raise CommitConflictError(
            f"{name} changed while rolling back; look at 'lakestack history' and retry ({exc})"
        ) from exc
    failpoint("rollback.after_commit")
    table.refresh()
    log.info("%s restored to version %s (run %s)", name, version, run_id)
    return Rollback(name, before, version, changed=True)


def evolve(table: DeltaLakeTable, steps: list[Any], props: dict[str, str]) -> DeltaLakeTable:
    """A compatible contract version on a Delta table: its added top-level columns (nullable, after
    the others: delta-rs appends them), its required columns made optional (`DROP NOT NULL`, a
    commit each) and then the table properties (`lakestack.contract`, PII classes). A crash between
    them leaves the columns changed and the old version named; the next evolve changes nothing more
    and names the new one. Widening, renaming and nested changes are refused (StorageError) before
    anything is committed."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    deltalake = _deltalake()
    from deltalake.exceptions import CommitFailedError

    refused = [f"{s.action} {s.column}" for s in steps if s.action not in ("add", "optional") or len(s.path) != 1]
    if refused:
        raise StorageError(
            f"{table.identifier}: a Delta table takes added top-level columns only (and required ones "
            f"made optional) for now; this contract version also needs: {', '.join(refused)}"
        )
    fields = [
        deltalake.Field.from_arrow(pa.field(s.column, schema_to_pyarrow(s.field_type), nullable=True))
        for s in steps
        if s.action == "add"
    ]
    required = {f.name for f in table.arrow_schema() if not f.nullable}
    optional = [s.column for s in steps if s.action == "optional" and s.column in required]
    try:
        if fields:
            table.delta.alter.add_columns(fields, commit_properties=deltalake.CommitProperties(max_commit_retries=0))
            table.refresh()
        for column in optional:  # ALTER COLUMN ... DROP NOT NULL, one commit each
            table.delta.alter.drop_column_not_null(
                column, commit_properties=deltalake.CommitProperties(max_commit_retries=0)
            )
            table.refresh()
        table.delta.alter.set_table_properties(
            props, raise_if_not_exists=False, commit_properties=deltalake.CommitProperties(max_commit_retries=0)
        )
    except CommitFailedError as exc:
        raise CommitConflictError(f"{table.identifier}: the table changed while evolving it ({exc})") from exc
    return table.refresh()

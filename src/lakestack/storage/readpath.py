"""The interactive read path (`lakestack query`, `show`, `tables`) without pyiceberg on it.

An Iceberg table's state is its metadata file, and no commit ever rewrites one: each writes a new
file and moves the catalog's pointer. So for a local SQLite catalog and a local warehouse:

- the pointers are one read-only query with the standard library's `sqlite3` (no SQLAlchemy, no
  pyiceberg catalog: importing them took ~0.5 s of a 1.5 s `lakestack query`);
- a table's figures (rows, files, commits, the last run) are in its metadata file's JSON;
- the Parquet files planned for a metadata file stay right for as long as the catalog points at
  it, so a plan is recorded (`.lakestack/plans/<table>.<sha256 of the metadata location>.json`)
  the first time a table is planned through pyiceberg and reused until the next commit moves the
  pointer (the next plan of the table replaces it).
  Only plans a view over the Parquet files reads exactly are recorded: a snapshot without delete
  files, of a table whose schema never evolved (no field-id mapping needed).

Anything else (PostgreSQL, Glue or REST catalogs, an S3 warehouse, a pointer outside this
warehouse: a moved project, which the full path refuses with its explanation) returns None, and
callers take the full path through `storage.catalog` and pyiceberg.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")  # metadata JSON `decimal(12,2)`, pyiceberg `decimal(12, 2)`
RUN_ID = "lakestack.run-id"  # as storage/checkpoints.py writes it in snapshot summaries
NAMESPACES = ("bronze", "silver", "gold", "quarantine", "_lakestack")


@dataclass(frozen=True, slots=True)
class PlannedTable:
    """A table's data files at the snapshot its metadata file names: what a view reads."""

    identifier: str
    metadata_location: str
    snapshot_id: int
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TableFigures:
    """What `lakestack tables` shows of a table, read from its metadata file."""

    rows: int
    files: int
    snapshots: int
    last_commit: datetime | None
    last_run: str | None
    location: str


class ReadPath:
    """Read-only lookups on a local SQLite catalog over a local warehouse (see the module doc)."""

    def __init__(self, catalog_file: Path, catalog_name: str, warehouse: str, plans: Path) -> None:
        self.catalog_file = catalog_file
        self.catalog_name = catalog_name
        self.warehouse = warehouse.rstrip("/") + "/"
        self.plans = plans

    @classmethod
    def open(cls, env: Any, root: Path, name: str) -> ReadPath | None:
        """The read path for an environment, or None when it has no local SQLite catalog and warehouse."""
        from lakestack.config import SecretRef

        uri = env.catalog.uri
        if env.format != "iceberg" or env.catalog.type != "sql" or isinstance(uri, SecretRef) or "://" in env.warehouse:
            return None
        uri = uri or "sqlite:///.lakestack/catalog.db"
        if not uri.startswith("sqlite:///") or uri.startswith("sqlite:////") or "?" in uri:
            return None
        catalog_file = (root / unquote(uri.removeprefix("sqlite:///"))).resolve()
        if not catalog_file.is_file():
            return None
        warehouse = (root / env.warehouse).resolve().as_uri()
        return cls(catalog_file, name, warehouse, root / ".lakestack" / "plans")

    def pointers(self, identifiers: list[str] | None = None) -> dict[str, str] | None:
        """Table → metadata location for the tables that exist (all of them when `identifiers` is
        None); None when the catalog cannot be read this way or points outside this warehouse."""
        try:
            with sqlite3.connect(f"{self.catalog_file.as_uri()}?mode=ro", uri=True, timeout=30) as con:
                rows = con.execute(
                    "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables WHERE catalog_name = ?",
                    (self.catalog_name,),
                ).fetchall()
        except sqlite3.Error as exc:
            log.debug("read path off: %s", exc)
            return None
        found = {f"{ns}.{table}": str(location or "") for ns, table, location in rows if ns in NAMESPACES}
        if any(not location.startswith(self.warehouse) for location in found.values()):
            return None  # a moved or copied project: the full path explains it
        if identifiers is None:
            return dict(sorted(found.items()))
        return {t: found[t] for t in identifiers if t in found}

    def figures(self, location: str) -> TableFigures | None:
        """Rows, files, commits and the last run of the table at this metadata file."""
        metadata = _metadata(location)
        if metadata is None:
            return None
        by_id = {s["snapshot-id"]: s for s in metadata.get("snapshots", [])}
        current = by_id.get(metadata.get("current-snapshot-id"))
        lineage, seen, snap = [], set(), current
        while snap is not None and snap["snapshot-id"] not in seen:
            seen.add(snap["snapshot-id"])
            lineage.append(snap)
            snap = by_id.get(snap.get("parent-snapshot-id"))
        summary = current.get("summary", {}) if current else {}
        runs = [s.get("summary", {}).get(RUN_ID) for s in lineage]
        return TableFigures(
            rows=int(summary.get("total-records", 0)),
            files=int(summary.get("total-data-files", 0)),
            snapshots=len(lineage),
            last_commit=datetime.fromtimestamp(current["timestamp-ms"] / 1000, UTC) if current else None,
            last_run=runs[0] if runs else None,
            location=str(metadata.get("location", "")),
        )

    def columns(self, location: str) -> list[str] | None:
        """The top-level column names of the current schema at this metadata file (None: unreadable)."""
        metadata = _metadata(location)
        if metadata is None:
            return None
        current = metadata.get("current-schema-id")
        for schema in metadata.get("schemas", []):
            if isinstance(schema, dict) and schema.get("schema-id") == current:
                return [str(f["name"]) for f in schema.get("fields", [])]
        return None

    def schema(self, location: str) -> tuple[list[tuple[str, str, bool]], dict[str, str]] | None:
        """(name, Iceberg type as pyiceberg prints it, required) of each column of the current
        schema, and the table's properties; None when unreadable or a column is nested (struct,
        list, map: the full path prints those)."""
        metadata = _metadata(location)
        if metadata is None:
            return None
        current = metadata.get("current-schema-id")
        fields = next((s.get("fields", []) for s in metadata.get("schemas", []) if s.get("schema-id") == current), None)
        if fields is None or any(not isinstance(f.get("type"), str) for f in fields):
            return None
        columns = [
            (str(f["name"]), _DECIMAL.sub(r"decimal(\1, \2)", f["type"]), bool(f.get("required"))) for f in fields
        ]
        return columns, {str(k): str(v) for k, v in (metadata.get("properties") or {}).items()}

    def plan(self, identifier: str, location: str) -> PlannedTable | None:
        """The recorded plan for this metadata file, or None (not recorded, or unreadable)."""
        path = self._plan_file(identifier, location)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("metadata_location") != location:
            return None
        files = data.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            return None
        if not all(f.startswith(self.warehouse) for f in files):
            return None
        return PlannedTable(identifier, location, int(data["snapshot_id"]), tuple(files))

    def remember(self, identifier: str, location: str, table: Any) -> None:
        """Record the plan of a pyiceberg table loaded at `location`, when a view over its Parquet
        files reads it exactly; never fails the read that asked."""
        try:
            snap = table.current_snapshot()
            if snap is None or len(table.metadata.schemas) > 1 or table.metadata_location != location:
                return
            tasks = list(table.scan().plan_files())
            if not tasks or any(t.delete_files for t in tasks):
                return
            data = {
                "identifier": identifier,
                "metadata_location": location,
                "snapshot_id": snap.snapshot_id,
                "files": [t.file.file_path for t in tasks],
            }
            self.plans.mkdir(parents=True, exist_ok=True)
            path = self._plan_file(identifier, location)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(data), encoding="utf-8")
            os.replace(temporary, path)
            for older in self.plans.glob(f"{_stem(identifier)}.*.json"):  # plans of earlier commits
                if older != path:
                    older.unlink(missing_ok=True)
        except Exception as exc:  # a cache: the read goes on without it
            log.debug("plan of %s not recorded: %s", identifier, exc)

    def _plan_file(self, identifier: str, location: str) -> Path:
        return self.plans / f"{_stem(identifier)}.{hashlib.sha256(location.encode()).hexdigest()}.json"


@dataclass(frozen=True, slots=True)
class _Summary:
    additional_properties: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    snapshot_id: int
    parent_snapshot_id: int | None
    timestamp_ms: int
    summary: _Summary


@dataclass(frozen=True, slots=True)
class _Metadata:
    location: str
    snapshots: list[_Snapshot]


class _LocalInput:
    def __init__(self, location: str) -> None:
        self.location = location

    def open(self) -> Any:
        path = unquote(urlsplit(self.location).path) if self.location.startswith("file:") else self.location
        return open(path, "rb")  # the caller closes it (`with ... .open() as f`)


class _LocalIO:
    def new_input(self, location: str) -> _LocalInput:
        return _LocalInput(location)

    def parquet_columns(self, location: str) -> dict[str, list[Any]]:
        """A small Parquet file (a checkpoint side file) as columns of Python values, read by DuckDB:
        `status` then imports no pyarrow (~0.12 s). A path DuckDB would take as a glob is read by
        pyarrow instead."""
        path = unquote(urlsplit(location).path) if location.startswith("file:") else location
        if any(c in path for c in "*?[{"):
            import pyarrow.parquet as pq

            read = pq.ParquetFile(path).read()
            return {name: read[name].to_pylist() for name in read.column_names}
        import duckdb

        with duckdb.connect(":memory:") as con:
            cursor = con.execute("SELECT * FROM read_parquet(?)", [path])
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return {name: [row[i] for row in rows] for i, name in enumerate(names)}


class MetadataTable:
    """A table as its metadata file describes it, in the shapes `storage.checkpoints` reads
    (snapshots with their summaries, side files through `io`): checkpoints such as the file
    ledger without pyiceberg."""

    def __init__(self, metadata: dict[str, Any]) -> None:
        snapshots = [
            _Snapshot(
                int(s["snapshot-id"]),
                int(s["parent-snapshot-id"]) if s.get("parent-snapshot-id") is not None else None,
                int(s["timestamp-ms"]),
                _Summary({str(k): str(v) for k, v in (s.get("summary") or {}).items() if k != "operation"}),
            )
            for s in metadata.get("snapshots", [])
        ]
        self.metadata = _Metadata(str(metadata.get("location", "")), snapshots)
        self._current = metadata.get("current-snapshot-id")
        self.io = _LocalIO()

    def current_snapshot(self) -> _Snapshot | None:
        return next((s for s in self.metadata.snapshots if s.snapshot_id == self._current), None)


class CheckpointView:
    """`exists` and `load` over the read path's pointers, for what reads a table's checkpoint only
    (a file source's pending files: `lakestack status`)."""

    def __init__(self, pointers: dict[str, str]) -> None:
        self.pointers = pointers

    def exists(self, identifier: str) -> bool:
        return identifier in self.pointers

    def load(self, identifier: str) -> MetadataTable:
        metadata = _metadata(self.pointers[identifier])
        if metadata is None:
            raise ValueError(f"{identifier}: metadata file not readable here")
        return MetadataTable(metadata)


def _stem(identifier: str) -> str:
    return re.sub(r"[^a-z0-9_.]", "_", identifier.lower())


def _metadata(location: str) -> dict[str, Any] | None:
    if not location.startswith("file:") or location.endswith(".gz.metadata.json"):
        return None
    try:
        data = json.loads(Path(unquote(urlsplit(location).path)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None

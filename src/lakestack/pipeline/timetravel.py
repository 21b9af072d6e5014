"""Time travel and rollback: queries as of a moment or a snapshot, a table's history, and rolling
Silver or Gold back to an earlier snapshot.

`AsOf` says which snapshot each table a query reads is planned at: a moment (every table as it was
then, from each table's snapshot log), a snapshot id (the table it belongs to at that snapshot, the
others as they were when it was committed), or per table (`silver.orders=<id or moment>`).

A rollback makes an older snapshot current again in one metadata commit (storage/snapshots.py).
Silver and Gold resume from the checkpoint of the snapshot rolled back to (checkpoints are read
from the table's lineage), so the next `promote` re-promotes what Bronze committed after it and
the next `build` rebuilds what changed upstream since: rolling back and re-running equals never
having run the rolled-back commits. Bronze and quarantine are immutable and never rolled back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lakestack.errors import UsageError

_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TABLE = re.compile(r"[A-Za-z_][\w]*\.[A-Za-z_][\w]*")
ROLLBACK_LAYERS = ("silver", "gold")
NEWEST_SHOWN = 5  # snapshot ids an error lists


@dataclass(frozen=True, slots=True)
class AsOf:
    """Which snapshot each table a query reads is planned at.

    >>> AsOf.parse(["2026-12-01T10:00:00Z"]).at
    datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)
    >>> AsOf.parse(["silver.orders=1234567890"]).tables
    (('silver.orders', 1234567890),)
    """

    at: datetime | None = None  # every table not pinned otherwise, as it was at this moment
    snapshot: int | None = None  # the table it belongs to at it; the others as of its commit
    tables: tuple[tuple[str, int | datetime], ...] = ()  # per table: a snapshot id or a moment

    @classmethod
    def parse(cls, values: Sequence[str], now: datetime | None = None) -> AsOf:
        """From `--as-of` values: `TIMESTAMP` (ISO 8601, UTC unless it names a zone; or `30m`,
        `12h`, `1d`, `2w` ago), `SNAPSHOT_ID`, or `TABLE=TIMESTAMP|SNAPSHOT_ID` (repeatable)."""
        now = now or datetime.now(UTC)
        at: datetime | None = None
        snapshot: int | None = None
        tables: dict[str, int | datetime] = {}
        for value in values:
            name, sep, rest = value.partition("=")
            if sep:
                name = name.strip()
                if not _TABLE.fullmatch(name):
                    raise UsageError(f"as of {value!r}: {name!r} is not a table name such as silver.orders")
                if name in tables:
                    raise UsageError(f"as of: {name} is given twice")
                tables[name] = _moment_or_id(rest, value, now)
                continue
            parsed = _moment_or_id(value, value, now)
            if at is not None or snapshot is not None:
                raise UsageError(
                    f"as of {value!r}: only one moment or snapshot id applies to every table; "
                    "pin more tables with TABLE=TIMESTAMP|SNAPSHOT_ID"
                )
            if isinstance(parsed, int):
                snapshot = parsed
            else:
                at = parsed
        return cls(at, snapshot, tuple(tables.items()))

    @classmethod
    def of(cls, value: AsOf | datetime | int | str | Sequence[str]) -> AsOf:
        """An `AsOf` from what `Lake.query(as_of=...)` accepts."""
        if isinstance(value, AsOf):
            return value
        if isinstance(value, datetime):
            return cls(at=value if value.tzinfo else value.replace(tzinfo=UTC))
        if isinstance(value, bool):
            raise UsageError("as of: expected a moment, a snapshot id or TABLE=either, not a boolean")
        if isinstance(value, int):
            return cls(snapshot=value)
        return cls.parse([value] if isinstance(value, str) else list(value))


def _moment_or_id(text: str, value: str, now: datetime) -> int | datetime:
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"as of {value!r}: expected a time (2026-12-01T10:00:00Z, 2026-12-01, or 30m, 12h, 1d, 2w ago), "
            "a snapshot id, or TABLE=either"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pin(as_of: AsOf, tables: dict[str, Any]) -> dict[str, int]:
    """The snapshot id each of `tables` (name → Iceberg table, the ones a query reads) is read at.

    Raises UsageError (exit 2) for a table pinned that the query does not read, a snapshot id
    that is not the table's, and a moment before a table's first snapshot."""
    from lakestack.storage.snapshots import snapshot

    pins: dict[str, int] = {}
    for name, _ in as_of.tables:
        if name not in tables:
            reads = ", ".join(sorted(tables)) or "no tables of the lake"
            raise UsageError(f"as of: the query does not read {name} (it reads {reads})")
    at = as_of.at
    if as_of.snapshot is not None:
        owned = [(n, snapshot(t, as_of.snapshot)) for n, t in sorted(tables.items())]
        owner = next(((n, s) for n, s in owned if s is not None), None)
        if owner is None:
            raise UsageError(_not_a_snapshot(as_of.snapshot, tables))
        pins[owner[0]], at = as_of.snapshot, owner[1].committed_at
    for name, value in as_of.tables:
        if isinstance(value, int):
            if snapshot(tables[name], value) is None:
                raise UsageError(_not_a_snapshot(value, {name: tables[name]}))
            pins[name] = value
        else:
            pins[name] = _current_at(name, tables[name], value)
    for name, table in tables.items():
        if name not in pins and at is not None:
            pins[name] = _current_at(name, table, at)
    return pins


def _current_at(name: str, table: Any, when: datetime) -> int:
    from lakestack.storage.snapshots import current_at, first_commit, snapshot

    found = current_at(table, when)
    if found is None:
        first = first_commit(table)
        if first is None:
            raise UsageError(f"as of {_when(when)}: {name} has no snapshots yet")
        raise UsageError(  # the table did not exist yet, or expiry removed what it was then
            f"as of {_when(when)}: {name} has no snapshot that old; its oldest snapshot is from {_when(first)}"
        )
    if snapshot(table, found) is None:
        raise UsageError(f"as of {_when(when)}: {name} was at snapshot {found}, which has been expired")
    return found


def _not_a_snapshot(snapshot_id: int, tables: dict[str, Any]) -> str:
    from lakestack.storage.snapshots import snapshots

    listed = []
    for name, table in sorted(tables.items()):
        newest = snapshots(table)[:NEWEST_SHOWN]
        ids = ", ".join(f"{s.snapshot_id} ({_when(s.committed_at)})" for s in newest) or "none"
        listed.append(ids if len(tables) == 1 else f"{name}: {ids}")
    if len(tables) == 1:
        return f"{snapshot_id} is not a snapshot of {next(iter(tables))} (see 'lakestack history'); newest: {listed[0]}"
    if not tables:
        return f"{snapshot_id} is not a snapshot of a table the query reads (it reads no table of the lake)"
    return f"{snapshot_id} is not a snapshot of a table the query reads; newest snapshots: {'; '.join(listed)}"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- history ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One snapshot of a table, with the lakestack run and job that committed it."""

    snapshot_id: int
    parent_id: int | None
    committed_at: datetime
    operation: str | None
    run_id: str | None
    job: str | None
    added_rows: int | None
    deleted_rows: int | None
    total_rows: int | None
    total_files: int | None
    current: bool
    in_lineage: bool  # False: a rollback left it


def table_history(warehouse: Any, identifier: str, limit: int | None = None) -> list[HistoryEntry]:
    """The table's snapshots, newest first; each job is found in the run records (`_lakestack.runs`)."""
    from lakestack.storage.snapshots import snapshots

    found = snapshots(_existing(warehouse, identifier))[: limit or None]
    by_snapshot, by_run = _jobs(warehouse, identifier)
    return [
        HistoryEntry(
            s.snapshot_id,
            s.parent_id,
            s.committed_at,
            s.operation,
            s.run_id,
            by_snapshot.get(s.snapshot_id) or by_run.get(s.run_id or ""),
            s.added_rows,
            s.deleted_rows,
            s.total_rows,
            s.total_files,
            s.current,
            s.in_lineage,
        )
        for s in found
    ]


def _jobs(warehouse: Any, identifier: str) -> tuple[dict[int, str], dict[str, str]]:
    """Jobs that wrote `identifier`: by the snapshot they reported, and by lakestack run id (a stream
    session reports no snapshot id). Rollbacks are left out: they point at snapshots, not make them."""
    from lakestack.pipeline.records import read_runs

    by_snapshot: dict[int, str] = {}
    by_run: dict[str, str] = {}
    for row in reversed(read_runs(warehouse)):  # oldest first: the first job to report a snapshot made it
        if row["job_type"] == "rollback":
            continue
        for dataset in row["datasets"] or []:
            if dataset["name"] != identifier or dataset["role"] != "output":
                continue
            if dataset["snapshot_id"] is not None:
                by_snapshot.setdefault(dataset["snapshot_id"], row["job"])
            if row["lake_run_id"]:
                by_run.setdefault(row["lake_run_id"], row["job"])
    return by_snapshot, by_run


def _existing(warehouse: Any, identifier: str) -> Any:
    if not warehouse.exists(identifier):
        known = [t for t in warehouse.tables() if not t.startswith("_lakestack.")]
        raise UsageError(f"table {identifier} does not exist (tables: {', '.join(known) or 'none'})")
    return warehouse.load(identifier)


# -- rollback --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RollbackResult:
    """A rollback of one table: from which snapshot to which, and what runs next."""

    run_id: str
    dataset: str
    from_snapshot: int | None
    to_snapshot: int
    changed: bool  # False: the table already was at `to_snapshot`
    rows_before: int | None
    rows_after: int | None
    downstream: tuple[str, ...]  # Gold models that read the table (rebuilt by the next build)


def rollback_target(warehouse: Any, identifier: str, snapshot_id: int) -> Any:
    """The table to roll back, after refusing what may not be: Bronze, quarantine and system
    tables, a table that does not exist, a snapshot the table does not have."""
    layer = identifier.partition(".")[0]
    if layer == "bronze":
        raise UsageError(f"{identifier}: Bronze is immutable; reprocess forward instead")
    if layer == "quarantine":
        raise UsageError(f"{identifier}: quarantine is immutable like Bronze; reprocess forward instead")
    if layer not in ROLLBACK_LAYERS:
        raise UsageError(f"{identifier}: only silver.* and gold.* tables can be rolled back")
    from lakestack.storage.snapshots import snapshot

    table = _existing(warehouse, identifier)
    if snapshot(table, snapshot_id) is None:
        raise UsageError(_not_a_snapshot(snapshot_id, {identifier: table}))
    return table


def rows_at(table: Any, snapshot_id: int | None) -> int | None:
    """Total rows of a table at a snapshot (from its summary)."""
    from lakestack.storage.snapshots import snapshot

    found = snapshot(table, snapshot_id) if snapshot_id is not None else None
    return found.total_rows if found is not None else None

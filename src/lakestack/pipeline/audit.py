"""The audit log: `_lakestack.audit`, an append-only Iceberg table of who read or tried what.

One row per audited action: a read through the CLI (`lakestack query`, `show`) or the HTTP API, an
API request refused (401, 403, 429), a key created or revoked. A CLI read is written to the local
spool (pipeline/audit_spool.py, fsynced) before it shows anything; the API buffers its rows in
memory (`AuditLog.record` costs a lock and an append, never I/O). Both reach the table in batches
(ADR 0034): every `audit_flush_seconds` from a background thread in `lakestack serve`, and when a
command that writes the lake (one holding the project lock), `lakestack audit`, `keys` or `erase`
ends. Query text and error details are redacted of every known secret before they are buffered.

An audit commit that fails is logged and its rows stay spooled for the next flush; it never fails
the read it records. Each commit carries a batch id named in a manifest written before it, so a
commit that landed is never repeated and one that did not is repeated once.
"""

from __future__ import annotations

import getpass
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakestack.config import PROJECT_SQL_DIALECT

log = logging.getLogger(__name__)

AUDIT = "_lakestack.audit"
RESULTS = ("ok", "denied", "error")


def audit_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("audit_id", pa.string()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("key_id", pa.string()),
            ("role", pa.string()),
            ("os_user", pa.string()),
            ("channel", pa.string()),  # cli, api
            ("action", pa.string()),
            ("query", pa.string()),
            ("datasets", pa.list_(pa.string())),
            ("columns", pa.list_(pa.string())),
            ("rows", pa.int64()),
            ("result", pa.string()),
            ("status", pa.int32()),  # the HTTP status of an API request
            ("detail", pa.string()),
            ("client", pa.string()),  # the API client's address
        ]
    )


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container without /etc/passwd entry
        return "unknown"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited action. `result` is ok, denied or error."""

    action: str
    result: str
    channel: str = "cli"
    key_id: str | None = None
    role: str | None = None
    os_user: str | None = None
    query: str | None = None
    datasets: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    rows: int | None = None
    status: int | None = None
    detail: str | None = None
    client: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    audit_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    resolve: bool = False  # datasets and columns read are worked out from `query` when committed

    def row(self) -> dict[str, Any]:
        from lakestack._secrets import redact

        return {
            "audit_id": self.audit_id,
            "at": self.at,
            "key_id": self.key_id,
            "role": self.role,
            "os_user": self.os_user,
            "channel": self.channel,
            "action": self.action,
            "query": redact(self.query) if self.query else self.query,
            "datasets": list(self.datasets),
            "columns": list(self.columns),
            "rows": self.rows,
            "result": self.result,
            "status": self.status,
            "detail": redact(self.detail) if self.detail else self.detail,
            "client": self.client,
        } | ({"resolve": True} if self.resolve else {})


class AuditLog:
    """Audit rows on their way to `_lakestack.audit`: through the local spool
    (pipeline/audit_spool.py), committed in batches by `flush`.

    `record` buffers a row in memory (the API's request path: no I/O); `write` puts it in the
    spool at once, fsynced (a CLI read, before it shows anything). `flush` spools what is buffered,
    seals this process's segment and commits every sealed segment in one append. `warehouse` is
    called only when there is something to commit."""

    def __init__(self, warehouse: Callable[[], Any], spool: Any, *, max_pending: int = 100_000) -> None:
        self._warehouse = warehouse
        self.spool = spool  # an AuditSpool
        self._pending: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._open: set[str] = set()  # reads whose last line is not written yet
        self.max_pending = max_pending
        self.dropped = 0  # rows lost because the buffer was full (the spool unwritable for a long time)
        self.errors = 0  # failed flushes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, entry: AuditEntry) -> None:
        """Buffer one row (redacted now: the secret may be forgotten by the time it is written)."""
        self._buffer([entry.row()])

    def _buffer(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._pending.extend(rows)
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1

    def write(self, entry: AuditEntry, *, final: bool = True) -> None:
        """Spool one row now, fsynced. `final=False`: a read starting; a later `write` of an entry
        with the same `audit_id` replaces it. A spool that cannot be written (a read-only project
        folder) leaves the row buffered, committed when the lake closes."""
        row = entry.row()
        (self._open.discard if final else self._open.add)(entry.audit_id)
        try:
            self.spool.append([row])
        except OSError as exc:
            log.warning("could not spool an audit row (%s); committing it when the command ends", exc)
            with self._lock:  # its earlier line, if buffered too, is replaced
                kept = [r for r in self._pending if r["audit_id"] != entry.audit_id]
                self._pending.clear()
            self._buffer([*kept, row])

    @property
    def buffered(self) -> int:
        """Rows in memory, not yet in the spool."""
        return len(self._pending)

    @property
    def pending(self) -> int:
        """Rows not yet committed: buffered or spooled."""
        return len(self._pending) + len(self.spool.pending())

    def flush(self) -> int:
        """Commit what is buffered and spooled (sealed segments) in one append, exactly once; the
        number of rows committed (0 on failure: the rows stay spooled for the next flush)."""
        with self._flush_lock:
            try:
                self._spool_buffered()
                with self.spool.flushing():
                    return int(self.spool.commit(self._write, self._landed))
            except Exception as exc:  # the audit never fails the action it records
                self.errors += 1
                text = str(exc).strip().splitlines()
                log.warning("could not write audit rows to %s: %s", AUDIT, text[0] if text else exc)
                log.debug("audit failure", exc_info=True)
                return 0

    def _spool_buffered(self) -> None:
        with self._lock:
            rows = list(self._pending)
        if rows:
            self.spool.append(rows)
            with self._lock:
                for _ in range(min(len(rows), len(self._pending))):
                    self._pending.popleft()
        if not self._open:  # a read in progress keeps its segment until its last line
            self.spool.seal()

    def _landed(self, batch_id: str) -> bool:
        from lakestack.storage.warehouse import has_batch

        warehouse = self._warehouse()
        return bool(warehouse.exists(AUDIT) and has_batch(warehouse.load(AUDIT), batch_id))

    def _write(self, rows: list[dict[str, Any]], batch_id: str) -> None:
        import pyarrow as pa

        from lakestack.failpoints import failpoint
        from lakestack.storage.warehouse import append

        schema = audit_schema()
        warehouse = self._warehouse()
        rows = resolved(rows, warehouse)
        table = warehouse.system_table(AUDIT, schema)
        failpoint("audit.before_commit")
        data = pa.Table.from_pylist(rows, schema=schema)
        append(table, data, run_id=f"audit-{rows[0]['audit_id']}", batch_id=batch_id)
        failpoint("audit.after_commit")

    def start(self, interval: float) -> None:
        """Flush every `interval` seconds from a background thread (the API's request path never
        waits for a commit)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,), name="lakestack-audit", daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()

    def close(self, *, commit: bool = True) -> None:
        """Stop the background flusher, if any; commit (`commit`) or only spool what is left."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=60)
            self._thread = None
        if commit:
            self.flush()
            return
        try:
            self._spool_buffered()
        except OSError as exc:
            log.warning("could not spool %d audit rows: %s", len(self._pending), exc)


# -- what a query reads ---------------------------------------------------------------------------


def sql_reads(sql: str, schemas: Callable[[str], list[str] | None]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The lake tables (`layer.name`) a SELECT reads and their columns it touches
    (`layer.name.column`), found with sqlglot's scopes; `schemas(table)` gives a table's columns
    (None: not a lake table). `*` counts every column. Unparseable SQL: nothing found (the engine
    refuses it anyway)."""
    try:
        import sqlglot
        from sqlglot import exp
        from sqlglot.optimizer.qualify import qualify
        from sqlglot.optimizer.scope import traverse_scope

        tree = sqlglot.parse_one(sql, read=PROJECT_SQL_DIALECT)
        tables = {_table_name(t) for t in tree.find_all(exp.Table)}
        known = {t: cols for t in tables if t and (cols := schemas(t)) is not None}
        mapping: dict[str, object] = {}
        for name, cols in known.items():
            db, _, table = name.partition(".")
            layer = mapping.setdefault(db, {})
            assert isinstance(layer, dict)
            layer[table] = {c: "VARCHAR" for c in cols}
        tree = qualify(tree, schema=mapping, dialect=PROJECT_SQL_DIALECT, validate_qualify_columns=False)
        columns: set[str] = set()
        for scope in traverse_scope(tree):
            for column in scope.columns:
                source = scope.sources.get(column.table)
                if isinstance(source, exp.Table) and _table_name(source) in known:
                    columns.add(f"{_table_name(source)}.{column.name}")
    except Exception:
        log.debug("could not tell what %r reads", sql, exc_info=True)
        return (), ()
    return tuple(sorted(known)), tuple(sorted(columns))


def resolved(rows: list[dict[str, Any]], warehouse: Any) -> list[dict[str, Any]]:
    """Rows with the datasets and columns their query reads (`sql_reads` over the tables' schemas)
    where a CLI read left that for later (`resolve`): the read itself then never imports sqlglot."""
    columns: dict[str, list[str] | None] = {}

    def schema(identifier: str) -> list[str] | None:
        if identifier not in columns:
            try:
                exists = warehouse.exists(identifier)
                columns[identifier] = [f.name for f in warehouse.load(identifier).schema().fields] if exists else None
            except Exception:
                columns[identifier] = None
        return columns[identifier]

    out = []
    for row in rows:
        row = dict(row)
        if row.pop("resolve", False) and row.get("query"):
            datasets, read = sql_reads(row["query"], schema)
            if row["result"] != "ok":  # a table the role may not see reads as missing: name it anyway
                datasets = tuple(sorted(set(datasets) | set(row["datasets"] or ()) | set(sql_tables(row["query"]))))
            row["datasets"], row["columns"] = list(datasets), list(read)
        out.append(row)
    return out


def sql_tables(sql: str) -> tuple[str, ...]:
    """Every `layer.name` table a SELECT names, whether it exists or not."""
    try:
        import sqlglot
        from sqlglot import exp

        names = {_table_name(t) for t in sqlglot.parse_one(sql, read=PROJECT_SQL_DIALECT).find_all(exp.Table)}
    except Exception:
        return ()
    return tuple(sorted(n for n in names if n))


def _table_name(table: Any) -> str:
    return f"{table.db}.{table.name}" if table.db else ""


def read_audit(
    warehouse: Any,
    *,
    spool: Any = None,
    since: datetime | None = None,
    action: str | None = None,
    who: str | None = None,
    result: str | None = None,
    limit: int | None = 100,
) -> list[dict[str, Any]]:
    """Audit rows matching the filters, newest first, each with `pending`: False for a committed
    row, True for one still in `spool` (an `AuditSpool`; None: committed rows only). `who` matches
    a key id, a role or an OS user; `action` an action or its prefix before a dot (`keys` matches
    `keys.create`)."""
    rows: list[dict[str, Any]] = []
    if warehouse.exists(AUDIT):
        rows = [{**r, "pending": False} for r in warehouse.load(AUDIT).scan().to_arrow().to_pylist()]
    if spool is not None:
        committed = {r["audit_id"] for r in rows}  # a flush that landed but has not cleared its segments
        fields = audit_schema().names
        for row in resolved(spool.pending(), warehouse):
            if row["audit_id"] not in committed:
                rows.append({**{f: row.get(f) for f in fields}, "pending": True})
    out = []
    for row in sorted(rows, key=lambda r: (r["at"], r["audit_id"]), reverse=True):
        if since and row["at"] < since:
            continue
        if action and action not in (row["action"], row["action"].split(".")[0]):
            continue
        if who and who not in (row["key_id"], row["role"], row["os_user"]):
            continue
        if result and row["result"] != result:
            continue
        out.append(row)
        if limit and len(out) >= limit:
            break
    return out

"""The audit log: `_lakestack.audit`, an append-only Iceberg table of who read or tried what.

One row per audited action: a read through the CLI (`lakestack query`, `show`) or the HTTP API, an
API request refused (401, 403, 429), a key created or revoked. Rows are buffered in memory
(`AuditLog.record` costs a lock and an append, never I/O) and committed together: once when a CLI
command ends (`Lake.close`), every `audit_flush_seconds` from a background thread in `lakestack
serve`. Query text and error details are redacted of every known secret before they are buffered.

An audit commit that fails is logged and its rows are kept for the next flush (up to `max_pending`
rows; beyond that the oldest are dropped and counted in `dropped`); it never fails the read it
records. Each commit carries a batch id, so a retried commit that did land is not doubled.
"""

from __future__ import annotations

import getpass
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
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
        }


class AuditLog:
    """Buffers audit rows and appends them to `_lakestack.audit` in one commit per flush.

    `warehouse` is called only when there is something to write."""

    def __init__(self, warehouse: Callable[[], Any], *, max_pending: int = 100_000) -> None:
        self._warehouse = warehouse
        self._pending: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.max_pending = max_pending
        self.dropped = 0  # rows lost because the buffer was full (commits failing for a long time)
        self.errors = 0  # failed commits
        self._failed: tuple[str, int] | None = None  # a commit that failed (it may have landed): id, rows
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, entry: AuditEntry) -> None:
        """Buffer one row (redacted now: the secret may be forgotten by the time it is written)."""
        row = entry.row()
        with self._lock:
            self._pending.append(row)
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Commit what is buffered in one append; the number of rows written (0 on failure, the
        rows then stay buffered). After a failed commit, the next flush first asks the table whether
        that commit landed after all (its batch id), so no row is written twice."""
        with self._flush_lock:
            try:
                self._settle()
                with self._lock:
                    rows = list(self._pending)
                if not rows:
                    return 0
                batch_id = f"audit:{rows[0]['audit_id']}:{len(rows)}"
                self._failed = (batch_id, len(rows))
                self._write(rows, batch_id)
                self._failed = None
            except Exception as exc:  # the audit never fails the action it records
                self.errors += 1
                text = str(exc).strip().splitlines()
                log.warning("could not write audit rows to %s: %s", AUDIT, text[0] if text else exc)
                log.debug("audit failure", exc_info=True)
                return 0
            self._drop(len(rows))
            return len(rows)

    def _settle(self) -> None:
        if self._failed is None:
            return
        from lakestack.storage.warehouse import has_batch

        batch_id, count = self._failed
        warehouse = self._warehouse()
        if warehouse.exists(AUDIT) and has_batch(warehouse.load(AUDIT), batch_id):
            self._drop(count)  # it did land
        self._failed = None

    def _drop(self, count: int) -> None:
        with self._lock:
            for _ in range(min(count, len(self._pending))):
                self._pending.popleft()

    def _write(self, rows: list[dict[str, Any]], batch_id: str) -> None:
        import pyarrow as pa

        from lakestack.failpoints import failpoint
        from lakestack.storage.warehouse import append

        schema = audit_schema()
        table = self._warehouse().system_table(AUDIT, schema)
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

    def close(self) -> None:
        """Stop the background flusher, if any, and write what is left."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=60)
            self._thread = None
        self.flush()


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
    since: datetime | None = None,
    action: str | None = None,
    who: str | None = None,
    result: str | None = None,
    limit: int | None = 100,
) -> list[dict[str, Any]]:
    """Audit rows matching the filters, newest first. `who` matches a key id, a role or an OS user;
    `action` an action or its prefix before a dot (`keys` matches `keys.create`)."""
    if not warehouse.exists(AUDIT):
        return []
    rows: Iterable[dict[str, Any]] = warehouse.load(AUDIT).scan().to_arrow().to_pylist()
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

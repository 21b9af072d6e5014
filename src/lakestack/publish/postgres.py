"""PostgreSQL as a publish target: ADBC bulk ingest (binary COPY), then a swap in one transaction.

Every publish is one transaction on one connection: the staging table is created and loaded
(`adbc_ingest`, binary COPY of Arrow batches as they are read), the primary key and indexes are
built on it, and then the live table is renamed away, the staging table renamed in, the old one
dropped and the state row written, and the transaction commits. PostgreSQL's DDL is
transactional, so a publish that dies at any point (the connection dropped, a key violated, the
process killed) rolls back whole: the previous table and its state stay as they were and no
staging table is left. A reader waiting on the swap's lock resolves the table's name again once it
is granted, so it reads the new table; no reader ever sees an empty or half-loaded one (ADR 0022).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lakestack.publish import (
    STATE_TABLE,
    PublishedState,
    PublishError,
    SchemaChanged,
    StateRow,
    TableSpec,
    Target,
    TargetUnreachable,
)

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10
# How long a publish waits for the locks it needs (the swap waits for readers holding the live
# table; readers arriving meanwhile queue behind it): past this it fails, the old table intact.
LOCK_TIMEOUT_S = 60


def where(url: str) -> str:
    """`host:port/db` of a PostgreSQL URL: never its user or password."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError:
        return "the configured PostgreSQL server"
    return f"{host}:{port}/{parts.path.lstrip('/') or 'postgres'}"


def q(*names: str) -> str:
    """A (schema-)qualified identifier, quoted for PostgreSQL."""
    return ".".join('"' + n.replace('"', '""') + '"' for n in names)


def _with_timeout(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    query.setdefault("application_name", "lakestack-publish")
    return urlunsplit(parts._replace(query=urlencode(query)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class PostgresTarget(Target):
    def __init__(self, url: str, name: str) -> None:
        import adbc_driver_postgresql.dbapi as pg  # type: ignore[import-untyped]

        self.name, self.where = name, where(url)
        try:
            self.con: Any = pg.connect(_with_timeout(url))
            self.cur: Any = self.con.cursor()
            self.cur.execute("SET TIME ZONE 'UTC'")
            self.con.commit()
        except Exception as exc:
            raise TargetUnreachable(
                f"publish target '{name}' ({self.where}) cannot be reached: {_first_line(exc)}"
            ) from None
        self.token = ""

    # -- state -------------------------------------------------------------------------------------
    def state(self, spec: TableSpec) -> PublishedState | None:
        try:
            self.cur.execute("SELECT to_regclass($1) IS NOT NULL", (f"{q(spec.schema, STATE_TABLE)}",))
            if not self.cur.fetchone()[0]:
                self.con.commit()
                return None
            self.cur.execute(
                f"SELECT dataset, snapshot_id, spec FROM {q(spec.schema, STATE_TABLE)} WHERE target_table = $1",
                (spec.table,),
            )
            row = self.cur.fetchone()
            self.con.commit()
        except Exception as exc:
            self._rollback()
            raise PublishError(f"publish target '{self.name}' ({self.where}): {_first_line(exc)}") from None
        return PublishedState(row[0], int(row[1]), row[2]) if row else None

    def table_exists(self, spec: TableSpec) -> bool:
        self.cur.execute("SELECT to_regclass($1) IS NOT NULL", (q(spec.schema, spec.table),))
        found = bool(self.cur.fetchone()[0])
        self.con.commit()
        return found

    # -- replace -----------------------------------------------------------------------------------
    def replace(self, spec: TableSpec, batches: Any, state: StateRow) -> int:
        token = hashlib.sha1(state.run_id.encode() + spec.qualified.encode()).hexdigest()[:10]
        stage, old = f"_ls_stage_{token}", f"_ls_old_{token}"
        with self._transaction(spec, "replace"):
            self._prepare_schema(spec.schema)
            rows = int(self.cur.adbc_ingest(stage, batches, mode="create", db_schema_name=spec.schema) or 0)
            built = self._build_keys(spec, stage)
            if self.table_exists_in_txn(spec):
                self.cur.execute(f"ALTER TABLE {q(spec.schema, spec.table)} RENAME TO {q(old)}")
                self.cur.execute(f"ALTER TABLE {q(spec.schema, stage)} RENAME TO {q(spec.table)}")
                self.cur.execute(f"DROP TABLE {q(spec.schema, old)}")
            else:
                self.cur.execute(f"ALTER TABLE {q(spec.schema, stage)} RENAME TO {q(spec.table)}")
            for temporary, final in built:  # the swapped-in table's indexes get their lasting names
                self.cur.execute(f"ALTER INDEX {q(spec.schema, temporary)} RENAME TO {q(final)}")
            self._write_state(spec, state, rows)
        return rows

    def table_exists_in_txn(self, spec: TableSpec) -> bool:
        self.cur.execute("SELECT to_regclass($1) IS NOT NULL", (q(spec.schema, spec.table),))
        return bool(self.cur.fetchone()[0])

    def _build_keys(self, spec: TableSpec, stage: str) -> list[tuple[str, str]]:
        """The primary key and indexes on the staging table, under temporary names (an index name
        is unique in its schema, and the live table's still hold the lasting ones)."""
        names: list[tuple[str, str]] = []
        if spec.primary_key:
            temporary = f"{stage}_pkey"
            columns = ", ".join(q(c) for c in spec.primary_key)
            self.cur.execute(
                f"ALTER TABLE {q(spec.schema, stage)} ADD CONSTRAINT {q(temporary)} PRIMARY KEY ({columns})"
            )
            names.append((temporary, f"{spec.table[:58]}_pkey"))
        for number, index in enumerate(spec.indexes, 1):
            temporary = f"{stage}_ix{number}"
            final = f"{spec.table}_{'_'.join(index)}_idx"
            final = final if len(final) <= 63 else f"{spec.table[:54]}_ix{number}_idx"
            columns = ", ".join(q(c) for c in index)
            self.cur.execute(f"CREATE INDEX {q(temporary)} ON {q(spec.schema, stage)} ({columns})")
            names.append((temporary, final))
        return names

    # -- incremental -------------------------------------------------------------------------------
    def incremental(self, spec: TableSpec, batches: Any, days: list[date] | None, state: StateRow) -> int:
        stage = f"_ls_delta_{hashlib.sha1(state.run_id.encode()).hexdigest()[:10]}"
        with self._transaction(spec, "incremental"):
            rows = int(self.cur.adbc_ingest(stage, batches, mode="create", temporary=True) or 0)
            columns = self._check_columns(spec, stage)
            names = ", ".join(q(c) for c in columns)
            target = q(spec.schema, spec.table)
            if spec.by == "key":
                keys = ", ".join(q(c) for c in spec.primary_key)
                rest = [c for c in columns if c not in spec.primary_key]
                action = (
                    "DO UPDATE SET " + ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in rest) if rest else "DO NOTHING"
                )
                self.cur.execute(
                    f"INSERT INTO {target} ({names}) SELECT {names} FROM {q(stage)} ON CONFLICT ({keys}) {action}"
                )
            else:
                if days is None:
                    self.cur.execute(f"DELETE FROM {target}")
                elif days:
                    day_list = "{" + ",".join(d.isoformat() for d in days) + "}"
                    column = q(spec.partition_column or "")
                    self.cur.execute(
                        f"DELETE FROM {target} WHERE CAST({column} AS date) = ANY($1::date[])", (day_list,)
                    )
                self.cur.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {q(stage)}")
            self.cur.execute(f"DROP TABLE {q(stage)}")
            self._write_state(spec, state, rows)
        return rows

    def _check_columns(self, spec: TableSpec, stage: str) -> list[str]:
        """The staging table's columns, when they are the live table's (names and types); else the
        difference, as SchemaChanged."""
        live = self._columns(spec.schema, spec.table)
        self.cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (q(stage),),
        )
        staged = [(str(n), str(t)) for n, t in self.cur.fetchall()]
        if dict(staged) == dict(live):
            return [n for n, _ in staged]
        raise SchemaChanged(
            f"{spec.qualified}: the dataset's columns changed since the last publish, and an incremental "
            f"publish cannot change the table's ({describe_diff(live, staged)}); publish it once with "
            "'mode: replace', or change the table by hand"
        )

    def _columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        self.cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (q(schema, table),),
        )
        return [(str(n), str(t)) for n, t in self.cur.fetchall()]

    # -- the transaction ---------------------------------------------------------------------------
    def _transaction(self, spec: TableSpec, what: str) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def block() -> Any:
            try:
                self.cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'")
                yield
                self.con.commit()
            except SchemaChanged:
                self._rollback()
                raise
            except Exception as exc:
                self._rollback()
                raise PublishError(
                    f"publishing {spec.qualified} ({what}) to '{self.name}' ({self.where}) failed, and the "
                    f"previous table is unchanged: {_first_line(exc)}"
                ) from None

        return block()

    def _prepare_schema(self, schema: str) -> None:
        self.cur.execute(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}")

    def _write_state(self, spec: TableSpec, state: StateRow, rows: int) -> None:
        self._prepare_schema(spec.schema)
        table = q(spec.schema, STATE_TABLE)
        self.cur.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (target_table text PRIMARY KEY, dataset text NOT NULL, "
            "snapshot_id bigint NOT NULL, spec text NOT NULL, role text NOT NULL, mode text NOT NULL, "
            "rows bigint NOT NULL, run_id text NOT NULL, published_at timestamptz NOT NULL DEFAULT now())"
        )
        self.cur.execute(
            f"INSERT INTO {table} (target_table, dataset, snapshot_id, spec, role, mode, rows, run_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (target_table) DO UPDATE SET "
            "dataset = EXCLUDED.dataset, snapshot_id = EXCLUDED.snapshot_id, spec = EXCLUDED.spec, "
            "role = EXCLUDED.role, mode = EXCLUDED.mode, rows = EXCLUDED.rows, run_id = EXCLUDED.run_id, "
            "published_at = now()",
            (spec.table, state.dataset, state.snapshot_id, state.spec, state.role, spec.mode, rows, state.run_id),
        )

    def _rollback(self) -> None:
        try:
            self.con.rollback()
        except Exception:  # the connection is gone: the server rolled the transaction back
            log.debug("rollback after a failed publish", exc_info=True)

    def close(self) -> None:
        try:
            self.cur.close()
            self.con.close()
        except Exception:
            log.debug("closing the publish connection", exc_info=True)


def describe_diff(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> str:
    """`added x (bigint); removed y (text); changed z: integer → text` between two column lists."""
    old, new = dict(before), dict(after)
    parts = [f"added {n} ({t})" for n, t in after if n not in old]
    parts += [f"removed {n} ({t})" for n, t in before if n not in new]
    parts += [f"changed {n}: {old[n]} → {t}" for n, t in after if n in old and old[n] != t]
    return "; ".join(parts) or "column order"

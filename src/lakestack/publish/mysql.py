"""MySQL / MariaDB as a publish target (PyMySQL): the second target behind `publish.Target`.

The block's `schema` is the database. MySQL's DDL commits on its own, so `replace` cannot be one
transaction as on PostgreSQL: the staging table is created and loaded (multi-row INSERTs of each
Arrow batch), the key and indexes built, and then `RENAME TABLE live TO old, stage TO live` swaps
both names in one atomic statement; the old table is dropped and the state row written after it.
A failure before the rename drops the staging table and leaves the live table as it was; a crash
between the rename and the state row only makes the next publish load the same snapshot again.
`incremental` is DML on InnoDB in one transaction (a temporary table, DELETE + INSERT or INSERT
... ON DUPLICATE KEY UPDATE), so readers see the old rows until it commits.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from typing import Any
from urllib.parse import unquote, urlsplit

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
from lakestack.publish.postgres import describe_diff

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10
KEY_VARCHAR = 255  # a string column in a key or index (MySQL cannot index TEXT without a prefix)


def where(url: str) -> str:
    parts = urlsplit(url)
    try:
        host, port = parts.hostname or "localhost", parts.port or 3306
    except ValueError:
        return "the configured MySQL server"
    return f"{host}:{port}/{parts.path.lstrip('/')}"


def q(*names: str) -> str:
    return ".".join("`" + n.replace("`", "``") + "`" for n in names)


def column_type(arrow: Any, keyed: bool) -> str:
    """A MySQL column type for an Arrow type."""
    import pyarrow as pa

    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_integer(arrow):
        return "BIGINT" if arrow.bit_width == 64 else "INT"
    if pa.types.is_floating(arrow):
        return "DOUBLE" if arrow.bit_width == 64 else "FLOAT"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({min(arrow.precision, 65)},{min(arrow.scale, 30)})"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_timestamp(arrow):
        return "DATETIME(6)"  # UTC for a zoned timestamp
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "LONGBLOB"
    return f"VARCHAR({KEY_VARCHAR})" if keyed else "LONGTEXT"


class MySQLTarget(Target):
    def __init__(self, url: str, name: str) -> None:
        import pymysql  # type: ignore[import-untyped]

        self.name, self.where = name, where(url)
        parts = urlsplit(url)
        try:
            self.con: Any = pymysql.connect(
                host=parts.hostname or "localhost",
                port=parts.port or 3306,
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                database=parts.path.lstrip("/") or None,
                connect_timeout=CONNECT_TIMEOUT_S,
                autocommit=False,
                charset="utf8mb4",
            )
            self.cur: Any = self.con.cursor()
            self.cur.execute("SET time_zone = '+00:00'")
        except Exception as exc:
            raise TargetUnreachable(f"publish target '{name}' ({self.where}) cannot be reached: {exc}") from None

    def state(self, spec: TableSpec) -> PublishedState | None:
        try:
            if not self._exists(spec.schema, STATE_TABLE):
                return None
            self.cur.execute(
                f"SELECT dataset, snapshot_id, spec FROM {q(spec.schema, STATE_TABLE)} WHERE target_table = %s",
                (spec.table,),
            )
            row = self.cur.fetchone()
            self.con.commit()
        except Exception as exc:
            raise PublishError(f"publish target '{self.name}' ({self.where}): {exc}") from None
        return PublishedState(row[0], int(row[1]), row[2]) if row else None

    def table_exists(self, spec: TableSpec) -> bool:
        return self._exists(spec.schema, spec.table)

    def _exists(self, schema: str, table: str) -> bool:
        self.cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return bool(self.cur.fetchone()[0])

    def replace(self, spec: TableSpec, batches: Any, state: StateRow) -> int:
        token = hashlib.sha1(state.run_id.encode() + spec.qualified.encode()).hexdigest()[:10]
        stage, old = f"_ls_stage_{token}", f"_ls_old_{token}"
        try:
            self.cur.execute(f"CREATE DATABASE IF NOT EXISTS {q(spec.schema)}")
            self._create(spec, q(spec.schema, stage), batches.schema, temporary=False)
            rows = self._load(q(spec.schema, stage), batches)
            self.con.commit()
            self._build_keys(spec, stage)
            if self._exists(spec.schema, spec.table):
                live = q(spec.schema, spec.table)
                self.cur.execute(f"RENAME TABLE {live} TO {q(spec.schema, old)}, {q(spec.schema, stage)} TO {live}")
                self.cur.execute(f"DROP TABLE {q(spec.schema, old)}")
            else:
                self.cur.execute(f"RENAME TABLE {q(spec.schema, stage)} TO {q(spec.schema, spec.table)}")
            self._write_state(spec, state, rows)
            self.con.commit()
        except Exception as exc:
            self._undo(f"DROP TABLE IF EXISTS {q(spec.schema, stage)}")
            raise PublishError(
                f"publishing {spec.qualified} (replace) to '{self.name}' ({self.where}) failed, and the "
                f"previous table is unchanged: {exc}"
            ) from None
        return rows

    def incremental(self, spec: TableSpec, batches: Any, days: list[date] | None, state: StateRow) -> int:
        stage = f"_ls_delta_{hashlib.sha1(state.run_id.encode()).hexdigest()[:10]}"
        try:
            self._create(spec, q(stage), batches.schema, temporary=True)
            columns = self._check_columns(spec, stage)
            rows = self._load(q(stage), batches)
            names = ", ".join(q(c) for c in columns)
            target = q(spec.schema, spec.table)
            if spec.by == "key":
                rest = [c for c in columns if c not in spec.primary_key] or list(spec.primary_key[:1])
                update = ", ".join(f"{q(c)} = VALUES({q(c)})" for c in rest)
                self.cur.execute(
                    f"INSERT INTO {target} ({names}) SELECT {names} FROM {q(stage)} ON DUPLICATE KEY UPDATE {update}"
                )
            else:
                if days is None:
                    self.cur.execute(f"DELETE FROM {target}")
                elif days:
                    marks = ", ".join(["%s"] * len(days))
                    self.cur.execute(
                        f"DELETE FROM {target} WHERE CAST({q(spec.partition_column or '')} AS DATE) IN ({marks})",
                        [d.isoformat() for d in days],
                    )
                self.cur.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {q(stage)}")
            self._write_state(spec, state, rows)
            self.con.commit()
        except SchemaChanged:
            self._undo(None)
            raise
        except Exception as exc:
            self._undo(None)
            raise PublishError(
                f"publishing {spec.qualified} (incremental) to '{self.name}' ({self.where}) failed, and the "
                f"previous table is unchanged: {exc}"
            ) from None
        finally:
            self._undo(f"DROP TEMPORARY TABLE IF EXISTS {q(stage)}", rollback=False)
        return rows

    def _create(self, spec: TableSpec, table: str, schema: Any, *, temporary: bool) -> None:
        keyed = set(spec.primary_key) | {c for index in spec.indexes for c in index}
        columns = []
        for field in schema:
            null = "NOT NULL" if field.name in spec.primary_key else "NULL"
            columns.append(f"{q(field.name)} {column_type(field.type, field.name in keyed)} {null}")
        kind = "TEMPORARY TABLE" if temporary else "TABLE"
        self.cur.execute(f"CREATE {kind} {table} ({', '.join(columns)}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")

    def _load(self, table: str, batches: Any) -> int:
        import pyarrow as pa

        names = batches.schema.names
        sql = f"INSERT INTO {table} ({', '.join(q(n) for n in names)}) VALUES ({', '.join(['%s'] * len(names))})"
        rows = 0
        for batch in batches:
            columns = [
                _plain(batch.column(i))
                if pa.types.is_timestamp(batch.schema.field(i).type)
                else batch.column(i).to_pylist()
                for i in range(batch.num_columns)
            ]
            self.cur.executemany(sql, list(zip(*columns, strict=True)))
            rows += batch.num_rows
        return rows

    def _build_keys(self, spec: TableSpec, stage: str) -> None:
        table = q(spec.schema, stage)
        if spec.primary_key:
            self.cur.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(q(c) for c in spec.primary_key)})")
        for number, index in enumerate(spec.indexes, 1):
            name = f"{spec.table}_{'_'.join(index)}_idx"
            name = name if len(name) <= 64 else f"{spec.table[:54]}_ix{number}_idx"
            self.cur.execute(f"CREATE INDEX {q(name)} ON {table} ({', '.join(q(c) for c in index)})")

    def _check_columns(self, spec: TableSpec, stage: str) -> list[str]:
        live = self._columns(q(spec.schema, spec.table))
        staged = self._columns(q(stage))
        if dict(staged) == dict(live):
            return [n for n, _ in staged]
        raise SchemaChanged(
            f"{spec.qualified}: the dataset's columns changed since the last publish, and an incremental "
            f"publish cannot change the table's ({describe_diff(live, staged)}); publish it once with "
            "'mode: replace', or change the table by hand"
        )

    def _columns(self, table: str) -> list[tuple[str, str]]:
        self.cur.execute(f"SHOW COLUMNS FROM {table}")
        return [(str(r[0]), str(r[1])) for r in self.cur.fetchall()]

    def _write_state(self, spec: TableSpec, state: StateRow, rows: int) -> None:
        table = q(spec.schema, STATE_TABLE)
        self.cur.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (target_table VARCHAR(64) PRIMARY KEY, "
            "dataset VARCHAR(255) NOT NULL, snapshot_id BIGINT NOT NULL, spec VARCHAR(64) NOT NULL, "
            "role VARCHAR(64) NOT NULL, mode VARCHAR(16) NOT NULL, "
            "`rows` BIGINT NOT NULL, run_id VARCHAR(64) NOT NULL, published_at TIMESTAMP(6) NOT NULL "
            "DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
        )
        self.cur.execute(
            f"INSERT INTO {table} (target_table, dataset, snapshot_id, spec, role, mode, `rows`, run_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE dataset = VALUES(dataset), "
            "snapshot_id = VALUES(snapshot_id), spec = VALUES(spec), role = VALUES(role), mode = VALUES(mode), "
            "`rows` = VALUES(`rows`), run_id = VALUES(run_id), published_at = CURRENT_TIMESTAMP(6)",
            (spec.table, state.dataset, state.snapshot_id, state.spec, state.role, spec.mode, rows, state.run_id),
        )

    def _undo(self, sql: str | None, *, rollback: bool = True) -> None:
        try:
            if rollback:
                self.con.rollback()
            if sql:
                self.cur.execute(sql)
        except Exception:  # the connection is gone: the server dropped what was not committed
            log.debug("cleaning up after a failed publish", exc_info=True)

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:
            log.debug("closing the publish connection", exc_info=True)


def _plain(column: Any) -> list[Any]:
    """Timestamps as naive UTC datetimes (MySQL's DATETIME has no zone)."""
    import pyarrow as pa

    if getattr(column.type, "tz", None):
        column = column.cast(pa.timestamp(column.type.unit))
    return list(column.to_pylist())

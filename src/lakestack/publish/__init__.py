"""Publishing Gold (or Silver) datasets to databases: the target interface and its errors.

A :class:`Target` takes Arrow record batches (a dataset read as a role, at one snapshot) and makes
them a table, so a reader sees the previous table or the new one, never a half load; it also keeps
`lakestack_publish_state` (the snapshot published per table). PostgreSQL (`publish/postgres.py`,
ADBC bulk ingest, one transaction) and MySQL/MariaDB (`publish/mysql.py`, PyMySQL, an atomic
RENAME) are built; `create_target` imports them lazily and names the extra when a driver is
missing. `pipeline/publish.py` wires them to the lake.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from typing import Any

from lakestack.errors import MissingExtraError, RunError, UsageError

STATE_TABLE = "lakestack_publish_state"


class PublishError(RunError):
    """A publish failed part-way; the target's previous table is unchanged (exit 3)."""


class TargetUnreachable(PublishError):
    """The target database refused the connection or the credentials (exit 3)."""


class SchemaChanged(UsageError):
    """An incremental publish met a table whose columns differ from the dataset's (exit 2)."""


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Where and how one dataset is published."""

    schema: str
    table: str
    mode: str  # replace | incremental
    by: str  # partition | key (incremental)
    primary_key: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    partition_column: str | None = None  # incremental by partition: the day-partitioned column

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True, slots=True)
class PublishedState:
    """A `lakestack_publish_state` row: what a table holds."""

    dataset: str
    snapshot_id: int
    spec: str  # a digest of the block's settings and the role: a changed block republishes in full


@dataclass(frozen=True, slots=True)
class StateRow:
    dataset: str
    snapshot_id: int
    spec: str
    role: str
    run_id: str


class Target(ABC):
    """One open connection to a publish target database."""

    where: str  # host:port/db, for messages (never the user or password)

    @abstractmethod
    def state(self, spec: TableSpec) -> PublishedState | None:
        """What the table holds according to `lakestack_publish_state`, or None."""

    @abstractmethod
    def table_exists(self, spec: TableSpec) -> bool: ...

    @abstractmethod
    def replace(self, spec: TableSpec, batches: Any, state: StateRow) -> int:
        """Load `batches` (an Arrow RecordBatchReader) into a staging table, build the key and
        indexes, and swap it in, with the state row, in one transaction; the rows loaded."""

    @abstractmethod
    def incremental(self, spec: TableSpec, batches: Any, days: list[date] | None, state: StateRow) -> int:
        """Replace the rows of `days` (None: all rows) or upsert by the primary key, in one transaction."""

    @abstractmethod
    def close(self) -> None: ...


def create_target(kind: str, url: str, name: str) -> Target:
    """An open target of `kind` at `url` (a resolved secret: never log it); `name` is the block's."""
    if kind == "postgres":
        try:
            import adbc_driver_postgresql.dbapi  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError(f"publishing to PostgreSQL (target '{name}')", "postgres") from exc
        from lakestack.publish.postgres import PostgresTarget

        return PostgresTarget(url, name)
    if kind == "mysql":
        try:
            import pymysql  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError(f"publishing to MySQL/MariaDB (target '{name}')", "mysql") from exc
        from lakestack.publish.mysql import MySQLTarget

        return MySQLTarget(url, name)
    raise UsageError(f"publish target '{name}': unknown kind '{kind}'")

"""The `Engine` family: where SQL over lakehouse tables runs.

Every SQL statement a project carries (a `lakestack query`, a Gold model, a `custom_sql` check, a
row filter) reaches an engine through one door: :func:`lakestack.engine.open_sandbox`. A sandbox
sees only the tables it was given (registered before it is locked), runs exactly one SELECT, and
stops at its limits; nothing else opens its own connection for such SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lakestack.errors import UsageError

MiB = 1024 * 1024


class Engine(ABC):
    """Runs SQL over Iceberg tables that lakestack plans; each engine declares what it can do."""

    name: str
    supports_delete_files: bool = False

    @abstractmethod
    def register(self, name: str, table: Any) -> None:
        """Make an Iceberg table queryable under `name` (e.g. `bronze_orders`)."""

    @abstractmethod
    def sql(self, query: str) -> Any:
        """Run one query and return an Arrow table."""

    @abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SqlLimits:
    """What one sandboxed statement may use. `None` for rows/bytes means no limit (the result is
    still streamed, so memory follows the batch, not the result)."""

    memory_limit: str = "1GB"  # DuckDB's buffer manager (joins, sorts, aggregates)
    threads: int = 2
    timeout_s: float = 60.0  # execution and, for streams, the consumer's serialisation too
    max_rows: int | None = None
    max_bytes: int | None = None  # Arrow (uncompressed) bytes of the result


# Defaults per use; docs/security.md lists them.
QUERY_LIMITS = SqlLimits(max_rows=100_000, max_bytes=256 * MiB)
QUERY_TO_FILE_LIMITS = SqlLimits(max_rows=10_000_000, max_bytes=4096 * MiB)
MODEL_LIMITS = SqlLimits(memory_limit="2GB", timeout_s=1800.0)
CHECK_LIMITS = SqlLimits(timeout_s=600.0)


@dataclass(frozen=True, slots=True)
class SqlInput:
    """A table a sandbox may read: `name` as the SQL names it (`silver.orders`), an Iceberg table
    (optionally at `snapshot_id`) or an Arrow table (a staged result not yet committed)."""

    name: str
    table: Any
    snapshot_id: int | None = None


class SqlError(UsageError):
    """A sandboxed statement did not run to the end. `label` names the SQL (`the query`,
    `model daily_order_metrics`), `detail` is the engine's first line, `line` the SQL line if known."""

    def __init__(self, message: str, *, label: str, detail: str = "", line: int | None = None) -> None:
        self.label = label
        self.detail = detail
        self.line = line
        self.reason = message
        super().__init__(message)


class SqlRefused(SqlError):
    """Not exactly one SELECT, or it reached outside the tables it was given (a file, a URL, a setting)."""


class SqlTimeout(SqlError):
    """The statement (or the writing of its result) ran past `timeout_s`."""


class SqlOutOfMemory(SqlError):
    """The statement needed more than `memory_limit`."""


class SqlFailed(SqlError):
    """The engine raised: a missing table or column, a type error, a result over its limits."""


@dataclass(slots=True)
class Truncation:
    """Where a streamed result stopped short: at `rows` rows because of `limit` (`max_rows` or `max_bytes`)."""

    rows: int
    limit: str
    value: int


class ResultStream(ABC):
    """Record batches of one SELECT, within the sandbox's limits; a context manager that closes the sandbox."""

    schema: Any
    rows: int = 0
    truncated: Truncation | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[Any]: ...

    @abstractmethod
    def read_all(self) -> Any:
        """The (possibly truncated) result as one Arrow table."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sandbox(ABC):
    """A locked-down connection over a fixed set of tables. Every method runs exactly one SELECT.

    `label` names the SQL in messages (`the query`, `model fact_sales`); a caller may change it
    between statements (one sandbox evaluates the checks of a dataset)."""

    label: str

    @abstractmethod
    def check(self, sql: str) -> None:
        """Raise :class:`SqlRefused` unless `sql` is exactly one SELECT (parsed by the engine)."""

    @abstractmethod
    def table(self, sql: str) -> Any:
        """Run one SELECT to the end and return an Arrow table (the limits apply: a result over
        `max_rows`/`max_bytes` raises :class:`SqlFailed` rather than being cut short silently)."""

    @abstractmethod
    def stream(self, sql: str) -> ResultStream:
        """Run one SELECT and stream its batches; the sandbox closes with the stream."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

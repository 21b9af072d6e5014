"""The `Engine` family: where SQL over lakehouse tables runs (ADR 26).

Pipelines get an :class:`Engine` from :func:`lakestack.engine.create_engine` and give it sqlglot
expressions over planned Iceberg inputs; engines compute and write data files, storage commits.
Every SQL statement a project carries reaches an engine through a sandbox: a Gold model or a
`custom_sql` check through :meth:`Engine.open_sandbox` of the environment's engine, a `lakestack
query` or a row filter through :func:`lakestack.engine.open_sandbox` (DuckDB, locked down). A
sandbox sees only the tables it was given (registered before it is locked), runs exactly one
SELECT, and stops at its limits; nothing else opens its own connection for such SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lakestack.config import PROJECT_SQL_DIALECT
from lakestack.errors import UsageError

# Defined in storage (it holds the transaction), re-exported for engines.
from lakestack.storage.datafiles import DataFileWriter as DataFileWriter
from lakestack.storage.datafiles import WriteTarget as WriteTarget

MiB = 1024 * 1024


PROJECT_DIALECT = PROJECT_SQL_DIALECT
"""The sqlglot dialect project SQL (Gold models, `custom_sql` checks, queries) is written in; an
engine with another :attr:`Engine.dialect` gets it transpiled (:func:`transpile`)."""


class Engine(ABC):
    """Runs SQL over Iceberg tables that lakestack plans (SQLMesh's engine adapters are the model).

    An engine holds named relations (registered tables, data files, Arrow tables, materialized
    queries) and runs sqlglot expressions over them; it never commits: lakestack's storage layer
    commits the data files an engine writes, with the checkpoint, in one Iceberg transaction.
    Queries are sqlglot expressions (rendered with :attr:`dialect` by the engine); relation names
    are plain or `schema.name` identifiers as the SQL spells them. Create engines with
    :func:`lakestack.engine.create_engine`, and close them (`with` or :meth:`close`).
    """

    name: ClassVar[str]  # "duckdb", "spark"
    dialect: ClassVar[str]  # the sqlglot dialect the engine's SQL is rendered in
    supports_delete_files: ClassVar[bool] = False

    # -- relations -------------------------------------------------------------------------------
    @abstractmethod
    def register_table(self, name: str, table: Any, snapshot_id: int | None = None) -> None:
        """Make the pyiceberg `table` at `snapshot_id` (current when None) readable as `name`.

        The engine plans the snapshot's data files with pyiceberg and reads them as Parquet by
        Iceberg field id where the schema evolved; an empty table is a relation with the table's
        columns and no rows. Lazy: nothing is read until a query runs. Replaces an earlier `name`."""

    @abstractmethod
    def register_files(self, name: str, paths: Sequence[str], table: Any) -> None:
        """Make exactly the Parquet data files `paths` of the pyiceberg `table` readable as `name`
        (by the table's current schema: field ids for an evolved table, else by column name).
        Used for "the files Bronze added since the checkpoint" and "the Silver files a MERGE
        replaces". `paths` may be empty: then a relation with the table's columns and no rows. Lazy."""

    @abstractmethod
    def register_arrow(self, name: str, data: Any) -> None:
        """Make the in-memory `pyarrow.Table` `data` readable as `name` (a staged result, rows
        from a caller). The engine may copy it; the caller keeps ownership."""

    @abstractmethod
    def materialize(self, name: str, query: Any) -> None:
        """Compute the sqlglot `query` now and keep its result as relation `name` (a temporary
        table), for results read more than once. Memory: bounded by the engine's limits (DuckDB's
        buffer manager, Spark's executors); not pulled into Python."""

    # -- results ---------------------------------------------------------------------------------
    @abstractmethod
    def execute(self, query: Any, batch_rows: int = 131_072) -> Any:
        """Run the sqlglot `query` and return a `pyarrow.RecordBatchReader` over its result,
        streamed: at most a few batches of about `batch_rows` rows are held in Python at a time.
        The caller closes the reader (or reads it to the end) before the next `execute`.
        Errors are raised as the engine's own exception, at `execute` or while reading."""

    def fetch(self, query: Any) -> Any:
        """The whole result of `query` as one `pyarrow.Table` (for results known to be small or
        needed whole, such as counts or a MERGE's output)."""
        reader = self.execute(query)
        try:
            return reader.read_all()
        finally:
            reader.close()

    def records(self, query: Any, most: int) -> tuple[list[str], list[dict[str, Any]]] | None:
        """The result of `query` (at most `most` rows) as its column names and rows of Python values,
        as `ResultStream.records` holds them, when the engine reads them so without Arrow; else None."""
        return None

    def rows(self, query: Any) -> list[tuple[Any, ...]]:
        """The (small) result of `query` as Python tuples."""
        table = self.fetch(query)
        columns = [c.to_pylist() for c in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    @abstractmethod
    def write_data_files(self, query: Any, target: WriteTarget) -> list[Any]:
        """Write the result of the sqlglot `query` as Parquet data files for `target` and return
        their pyiceberg `DataFile`s (path, partition, record count, column statistics).

        Files are split by the target's partition spec and sized by its target file size; the
        result is conformed to `target.schema`. Nothing is committed: storage adds the files to
        its open transaction (with the checkpoint) and deletes nothing if the commit fails. Memory
        is bounded by the engine, not by the result (an engine may stream, or materialize within
        its own memory limit)."""

    def writer(self, query: Any) -> DataFileWriter:
        """`query`'s result as a :data:`DataFileWriter` for storage (`replace_files`, `append`)."""
        return lambda target: self.write_data_files(query, target)

    @abstractmethod
    def files_holding(self, paths: Sequence[str], keys: Sequence[str], relation: str) -> set[str]:
        """Which of the Parquet data files `paths` hold a row whose `keys` columns equal those of
        some row of the registered relation `relation` (paths returned as given)."""

    # -- project SQL -----------------------------------------------------------------------------
    def transpile(self, sql: str, *, label: str = "the SQL") -> str:
        """Project SQL (one statement in :data:`PROJECT_DIALECT`) as SQL for :meth:`open_sandbox`.

        The default is sqlglot's transpiler (:func:`transpile`); an engine with rewrites of its own
        (Spark: ASOF joins, `range()`) overrides this. Raises :class:`SqlFailed` with the SQL's
        line when the SQL cannot be translated; callers add the file."""
        return transpile(sql, self.dialect, label=label)

    @abstractmethod
    def open_sandbox(
        self,
        inputs: Sequence[SqlInput] | Callable[[list[str]], Sequence[SqlInput]],
        limits: SqlLimits,
        *,
        label: str = "the query",
        naming: Sequence[str] = (),
    ) -> Sandbox:
        """A :class:`Sandbox` over `inputs` only, for project SQL written in :attr:`dialect`
        (callers transpile from :data:`PROJECT_DIALECT` first). Exactly one SELECT per call, the
        `limits` enforced, errors as :class:`SqlError` kinds. Independent of this engine's own
        relations; closing it does not close the engine."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection/session and every relation; idempotent."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Dialects whose engine adds rewrites to sqlglot's (what sqlglot renders wrongly or not at all).
DIALECT_RULES: dict[str, str] = {"spark": "lakestack.engine.spark_sql:to_spark"}


def transpile(sql: str, dialect: str, *, label: str = "the SQL") -> str:
    """`sql` (one statement in :data:`PROJECT_DIALECT`) in `dialect`; unchanged when they match.

    Raises :class:`SqlFailed` with the SQL line when sqlglot cannot parse or render it (for a
    Gold model the caller adds the file and the model's first line)."""
    if dialect == PROJECT_DIALECT:
        return sql
    import importlib

    import sqlglot
    from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

    try:
        if dialect in DIALECT_RULES:  # sqlglot plus an engine's own rewrites (engine/spark_sql.py)
            module, _, function = DIALECT_RULES[dialect].partition(":")
            rewrite: Callable[[str], str] = getattr(importlib.import_module(module), function)
            return rewrite(sql)
        return sqlglot.transpile(sql, read=PROJECT_DIALECT, write=dialect, unsupported_level=ErrorLevel.RAISE)[0]
    except (ParseError, UnsupportedError) as exc:
        errors = getattr(exc, "errors", None) or []
        line = errors[0].get("line") if errors else None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SqlFailed(
            f"{label} cannot be translated to {dialect}: {first}", label=label, detail=first, line=line
        ) from None


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
    # A role's view of the table (governance): a function from the raw source (a sqlglot table
    # expression) and an `estimate(query, params)` callback (one statistics query before the lock)
    # to `(SELECT, parameters)` with masks and row filters. The sandbox then holds the
    # SELECT's result only, never the raw files (they stay out of `allowed_paths`).
    projection: Any = None


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
    """Record batches of one SELECT, within the sandbox's limits; a context manager that closes the sandbox.

    `records`: the whole result as Python values (each row a dict, as pyarrow's `to_pylist` gives
    it, zoned timestamps in UTC), when the stream was asked for a small result (`Sandbox.stream`'s
    `small_rows`) and it was one; None otherwise. Iterating such a stream gives the same rows as
    Arrow batches (pyarrow is imported only then)."""

    schema: Any
    rows: int = 0
    truncated: Truncation | None = None
    records: list[dict[str, Any]] | None = None

    @property
    def columns(self) -> list[str]:
        """The result's column names."""
        return list(self.schema.names)

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
    def stream(self, sql: str, *, small_rows: int = 0) -> ResultStream:
        """Run one SELECT and stream its batches; the sandbox closes with the stream. With
        `small_rows`, a result of at most that many rows (within the limits) may come whole as
        Python values instead (`ResultStream.records`; an engine may ignore it)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

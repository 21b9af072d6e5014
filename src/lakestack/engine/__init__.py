"""SQL engines over lakehouse tables: DuckDB (embedded default) and Spark (`lakestack[spark]`).

Pipelines get an engine from :func:`create_engine` (the environment's `engine:`) and talk to it
through the :class:`~lakestack.engine.base.Engine` interface only. Untrusted project SQL (`lakestack
query`, the HTTP/PostgreSQL endpoints, row filters) enters through :func:`open_sandbox`, which stays
DuckDB, locked down; see `engine/base.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lakestack.engine.base import Engine, Sandbox, SqlInput, SqlLimits

ENGINES = ("duckdb", "spark")  # `engine:` values; the first is the default
ENGINE_PACKAGES = {"duckdb": "duckdb", "spark": "pyspark"}  # the distribution whose version lineage reports


def create_engine(environment: Any = None, *, purpose: str = "pipeline", limits: SqlLimits | None = None) -> Engine:
    """The engine the environment names (`engine: duckdb` when `environment` is None or says nothing).

    `purpose` names the work in messages and logs (`silver`, `gold`, `checks`); `limits` bounds
    memory and threads (DuckDB's buffer manager; Spark's driver/executor settings where it can).
    `engine: spark` imports `lakestack.engine.spark` lazily; without it or without PySpark this
    raises :class:`MissingExtraError` (exit 2) naming `pip install 'lakestack[spark]'`."""
    from lakestack.errors import MissingExtraError, UsageError

    name = str(getattr(environment, "engine", None) or "duckdb")
    if name == "duckdb":
        from lakestack.engine.duckdb import DuckDBEngine

        return DuckDBEngine.for_limits(limits)
    if name == "spark":
        import importlib

        try:
            importlib.import_module("pyspark")
            spark = importlib.import_module("lakestack.engine.spark")
        except ImportError as exc:
            if (exc.name or "").split(".")[0] == "pyspark" or exc.name == "lakestack.engine.spark":
                raise MissingExtraError(f"engine: spark ({purpose})", "spark") from None
            raise
        engine: Engine = spark.SparkEngine(environment, purpose=purpose, limits=limits)
        return engine
    raise UsageError(f"unknown engine '{name}' (known: {', '.join(ENGINES)})")


def open_sandbox(
    inputs: Sequence[SqlInput] | Callable[[list[str]], Sequence[SqlInput]],
    limits: SqlLimits | None = None,
    *,
    label: str = "the query",
    naming: Sequence[str] = (),
) -> Sandbox:
    """A locked-down connection over `inputs` (registered before the lock), for untrusted SQL.

    `inputs` may be a function from the table names the SQL in `naming` contains to the tables
    to register (e.g. those of them the warehouse holds)."""
    from lakestack.engine.duckdb import open_sandbox as duckdb_sandbox

    return duckdb_sandbox(inputs, limits, label=label, naming=naming)


def tables_named(sql: str) -> list[str]:
    """The tables a SELECT names, as the catalog spells them."""
    from lakestack.engine.duckdb import tables_named as named

    return named(sql)

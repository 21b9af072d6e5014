"""SQL engines over lakehouse tables: DuckDB (embedded default); Spark joins later.

Project SQL (queries, Gold models, `custom_sql` checks, row filters) enters through
:func:`open_sandbox` only; see `engine/base.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lakestack.engine.base import Sandbox, SqlInput, SqlLimits


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

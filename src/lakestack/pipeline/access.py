"""The policy layer on the read paths: what a role's sandbox is given.

Every read of table data by a caller (`lakestack query`, `show`, check failure samples, quarantine
rows) asks :func:`sandbox_inputs` for the tables its SQL names: a table the role may not read is
left out (the SQL then fails exactly as for a table that does not exist); a table it reads in
clear is registered as usual (a view over its data files); any other is registered as the role's
projection (masked columns, denied columns dropped, row filter applied), computed before the
sandbox is locked, so no raw value or data file of it is reachable to the SQL (ADR 0019).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lakestack.config import PROJECT_SQL_DIALECT
from lakestack.governance.policy import ColumnAccess, Policy, TableAccess


def table_pii(table: Any) -> dict[str, str]:
    """Column → PII class, from the table's `lakestack.pii.<column>` properties."""
    prefix = "lakestack.pii."
    return {k.removeprefix(prefix): v for k, v in table.properties.items() if k.startswith(prefix)}


def table_access(
    policy: Policy, role: str, dataset: str, table: Any, user: dict[str, str] | None
) -> TableAccess | None:
    """How `role` reads `dataset` (an Iceberg table); None when it may not."""
    columns = [f.name for f in table.schema().fields]
    return policy.access(role, dataset, table_pii(table), columns, user)


def sandbox_inputs(
    policy: Policy,
    role: str | None,
    tables: dict[str, Any],
    pins: Mapping[str, int | None],
    *,
    user: dict[str, str] | None = None,
    sql: str | None = None,
) -> list[Any]:
    """The `SqlInput`s a sandbox for `role` gets for `tables` (identifier → Iceberg table); with
    `role` None, every table as it is (the engineer's view without a policy file)."""
    from lakestack.engine.base import SqlInput

    if role is None:
        return [SqlInput(t, table, pins.get(t)) for t, table in tables.items()]
    key: list[bytes | None] = []  # resolved once, only when some column is hashed
    only = query_columns(sql) if sql is not None else None
    out = []
    for identifier, table in tables.items():
        access = table_access(policy, role, identifier, table, user)
        if access is None:
            continue
        if access.in_clear:
            out.append(SqlInput(identifier, table, pins.get(identifier)))
            continue
        if not key and any(c.method in ("hash", "tokenize") for c in access.visible()):
            key.append(policy.key())
        out.append(SqlInput(identifier, table, pins.get(identifier), projection=_projection(access, key, only)))
    return out


REPEATS = 0.5  # hash per distinct value when a column has at most this many distinct values per row


def _projection(access: TableAccess, key: list[bytes | None], only: set[str] | None) -> Any:
    """`project(source, estimate=None)`: the role's projection of `source`. With `estimate` (runs a
    query before the lock, returns its one row), hashed columns are first counted
    (`masking.distinct_counts`): one whose values repeat (distinct <= REPEATS * rows) is hashed once
    per distinct value, any other row by row (the distinct-and-join would cost more than it saves)."""

    def project(source: Any, estimate: Any = None) -> tuple[Any, dict[str, Any]]:
        from lakestack.governance.masking import distinct_counts

        params = dict(access.params)
        hashed = access.hashed(only)
        per_distinct: set[str] | None = None
        if estimate is not None and hashed:
            rows, *distinct = estimate(distinct_counts(hashed, source, access.row_filter), params)
            per_distinct = {c for c, n in zip(hashed, distinct, strict=True) if n <= REPEATS * rows}
        return access.select(source, key[0] if key else None, only, per_distinct), params

    return project


def query_columns(sql: str) -> set[str] | None:
    """The lower-cased identifiers `sql` names, or None when it may read every column (a `*`
    outside `count(*)`, `COLUMNS(...)`, or SQL sqlglot cannot parse): a role's projection then
    computes only the masks a query can reach."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=PROJECT_SQL_DIALECT)
    except Exception:
        return None
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            return None
    if tree.find(exp.Columns) is not None:
        return None
    tables = {t.alias_or_name.lower() for t in tree.find_all(exp.Table)}
    if any(not c.table and c.name.lower() in tables for c in tree.find_all(exp.Column)):
        return None  # `SELECT c FROM t AS c`: the whole row as a struct
    return {i.name.lower() for i in tree.find_all(exp.Identifier)}


def mask_sample(row: dict[str, Any], access: TableAccess | None) -> dict[str, Any] | None:
    """A recorded failing-row sample as `access` allows: None when the dataset is denied; denied
    columns dropped; PII the role may not read in clear redacted (samples hold PII already hashed
    without a key, which only a role reading the class in clear should see)."""
    from lakestack.governance.masking import REDACTED

    if access is None:
        return None
    by_name: dict[str, ColumnAccess] = {c.name: c for c in access.columns}
    out: dict[str, Any] = {}
    for column, value in row.items():
        found = by_name.get(column)
        if found is not None and found.mode == "denied":
            continue
        out[column] = REDACTED if found is not None and found.mode == "masked" and value is not None else value
    return out


def read_sql(identifier: str, limit: int | None, columns: list[str] | None) -> str:
    """`SELECT <columns or *> FROM identifier LIMIT n`, built with sqlglot."""
    from sqlglot import exp

    select = exp.select(*(exp.column(c, quoted=True) for c in columns) if columns else "*")
    query = select.from_(exp.to_table(identifier, dialect=PROJECT_SQL_DIALECT))
    return (query.limit(limit) if limit is not None else query).sql(PROJECT_SQL_DIALECT)


def project_datasets(lake: Any) -> dict[str, Any]:
    """Every dataset of the project (`governance.check.Dataset`: columns and PII classes): the
    warehouse's tables, and the declared ones not built yet (columns unknown)."""
    from lakestack.governance.check import Dataset

    out: dict[str, Any] = {}
    for identifier in lake.warehouse.tables():
        table = lake.warehouse.load(identifier)
        out[identifier] = Dataset(tuple(f.name for f in table.schema().fields), table_pii(table))
    declared = [f"{layer}.{s}" for s in lake.project.config.sources for layer in ("bronze", "quarantine")]
    declared += [f"silver.{d}" for d in lake.silver_datasets()] + [f"gold.{m}" for m in lake.gold_models()]
    for identifier in declared:
        out.setdefault(identifier, Dataset((), {}))
    return out


def pii_locations(lake: Any) -> list[dict[str, str]]:
    """Where every PII class lives: one row per (class, dataset, column), from the tables' properties."""
    rows = []
    for identifier in lake.warehouse.tables():
        for column, cls in table_pii(lake.warehouse.load(identifier)).items():
            rows.append({"pii": cls, "dataset": identifier, "column": column})
    return sorted(rows, key=lambda r: (r["pii"], r["dataset"], r["column"]))


def governed_checks(lake: Any, rows: list[dict[str, Any]], role: str | None) -> list[dict[str, Any]]:
    """Check results or failing-row samples (`row` as JSON) as `role` may see them: rows of a
    dataset it may not read are left out, and a sample's columns are masked by its access."""
    import json

    chosen = lake.role(role)
    if chosen is None:
        return rows
    out, accesses = [], {}
    for row in rows:
        dataset = row["dataset"]
        if dataset not in accesses:
            exists = lake.warehouse.exists(dataset)
            table = lake.warehouse.load(dataset) if exists else None
            accesses[dataset] = table_access(lake.policy, chosen, dataset, table, {}) if table is not None else None
        access = accesses[dataset]
        if access is None:
            continue
        if "row" in row:
            masked = mask_sample(json.loads(row["row"]), access)
            row = {**row, "row": json.dumps(masked, default=str, sort_keys=True)}
        out.append(row)
    return out

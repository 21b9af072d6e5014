"""Column lineage of a Gold model: which upstream columns each result column is made from, and how.

sqlglot qualifies the model's SELECT against the upstream tables' columns (so `SELECT *`,
`lines.*` and unqualified names resolve), then its `lineage` walks each result column back to the
`layer.table` columns it reads. Each input gets OpenLineage transformation types:

- DIRECT / IDENTITY: the value is copied (through CTEs and aliases only);
- DIRECT / TRANSFORMATION: computed from it (a cast, arithmetic, CASE, a function);
- DIRECT / AGGREGATION: an aggregate function on the way (`sum`, `count`, `max`, ...);
- INDIRECT / JOIN, FILTER, GROUP_BY, SORT, WINDOW: columns that decide which rows exist or how
  they are grouped; they affect the whole dataset, so they go to the facet's `dataset` list.

Pure: a SQL text and a mapping of upstream columns in, plain values out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Upstream = tuple[str, str]  # ("silver.orders", "order_id")
_MASKING = ("MD5", "SHA", "SHA2", "SHA256", "HASH")


@dataclass(frozen=True, slots=True)
class Transformation:
    type: str  # DIRECT | INDIRECT
    subtype: str  # IDENTITY | TRANSFORMATION | AGGREGATION | JOIN | FILTER | GROUP_BY | SORT | WINDOW
    masking: bool = False


@dataclass(frozen=True, slots=True)
class ColumnLineage:
    """Result column → the upstream columns it is made from; plus the dataset-wide (INDIRECT) inputs."""

    fields: dict[str, dict[Upstream, tuple[Transformation, ...]]]
    dataset: dict[Upstream, tuple[Transformation, ...]]


def column_lineage(
    sql: str,
    upstream: Mapping[str, Sequence[str]],
    *,
    columns: Sequence[str] = (),
    dialect: str = "duckdb",
) -> ColumnLineage:
    """Lineage of `columns` (default: every result column) of the SELECT `sql`.

    `upstream` maps `layer.table` to its column names. A column sqlglot cannot follow is left
    out (logged), never guessed.
    """
    from sqlglot import exp
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    schema: dict[str, Any] = _schema(upstream)
    qualified: Any = qualify(
        _parse(sql, dialect), schema=schema, dialect=dialect, validate_qualify_columns=False, identify=False
    )
    scope = build_scope(qualified)
    if scope is None or not isinstance(scope.expression, exp.Selectable):
        return ColumnLineage({}, {})
    names = list(columns) or [s.alias_or_name for s in scope.expression.selects]
    indirect = _indirect(qualified)  # before `lineage`, which trims the scope's selects in place
    nodes = _all_nodes(qualified, schema, dialect, scope)
    fields: dict[str, dict[Upstream, tuple[Transformation, ...]]] = {}
    for name in names:
        try:
            node = nodes.get(name) or lineage(name, qualified, schema=schema, dialect=dialect, scope=scope)
        except Exception as exc:  # sqlglot cannot follow every construct: leave the column out
            log.info("no column lineage for %s: %s", name, exc)
            continue
        fields[name] = _direct(node)
    return ColumnLineage(fields, indirect)


def _all_nodes(qualified: Any, schema: dict[str, Any], dialect: str, scope: Any) -> dict[str, Any]:
    """Every result column's lineage in one walk (sqlglot >= 30 shares work across columns: 2.4x
    faster on a 60-column model); empty when this sqlglot cannot, or one column cannot be followed."""
    from sqlglot.lineage import lineage

    try:
        nodes = lineage(None, qualified, schema=schema, dialect=dialect, scope=scope)  # type: ignore[call-overload]
    except Exception:  # older sqlglot, or one column it cannot follow: go column by column
        return {}
    return nodes if isinstance(nodes, dict) else {}


def _parse(sql: str, dialect: str) -> Any:  # a sqlglot expression
    import sqlglot

    return sqlglot.parse_one(sql, read=dialect)


def _schema(upstream: Mapping[str, Sequence[str]]) -> dict[str, dict[str, dict[str, str]]]:
    """sqlglot's nested schema. Types do not change lineage, so every column is given one type."""
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for identifier, names in upstream.items():
        layer, _, table = identifier.partition(".")
        schema.setdefault(layer, {})[table] = {name: "varchar" for name in names}
    return schema


def _direct(root: object) -> dict[Upstream, tuple[Transformation, ...]]:
    """Each leaf (an upstream table's column) with the strongest transformation on its path."""
    found: dict[Upstream, Transformation] = {}
    for path in _paths(root):
        leaf = path[-1]
        table = _table_of(leaf)
        if table is None:
            continue
        kind = _kind(path[:-1])
        key = (table, str(getattr(leaf, "name", "")).split(".")[-1])
        found[key] = _stronger(found.get(key), kind)
    return {key: (value,) for key, value in sorted(found.items())}


def _paths(root: object) -> Iterable[list[object]]:
    stack: list[list[object]] = [[root]]
    seen = 0
    while stack and seen < 100_000:  # a guard against pathological fan-out, not a real limit
        path = stack.pop()
        seen += 1
        downstream = list(getattr(path[-1], "downstream", []))
        if not downstream:
            yield path
        stack.extend([*path, child] for child in downstream)


def _table_of(node: object) -> str | None:
    from sqlglot import exp

    source = getattr(node, "source", None)
    if isinstance(source, exp.Table) and source.db:
        return f"{source.db}.{source.name}"
    return None


def _kind(path: Sequence[object]) -> Transformation:
    """IDENTITY when every step only renames; AGGREGATION when an aggregate is on the way."""
    from sqlglot import exp

    identity, aggregate, masking = True, False, False
    for node in path:
        expression = getattr(node, "expression", None)
        if not isinstance(expression, exp.Expression) or isinstance(expression, exp.Table):
            continue
        inner = expression.this if isinstance(expression, exp.Alias) else expression
        if not isinstance(inner, exp.Column):
            identity = False
        if inner.find(exp.AggFunc) is not None:
            aggregate = True
        if any(type(n).__name__.upper() in _MASKING for n in inner.walk()):
            masking = True
    subtype = "AGGREGATION" if aggregate else "IDENTITY" if identity else "TRANSFORMATION"
    return Transformation("DIRECT", subtype, masking)


_RANK = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}


def _stronger(old: Transformation | None, new: Transformation) -> Transformation:
    if old is None:
        return new
    winner = new if _RANK[new.subtype] > _RANK[old.subtype] else old
    return Transformation("DIRECT", winner.subtype, old.masking or new.masking)


def _indirect(qualified: object) -> dict[Upstream, tuple[Transformation, ...]]:
    """Columns in JOIN conditions, WHERE/HAVING/QUALIFY, GROUP BY, ORDER BY and window specs, in
    every scope (CTEs and subqueries too), resolved to the upstream table columns they come from."""
    from sqlglot.optimizer.scope import traverse_scope

    found: dict[Upstream, set[str]] = {}
    for scope in traverse_scope(qualified):  # type: ignore[arg-type]
        for subtype, node in _clauses(scope.expression):
            for column in node.find_all(_column_type()):
                for upstream in _resolve_here(scope, column):
                    found.setdefault(upstream, set()).add(subtype)
    return {
        key: tuple(Transformation("INDIRECT", subtype) for subtype in sorted(subtypes))
        for key, subtypes in sorted(found.items())
    }


def _column_type() -> type:
    from sqlglot import exp

    return exp.Column


def _clauses(select: object) -> Iterable[tuple[str, Any]]:
    from sqlglot import exp

    if not isinstance(select, exp.Select):
        return
    for join in select.args.get("joins") or []:
        for key in ("on", "using"):
            if join.args.get(key) is not None:
                value = join.args[key]
                yield from (("JOIN", v) for v in (value if isinstance(value, list) else [value]))
    for key, subtype in (("where", "FILTER"), ("having", "FILTER"), ("qualify", "FILTER"), ("group", "GROUP_BY")):
        if select.args.get(key) is not None:
            yield subtype, select.args[key]
    if select.args.get("order") is not None:
        yield "SORT", select.args["order"]
    for window in select.find_all(exp.Window):
        if window.find_ancestor(exp.Select) is select:
            for key in ("partition_by", "order"):
                value = window.args.get(key)
                for part in value if isinstance(value, list) else [value] if value is not None else []:
                    yield "WINDOW", part
    for agg_filter in select.find_all(exp.Filter):
        if agg_filter.find_ancestor(exp.Select) is select:
            yield "FILTER", agg_filter.expression


def _resolve_here(scope: Any, column: Any) -> set[Upstream]:
    """A clause's column: from a source, or (no table: ORDER BY / GROUP BY an alias) a result column."""
    from sqlglot import exp

    if column.table:
        return _resolve(scope, column.table, column.name, depth=0)
    found: set[Upstream] = set()
    for select in scope.expression.selects:
        if select.alias_or_name == column.name:
            for used in select.find_all(exp.Column):
                if used.table:
                    found |= _resolve(scope, used.table, used.name, depth=0)
    return found


def _resolve(scope: object, table: str, column: str, depth: int) -> set[Upstream]:
    """The upstream table columns a column of `scope` (from the source aliased `table`) reads."""
    from sqlglot import exp

    if depth > 50:
        return set()
    sources = getattr(scope, "sources", {})
    source = sources.get(table)
    if isinstance(source, exp.Table):
        return {(f"{source.db}.{source.name}", column)} if source.db else set()
    inner = getattr(source, "expression", None)
    if not isinstance(inner, exp.Query):
        return set()
    found: set[Upstream] = set()
    for select in inner.selects:
        if select.alias_or_name != column:
            continue
        for used in select.find_all(exp.Column):
            found |= _resolve(source, used.table, used.name, depth + 1)
    return found

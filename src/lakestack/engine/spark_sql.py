"""Project SQL (DuckDB's dialect) made Spark SQL, and the result types DuckDB would give it.

sqlglot transpiles most of a model; the rules here cover what it renders wrongly or not at all
for Spark, as small functions over the tree (sqlglot's own style):

- `a ASOF LEFT JOIN b ON eq AND a.x >= b.y` → a range join against `b` with the next `y` per key
  (`lead`), which picks the same single row of `b` as DuckDB's ASOF join;
- `range(start, stop, step) AS t(c)` (stop excluded) → `explode(sequence(...))`, empty when
  `stop <= start`, timestamps when the step is an interval (as DuckDB's `range` over dates);
- `isodow(d)` → `EXTRACT(DAYOFWEEK_ISO FROM d)` (sqlglot's rendering is off by one day);
- `DATE - DATE` → `DATEDIFF` (days as an integer, as DuckDB; Spark would give an interval), where
  the input schemas are known or both sides are casts to DATE;
- `epoch(ts)` → microseconds / 1e6 as DOUBLE; `a / b` → a DOUBLE division, as DuckDB's always is.

The project's dialect defines a model's result schema: :func:`duckdb_schema` asks DuckDB for it
over empty inputs, and the Spark engine casts Spark's result to it (a `sum` of DECIMAL(18,2) is
DECIMAL(38,2) in DuckDB, DECIMAL(28,2) in Spark), so a Gold table is the same whichever engine
built it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import sqlglot
import sqlglot.expressions as exp

log = logging.getLogger(__name__)
READ = "duckdb"
WRITE = "spark"
_ORIGINALS: OrderedDict[str, str] = OrderedDict()  # Spark SQL made here → the DuckDB SQL it came from
_MAX_ORIGINALS = 256


def to_spark(sql: str, schema: dict[str, dict[str, str]] | None = None) -> str:
    """`sql` (one DuckDB statement) as Spark SQL. `schema` (`{"silver.orders": {"col": "DATE"}}`)
    enables the type-aware rules. Raises sqlglot's ParseError/UnsupportedError when it cannot."""
    from sqlglot.errors import ErrorLevel

    tree: Any = sqlglot.parse_one(sql, read=READ)
    if schema:
        tree = _date_differences(tree, schema)
    for rule in RULES:
        tree = tree.transform(rule)
    out = tree.sql(WRITE, unsupported_level=ErrorLevel.RAISE)
    _ORIGINALS[out] = sql
    while len(_ORIGINALS) > _MAX_ORIGINALS:
        _ORIGINALS.popitem(last=False)
    return str(out)


def original_of(spark_sql: str) -> str | None:
    """The DuckDB SQL `spark_sql` was made from by :func:`to_spark` in this process, if it was."""
    return _ORIGINALS.get(spark_sql)


def _asof_join(node: exp.Expression) -> exp.Expression:
    if not isinstance(node, exp.Join) or (node.args.get("method") or "").upper() != "ASOF":
        return node
    right = node.this
    on = node.args.get("on")
    if not isinstance(right, exp.Table) or on is None:
        raise sqlglot.errors.UnsupportedError("ASOF JOIN needs a table or CTE on its right and an ON condition")
    alias = right.alias_or_name
    equal: list[exp.Expression] = []
    ordering: list[exp.Expression] = []
    for part in _conjuncts(on):
        (equal if isinstance(part, exp.EQ) else ordering).append(part)
    if len(ordering) != 1 or not isinstance(ordering[0], exp.GTE | exp.GT | exp.LTE | exp.LT):
        raise sqlglot.errors.UnsupportedError("ASOF JOIN needs exactly one >=, >, <= or < in its ON condition")
    cmp = ordering[0]
    left_value, right_value, op = cmp.this, cmp.expression, type(cmp)  # type: Any, Any, Any
    if _qualifier(left_value) == alias:  # b.y <= a.x: turn it round
        left_value, right_value = right_value, left_value
        op = {exp.GTE: exp.LTE, exp.GT: exp.LT, exp.LTE: exp.GTE, exp.LT: exp.GT}[op]
    if _qualifier(right_value) != alias:
        raise sqlglot.errors.UnsupportedError(f"ASOF JOIN: qualify the columns of {alias} in its ON condition")
    keys = [side for eq in equal for side in (eq.this, eq.expression) if _qualifier(side) == alias]
    by = exp.column(right_value.name, quoted=True)
    forward = op in (exp.GTE, exp.GT)  # the latest b.y at or before a.x; else the earliest at or after
    neighbour = exp.Window(
        this=exp.Anonymous(this="LEAD" if forward else "LAG", expressions=[by.copy()]),
        partition_by=[exp.column(k.name, quoted=True) for k in keys],
        order=exp.Order(expressions=[exp.Ordered(this=by.copy())]),
    )
    source = exp.Table(this=right.this.copy(), db=right.args.get("db"), catalog=right.args.get("catalog"))
    ranged = exp.select("*", exp.alias_(neighbour, "__asof_next", quoted=True)).from_(source)
    next_col = exp.column("__asof_next", table=alias, quoted=True)
    bound_cls = {exp.GTE: exp.LT, exp.GT: exp.LTE, exp.LTE: exp.GT, exp.LT: exp.GTE}[op]
    bound = exp.or_(
        exp.Is(this=next_col, expression=exp.Null()), bound_cls(this=left_value.copy(), expression=next_col.copy())
    )
    condition = exp.and_(*[e.copy() for e in equal], op(this=left_value.copy(), expression=right_value.copy()), bound)
    side = node.args.get("side")
    return exp.Join(this=ranged.subquery(alias), on=condition, side=side)


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _qualifier(node: exp.Expression) -> str | None:
    return node.table if isinstance(node, exp.Column) and node.table else None


def _range_table(node: exp.Expression) -> exp.Expression:
    """`range(a, b, step) AS t(c)` in FROM/JOIN → a subquery over `explode(sequence(...))`."""
    if not isinstance(node, exp.Table) or not isinstance(node.this, exp.GenerateSeries):
        return node
    series = node.this
    start, stop, step = series.args["start"], series.args["end"], series.args.get("step")
    alias = node.args.get("alias")
    column = alias.columns[0].name if alias is not None and alias.columns else "range"
    name = alias.name if alias is not None and alias.name else "range"
    interval = isinstance(step, exp.Interval)
    if interval:
        start = exp.Cast(this=start.copy(), to=exp.DataType.build("timestamp"))
        stop = exp.Cast(this=stop.copy(), to=exp.DataType.build("timestamp"))
    step = step.copy() if step is not None else exp.Literal.number(1)
    seq = exp.Anonymous(this="SEQUENCE", expressions=[start.copy(), stop.copy(), step])
    values = exp.If(this=exp.GT(this=stop.copy(), expression=start.copy()), true=seq, false=exp.Array())
    exploded = exp.select(exp.alias_(exp.Explode(this=values), column, quoted=True))
    inner = exploded.subquery("__range")
    col = exp.column(column, quoted=True)
    if series.args.get("is_end_exclusive"):
        chosen = exp.select(col).from_(inner).where(exp.LT(this=col.copy(), expression=stop.copy()))
    else:
        chosen = exp.select(col).from_(inner)
    return chosen.subquery(name)


def _isodow(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DayOfWeekIso):
        return exp.Extract(this=exp.var("DAYOFWEEK_ISO"), expression=node.this)
    return node


def _epoch(node: exp.Expression) -> exp.Expression:
    """DuckDB's `epoch(ts)` / `epoch(ts - ts)`: seconds as a DOUBLE, to the microsecond."""
    is_epoch = isinstance(node, exp.TimeToUnix) or (
        isinstance(node, exp.Anonymous) and str(node.this).lower() == "epoch" and len(node.expressions) == 1
    )
    if not is_epoch:
        return node
    value = node.this if isinstance(node, exp.TimeToUnix) else node.expressions[0]

    def micros(ts: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="UNIX_MICROS", expressions=[exp.cast(ts.copy(), "timestamp")])

    micro: exp.Expression
    if isinstance(value, exp.Sub):
        micro = exp.Sub(this=micros(value.this), expression=micros(value.expression))
    else:
        micro = micros(value)
    return exp.Div(this=exp.cast(micro, "double"), expression=exp.cast(exp.Literal.number(1_000_000), "double"))


def _date_cast_difference(node: exp.Expression) -> exp.Expression:
    """`CAST(a AS DATE) - CAST(b AS DATE)` (days, as DuckDB) → DATEDIFF; Spark would give an interval."""
    if isinstance(node, exp.Sub) and all(
        isinstance(side, exp.Cast) and side.to.is_type("date") for side in (node.this, node.expression)
    ):
        return exp.DateDiff(this=node.this.copy(), expression=node.expression.copy(), unit=exp.var("DAY"))
    return node


def _float_division(node: exp.Expression) -> exp.Expression:
    """DuckDB's `/` always gives a DOUBLE (integers and decimals alike); Spark's may be a DECIMAL."""
    if not isinstance(node, exp.Div):
        return node
    left = node.this
    if isinstance(left, exp.Cast) and left.to.is_type("double"):
        return node
    return exp.Div(this=exp.cast(left.copy(), "double"), expression=node.expression.copy())


RULES = (_asof_join, _range_table, _isodow, _epoch, _date_cast_difference, _float_division)


def rewrite(tree: exp.Expression) -> exp.Expression:
    """lakestack's own SQL trees (built with DuckDB's semantics) with the rules applied, for Spark."""
    for rule in RULES:
        tree = tree.transform(rule)
    return tree


def _date_differences(tree: exp.Expression, schema: dict[str, dict[str, str]]) -> exp.Expression:
    """`DATE - DATE` as DATEDIFF, found by sqlglot's type annotation over `schema`; the tree is
    returned unchanged when it cannot be qualified (then Spark's own error says what is wrong)."""
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    nested: dict[str, Any] = {}
    for name, columns in schema.items():
        db, _, table = name.rpartition(".")
        (nested.setdefault(db, {}) if db else nested)[table] = columns
    try:
        typed = annotate_types(
            qualify(
                tree.copy(),
                schema=nested,
                dialect=READ,
                quote_identifiers=False,
                expand_stars=False,
                validate_qualify_columns=False,
                identify=False,
            ),
            schema=nested,
            dialect=READ,
        )
    except Exception as exc:  # sqlglot cannot follow the query: keep it as written
        log.debug("no type annotation for a model (%s)", exc)
        return tree
    found = False
    for sub in list(typed.find_all(exp.Sub)):
        left, right = sub.this.type, sub.expression.type
        if left is not None and right is not None and left.is_type("date") and right.is_type("date"):
            sub.replace(exp.DateDiff(this=sub.this.copy(), expression=sub.expression.copy(), unit=exp.var("DAY")))
            found = True
    return typed if found else tree


def arrow_to_sql_type(kind: Any) -> str | None:
    """The DuckDB type name of an Arrow type, for sqlglot's annotation (None: a nested type)."""
    import pyarrow as pa

    checks = (
        (pa.types.is_string, "VARCHAR"),
        (pa.types.is_large_string, "VARCHAR"),
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_int8, "TINYINT"),
        (pa.types.is_int16, "SMALLINT"),
        (pa.types.is_int32, "INT"),
        (pa.types.is_int64, "BIGINT"),
        (pa.types.is_float32, "FLOAT"),
        (pa.types.is_float64, "DOUBLE"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_binary, "BLOB"),
    )
    for check, name in checks:
        if check(kind):
            return name
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision}, {kind.scale})"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
    return None


def sql_schema(schemas: dict[str, Any]) -> dict[str, dict[str, str]]:
    """`{"silver.orders": pa.Schema}` as sqlglot schema (name → column → type), nested columns left out."""
    out: dict[str, dict[str, str]] = {}
    for name, schema in schemas.items():
        out[name.lower()] = {f.name: t for f in schema if (t := arrow_to_sql_type(f.type)) is not None}
    return out


def duckdb_schema(sql: str, schemas: dict[str, Any]) -> Any:
    """The Arrow schema DuckDB gives `sql` over empty tables of `schemas` (`{"silver.orders":
    pa.Schema}`); None when DuckDB cannot run it that way."""
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        for i, (name, schema) in enumerate(schemas.items()):
            table = exp.to_table(name, dialect=READ)
            if table.db:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.to_identifier(table.db).sql(READ)}")
            con.register(f"__empty_{i}", schema.empty_table())
            con.execute(f"CREATE OR REPLACE VIEW {table.sql(READ)} AS SELECT * FROM __empty_{i}")
        relation = con.sql(sql)
        fetch = getattr(relation.limit(0), "to_arrow_table", None) or relation.limit(0).arrow
        return fetch().schema
    except Exception as exc:
        log.debug("DuckDB could not type the query over empty inputs (%s)", exc)
        return None
    finally:
        con.close()

"""Checks → SQL, built as sqlglot expressions (so the same check renders for DuckDB and Spark).

Each row-level check has a *failing rows* query; its observed value is the count of those rows
and it passes at 0. Aggregate checks have an *observed value* query and a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlglot
from sqlglot import exp

from lakestack.config import PROJECT_SQL_DIALECT
from lakestack.quality.model import (
    AcceptedValues,
    CustomSql,
    Freshness,
    NotNull,
    NullPct,
    Range,
    ReferentialIntegrity,
    Regex,
    RowCount,
    Unique,
    parse_duration,
)


@dataclass(frozen=True, slots=True)
class Compiled:
    observed: exp.Select  # one row, one column: the observed value
    failing: exp.Select | None  # the failing rows, for row-level checks
    threshold: str
    passes: Callable[[float | None], bool]


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _count(failing: exp.Select) -> exp.Select:
    return exp.select(exp.Count(this=exp.Star())).from_(failing.subquery("failing"))


def _row_level(table: exp.Table, condition: Any) -> Compiled:
    failing = exp.select("*").from_(table.copy()).where(condition)
    return Compiled(_count(failing), failing, "0 failing rows", lambda observed: observed == 0)


def compile_check(check: object, dataset: str, *, now: datetime | None = None) -> Compiled:
    """The SQL of one check over `dataset` (e.g. `silver.orders`)."""
    table = exp.to_table(dataset)
    if isinstance(check, NotNull):
        return _row_level(table, exp.or_(*[exp.Is(this=_col(c), expression=exp.null()) for c in check.columns]))
    if isinstance(check, AcceptedValues):
        values = [exp.convert(v) for v in check.values]
        column = _col(check.column)
        return _row_level(
            table,
            exp.and_(
                exp.Not(this=exp.Is(this=column, expression=exp.null())),
                exp.Not(this=exp.In(this=column.copy(), expressions=values)),
            ),
        )
    if isinstance(check, Range):
        column, parts = _col(check.column), list[Any]()
        if check.min is not None:
            parts.append(exp.LT(this=column.copy(), expression=exp.convert(check.min)))
        if check.max is not None:
            parts.append(exp.GT(this=column.copy(), expression=exp.convert(check.max)))
        return _row_level(table, exp.or_(*parts) if parts else exp.false())
    if isinstance(check, Regex):
        column = _col(check.column)
        match = exp.RegexpLike(this=column, expression=exp.Literal.string(check.pattern))
        return _row_level(
            table, exp.and_(exp.Not(this=exp.Is(this=column.copy(), expression=exp.null())), exp.Not(this=match))
        )
    if isinstance(check, Unique):
        return _unique(table, check.columns)
    if isinstance(check, ReferentialIntegrity):
        return _referential(table, check)
    if isinstance(check, CustomSql):
        failing = sqlglot.parse_one(check.sql, read=PROJECT_SQL_DIALECT)
        if not isinstance(failing, exp.Select):
            raise ValueError("custom_sql must be one SELECT returning the failing rows")
        return Compiled(_count(failing), failing, "0 failing rows", lambda observed: observed == 0)
    return _aggregate(check, table, now)


def _unique(table: exp.Table, columns: list[str]) -> Compiled:
    keys = [_col(c) for c in columns]
    dupes = (
        exp.select(*keys)
        .from_(table.copy())
        .group_by(*[k.copy() for k in keys])
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )
    failing = (
        exp.select("*")
        .from_(table.copy())
        .where(exp.In(this=exp.Tuple(expressions=[k.copy() for k in keys]), query=dupes.subquery()))
    )
    return Compiled(_count(failing), failing, "0 duplicated rows", lambda observed: observed == 0)


def _referential(table: exp.Table, check: ReferentialIntegrity) -> Compiled:
    layer, name, column = check.references.split(".")
    target = (
        exp.select(_col(column))
        .from_(exp.to_table(f"{layer}.{name}"))
        .where(exp.Not(this=exp.Is(this=_col(column), expression=exp.null())))
    )
    key = _col(check.column)
    condition = exp.and_(
        exp.Not(this=exp.Is(this=key, expression=exp.null())),
        exp.Not(this=exp.In(this=key.copy(), query=target.subquery())),
    )
    return _row_level(table, condition)


def _aggregate(check: object, table: exp.Table, now: datetime | None) -> Compiled:
    if isinstance(check, RowCount):
        low, high = check.min, check.max
        observed = exp.select(exp.Count(this=exp.Star())).from_(table)
        return Compiled(
            observed,
            None,
            f"between {low if low is not None else '-∞'} and {high if high is not None else '∞'} rows",
            lambda v: v is not None and (low is None or v >= low) and (high is None or v <= high),
        )
    if isinstance(check, NullPct):
        nulls = exp.func("count_if", exp.Is(this=_col(check.column), expression=exp.null()))
        pct = exp.Mul(
            this=exp.Literal.number(100.0),
            expression=exp.Div(
                this=nulls, expression=exp.func("greatest", exp.Count(this=exp.Star()), exp.Literal.number(1))
            ),
        )
        limit = check.max
        return Compiled(exp.select(pct).from_(table), None, f"≤ {limit}% nulls", lambda v: v is not None and v <= limit)
    if isinstance(check, Freshness):
        assert now is not None, "freshness needs the evaluation time"
        newest = exp.Max(this=_col(check.column))
        age = exp.func(
            "epoch", exp.Sub(this=exp.cast(exp.Literal.string(now.isoformat()), "timestamptz"), expression=newest)
        )
        limit = parse_duration(check.max_age).total_seconds()
        return Compiled(
            exp.select(age).from_(table),
            None,
            f"newest {check.column} at most {check.max_age} old",
            lambda v: v is not None and v <= limit,
        )
    raise ValueError(f"no SQL for check type {type(check).__name__}")

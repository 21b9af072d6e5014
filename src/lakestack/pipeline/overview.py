"""What a data team looks at first (`GET /v1/overview`), and a source's quarantine by reason
(`GET /v1/quarantine/{source}`), both as the reader's role may see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lakestack.config import PROJECT_SQL_DIALECT
from lakestack.errors import UsageError


def overview(lake: Any, role: str | None) -> dict[str, Any]:
    """The last runs, failing checks, each SLA's latest status, quarantine rates and freshness."""
    from lakestack.pipeline.checks import latest_checks
    from lakestack.pipeline.run_views import list_run_summaries

    return {
        "project": lake.project.name,
        "runs": list_run_summaries(lake, status=None, job=None, since=None, limit=10),
        "failed_checks": [c for c in latest_checks(lake, role) if c["status"] in ("fail", "error", "warn")],
        "slas": sla_status(lake, role),
        "quarantine": quarantine_rates(lake, role),
        "freshness": freshness(lake, role),
    }


def sla_status(lake: Any, role: str | None) -> list[dict[str, Any]]:
    """Each SLA's latest stored evaluation (`_lakestack.sla_results`, the last 30 days)."""
    from lakestack.monitor.sla_history import read_history
    from lakestack.pipeline.datasets import iso

    latest: dict[str, dict[str, Any]] = {}
    for row in read_history(lake.warehouse, None, datetime.now(UTC) - timedelta(days=30)):
        latest[row["name"]] = row
    out = []
    for name, row in sorted(latest.items()):
        if row["dataset"] and not _may_read(lake, role, row["dataset"]):
            continue
        out.append(
            {
                "name": name,
                "dataset": row["dataset"],
                "kind": row["kind"],
                "status": row["status"],
                "detail": row["message"],
                "observed": row["observed"],
                "target": row["target"],
                "at": iso(row["evaluated_at"]),
                "budget_7d": row["budget_7d"],
                "budget_30d": row["budget_30d"],
            }
        )
    return out


def quarantine_rates(lake: Any, role: str | None) -> list[dict[str, Any]]:
    """Per source whose Bronze or quarantine the role may read: records received, quarantined, the share."""
    out = []
    for source in lake.project.config.sources:
        if not (_may_read(lake, role, f"bronze.{source}") or _may_read(lake, role, f"quarantine.{source}")):
            continue
        landed, quarantined = _rows(lake, f"bronze.{source}"), _rows(lake, f"quarantine.{source}")
        received = landed + quarantined
        rate = round(quarantined / received, 6) if received else 0.0
        out.append({"source": source, "received": received, "quarantined": quarantined, "rate": rate})
    return out


def freshness(lake: Any, role: str | None) -> list[dict[str, Any]]:
    """Per readable dataset: its last commit and how long ago that was."""
    from lakestack.pipeline.datasets import dataset_names, iso

    now = datetime.now(UTC)
    out = []
    for name in dataset_names(lake, role):
        snap = lake.warehouse.load(name).current_snapshot()
        last = datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC) if snap else None
        age = round((now - last).total_seconds(), 3) if last else None
        out.append({"dataset": name, "last_commit": iso(last), "age_s": age})
    return out


def quarantine_rows(
    lake: Any, source: str, role: str | None, *, reason: str | None = None, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """`quarantine.<source>`'s records as `role` may read them (through its sandbox: `_raw` masked or
    denied as the policy says), counted by rule (the first error's); `reason` keeps one rule's
    records, or, when it names no rule, those whose reason contains it. A page of `limit` from
    `offset`, oldest first; grouping, filtering and paging run in the sandbox."""
    from sqlglot import exp

    from lakestack.pipeline.datasets import iso, readable

    identifier = f"quarantine.{source}"
    table = readable(lake, identifier, role)  # unknown or denied: the same DatasetNotFound
    present = {f.name for f in table.schema().fields}
    rule, field = _parsed("COALESCE(_errors[1].rule, _reason)"), _parsed("_errors[1].path")
    count = exp.Count(this=exp.Star()).as_("n")
    counts = _run(lake, _select(identifier, [rule.copy().as_("reason"), count]).group_by("reason"), role)
    by_reason = sorted(((r["reason"] or "unknown", int(r["n"])) for r in counts), key=lambda x: (-x[1], x[0]))
    where: Any = None
    if reason is not None:
        needle = exp.Literal.string(reason)
        named = reason in {name for name, _ in by_reason}
        where = exp.EQ(this=rule.copy(), expression=needle) if named else exp.func("contains", "_reason", needle)
    total = int(_run(lake, _select(identifier, [count.copy()], where), role)[0]["n"])
    columns = [exp.column(c, quoted=True) for c in _QUARANTINE_COLUMNS if c in present]
    page = _select(identifier, [*columns, rule.copy().as_("_rule"), field.as_("_field")], where)
    order = [exp.column(c, quoted=True) for c in _QUARANTINE_ORDER if c in present]
    rows = _run(lake, page.order_by(*order).limit(limit).offset(offset), role, max_rows=limit)
    return {
        "source": source,
        "total": total,
        "by_reason": [{"reason": name, "count": n} for name, n in by_reason],
        "offset": offset,
        "limit": limit,
        "rows": [
            {
                "reason": r.get("_reason"),
                "rule": r.get("_rule"),
                "field": r.get("_field"),
                "file": r.get("_source_file"),
                "line": r.get("_source_line"),
                "position": r.get("_source_position"),
                "raw": r.get("_raw"),
                "run_id": r.get("_run_id"),
                "at": iso(r.get("_ingested_at")),
            }
            for r in rows
        ],
    }


_QUARANTINE_COLUMNS = ("_reason", "_source_file", "_source_line", "_source_position", "_raw", "_run_id", "_ingested_at")
_QUARANTINE_ORDER = ("_ingested_at", "_source_file", "_source_line", "_source_position")


def _parsed(sql: str) -> Any:
    import sqlglot

    return sqlglot.parse_one(sql, read=PROJECT_SQL_DIALECT)


def _select(identifier: str, columns: list[Any], where: Any = None) -> Any:
    from sqlglot import exp

    query = exp.select(*columns).from_(exp.to_table(identifier, dialect=PROJECT_SQL_DIALECT))
    return query.where(where) if where is not None else query


def _run(lake: Any, query: Any, role: str | None, max_rows: int | None = None) -> list[dict[str, Any]]:
    from lakestack.engine.base import SqlLimits

    limits = SqlLimits(timeout_s=60.0, max_rows=max_rows)
    rows: list[dict[str, Any]] = lake.query(query.sql(PROJECT_SQL_DIALECT), limits=limits, role=role).to_pylist()
    return rows


def _rows(lake: Any, identifier: str) -> int:
    if not lake.warehouse.exists(identifier):
        return 0
    snap = lake.warehouse.load(identifier).current_snapshot()
    summary = snap.summary.additional_properties if snap and snap.summary else {}
    return int(summary.get("total-records", 0))


def _may_read(lake: Any, role: str | None, dataset: str) -> bool:
    try:
        return bool(lake.may_read(role, dataset))
    except UsageError:
        return False

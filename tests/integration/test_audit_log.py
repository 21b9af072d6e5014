"""The audit log on a real warehouse: batched commits, a failed commit neither lost nor doubled
(failpoints audit.before_commit / audit.after_commit), secrets redacted, what a query reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestack import Lake, _secrets
from lakestack.failpoints import armed
from lakestack.pipeline.audit import AUDIT, AuditEntry, AuditLog, read_audit, sql_reads
from lakestack.storage.warehouse import history


@pytest.fixture
def lake(project: Path) -> Iterator[Lake]:
    with Lake.open(project) as opened:
        yield opened
    _secrets.forget()


def _entries(n: int, start: int = 0) -> list[AuditEntry]:
    return [AuditEntry("query", "ok", query=f"SELECT {i}", rows=i, os_user="tester") for i in range(start, start + n)]


def _commits(lake: Lake) -> int:
    return len(list(history(lake.warehouse.load(AUDIT))))


def test_rows_are_buffered_and_committed_in_one_append(lake: Lake) -> None:
    log = AuditLog(lambda: lake.warehouse)
    for entry in _entries(5):
        log.record(entry)
    assert log.pending == 5 and not lake.warehouse.exists(AUDIT)  # nothing written on the record path
    assert log.flush() == 5 and log.pending == 0
    assert log.flush() == 0
    assert _commits(lake) == 1
    assert sorted(r["rows"] for r in read_audit(lake.warehouse)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("point", ["audit.before_commit", "audit.after_commit"])
def test_a_failed_audit_commit_is_neither_lost_nor_doubled(lake: Lake, point: str) -> None:
    log = AuditLog(lambda: lake.warehouse)
    for entry in _entries(3):
        log.record(entry)
    with armed(f"{point}=1*raise"):
        assert log.flush() == 0  # logged, never raised
    assert log.errors == 1 and log.pending == 3
    for entry in _entries(2, start=3):
        log.record(entry)
    log.flush()
    assert log.pending == 0
    assert sorted(r["rows"] for r in read_audit(lake.warehouse, limit=None)) == [0, 1, 2, 3, 4]


def test_query_text_and_details_are_redacted_when_buffered(lake: Lake) -> None:
    _secrets.remember("tok-Sup3rSecret-99")
    log = AuditLog(lambda: lake.warehouse)
    log.record(AuditEntry("query", "error", query="SELECT 'tok-Sup3rSecret-99'", detail="bad tok-Sup3rSecret-99"))
    _secrets.forget()  # what was buffered stays redacted even after the secret is forgotten
    log.flush()
    (row,) = read_audit(lake.warehouse)
    assert row["query"] == "SELECT '***'" and row["detail"] == "bad ***"


def test_filters_by_action_prefix_who_result_and_time(lake: Lake) -> None:
    from datetime import UTC, datetime, timedelta

    log = AuditLog(lambda: lake.warehouse)
    old = datetime.now(UTC) - timedelta(days=2)
    log.record(AuditEntry("keys.create", "ok", key_id="abc123abc123", role="engineer", os_user="ann", at=old))
    log.record(AuditEntry("api.stream.write", "denied", channel="api", status=403, role="business", os_user="srv"))
    log.record(AuditEntry("query", "ok", os_user="ann"))
    log.flush()
    warehouse = lake.warehouse
    assert [r["action"] for r in read_audit(warehouse, action="keys")] == ["keys.create"]
    assert [r["action"] for r in read_audit(warehouse, who="ann")] == ["query", "keys.create"]
    assert [r["status"] for r in read_audit(warehouse, result="denied")] == [403]
    assert [r["action"] for r in read_audit(warehouse, since=old + timedelta(days=1))] == ["query", "api.stream.write"]


def test_sql_reads_names_tables_and_columns_through_aliases_ctes_and_stars() -> None:
    tables = {"silver.orders": ["order_id", "customer_id", "amount"], "silver.customers": ["customer_id", "email"]}
    reads = lambda sql: sql_reads(sql, tables.get)  # noqa: E731
    sql = "SELECT o.amount, c.email FROM silver.orders o JOIN silver.customers c USING (customer_id)"
    assert reads(sql) == (
        ("silver.customers", "silver.orders"),
        ("silver.customers.customer_id", "silver.customers.email", "silver.orders.amount", "silver.orders.customer_id"),
    )
    assert reads("SELECT * FROM silver.customers")[1] == ("silver.customers.customer_id", "silver.customers.email")
    assert reads("WITH x AS (SELECT email FROM silver.customers) SELECT count(*) FROM x") == (
        ("silver.customers",),
        ("silver.customers.email",),
    )
    assert reads("SELECT 1") == ((), ())
    assert reads("SELECT FROM WHERE (") == ((), ())

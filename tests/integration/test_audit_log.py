"""The audit log on a real warehouse: rows spooled to local disk and committed in batches, a failed
commit neither lost nor doubled (failpoints audit.before_commit / audit.after_commit /
audit.spool.before_remove), secrets redacted, spooled rows shown as pending, what a query reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestack import Lake, _secrets
from lakestack.failpoints import armed
from lakestack.pipeline.audit import AUDIT, AuditEntry, AuditLog, read_audit, sql_reads
from lakestack.pipeline.audit_spool import AuditSpool
from lakestack.storage.warehouse import history


@pytest.fixture
def lake(project: Path) -> Iterator[Lake]:
    with Lake.open(project) as opened:
        yield opened
    _secrets.forget()


def _entries(n: int, start: int = 0) -> list[AuditEntry]:
    return [AuditEntry("query", "ok", query=f"SELECT {i}", rows=i, os_user="tester") for i in range(start, start + n)]


def _log(lake: Lake, tmp_path: Path) -> AuditLog:
    return AuditLog(lambda: lake.warehouse, AuditSpool(tmp_path / "spool"))


def _commits(lake: Lake) -> int:
    return len(list(history(lake.warehouse.load(AUDIT))))


def test_rows_are_buffered_and_committed_in_one_append(lake: Lake, tmp_path: Path) -> None:
    log = _log(lake, tmp_path)
    for entry in _entries(5):
        log.record(entry)
    assert log.pending == 5 and log.buffered == 5 and not lake.warehouse.exists(AUDIT)  # no I/O to record
    assert log.flush() == 5 and log.pending == 0
    assert log.flush() == 0
    assert _commits(lake) == 1
    assert sorted(r["rows"] for r in read_audit(lake.warehouse)) == [0, 1, 2, 3, 4]
    assert not log.spool.segments()  # committed segments are gone


def test_written_rows_are_spooled_at_once_shown_as_pending_and_committed_later(lake: Lake, tmp_path: Path) -> None:
    log = _log(lake, tmp_path)
    first = AuditEntry("query", "error", query="SELECT 1", os_user="tester", detail="unfinished")
    log.write(first, final=False)
    (segment,) = log.spool.segments()
    assert segment.read_text().count("\n") == 1 and not lake.warehouse.exists(AUDIT)
    from dataclasses import replace

    assert log.flush() == 0  # the read is still open: its segment stays held
    (row,) = read_audit(lake.warehouse, spool=log.spool)
    assert row["pending"] and row["result"] == "error" and row["detail"] == "unfinished"
    log.write(replace(first, result="ok", rows=1, detail=None))
    (row,) = read_audit(lake.warehouse, spool=log.spool)
    assert row["pending"] and row["result"] == "ok" and row["rows"] == 1  # the last line of an id wins
    other = _log(lake, tmp_path)  # e.g. a later command that writes the lake
    assert other.flush() == 0  # a live writer holds the segment
    log.close(commit=False)  # the command ends: its segment is sealed, not committed
    assert other.flush() == 1 and not other.spool.segments()
    (row,) = read_audit(lake.warehouse, spool=other.spool)
    assert not row["pending"] and row["result"] == "ok" and row["audit_id"] == first.audit_id


@pytest.mark.parametrize("point", ["audit.before_commit", "audit.after_commit", "audit.spool.before_remove"])
def test_a_failed_audit_commit_is_neither_lost_nor_doubled(lake: Lake, tmp_path: Path, point: str) -> None:
    log = _log(lake, tmp_path)
    for entry in _entries(3):
        log.record(entry)
    with armed(f"{point}=1*raise"):
        assert log.flush() == 0  # logged, never raised
    assert log.errors == 1 and log.buffered == 0  # the rows are on disk now
    assert log.pending == 3 and (log.spool.folder / "flush.json").is_file()
    for entry in _entries(2, start=3):
        log.record(entry)
    log.flush()
    assert log.pending == 0 and not (log.spool.folder / "flush.json").exists()
    assert sorted(r["rows"] for r in read_audit(lake.warehouse, limit=None)) == [0, 1, 2, 3, 4]


def test_query_text_and_details_are_redacted_when_buffered(lake: Lake, tmp_path: Path) -> None:
    _secrets.remember("tok-Sup3rSecret-99")
    log = _log(lake, tmp_path)
    log.record(AuditEntry("query", "error", query="SELECT 'tok-Sup3rSecret-99'", detail="bad tok-Sup3rSecret-99"))
    _secrets.forget()  # what was buffered stays redacted even after the secret is forgotten
    log.flush()
    (row,) = read_audit(lake.warehouse)
    assert row["query"] == "SELECT '***'" and row["detail"] == "bad ***"


def test_filters_by_action_prefix_who_result_and_time(lake: Lake, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    log = _log(lake, tmp_path)
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

"""SLAs evaluated on a real lake: stale data (breach) then fresh data (recovery), deadlines with a
controllable clock, a missing day, availability from real run records, and error budgets from the
stored `_lakestack.sla_results` history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lakestack import Lake
from lakestack.monitor.sla import SlaResult

pytestmark = pytest.mark.integration

Land = Callable[[str, str, str], Path]
HEADER = "order_id,qty,price,currency,order_ts,email\n"


def orders(*stamps: datetime, start: int = 1) -> str:
    """CSV order lines, one per time."""
    lines = [f"ORD-{start + i:04d},1,9.50,USD,{t.isoformat()},a@example.com\n" for i, t in enumerate(stamps)]
    return HEADER + "".join(lines)


def write_slas(project: Path, text: str) -> None:
    (project / "slas.yaml").write_text(text, encoding="utf-8")


def by_name(
    lake: Lake, now: datetime | None = None, *, names: list[str] | None = None, store: bool = True
) -> dict[str, SlaResult]:
    return {r.name: r for r in lake.sla(now, names=names, store=store)}


def test_stale_data_breaches_and_fresh_data_recovers(project: Path, land: Land) -> None:
    now = datetime.now(UTC)
    write_slas(
        project,
        """
slas:
  orders_fresh:
    kind: freshness
    dataset: bronze.orders
    column: order_ts
    max_age: 1h
  orders_committed:
    kind: freshness
    dataset: bronze.orders
    max_age: 15m
""",
    )
    lake = Lake.open(project)
    assert {r.status for r in lake.sla()} == {"unknown"}  # nothing landed yet: nothing to measure

    stale = now - timedelta(hours=5)
    land("orders", "orders_20260101.csv", orders(stale - timedelta(hours=1), stale))
    lake.ingest()
    found = by_name(lake)
    event, commit = found["orders_fresh"], found["orders_committed"]
    assert event.status == "breach" and event.time_left_s is None
    assert event.observed_value == pytest.approx(5 * 3600, abs=120)
    assert "more than 1h" in event.message
    assert commit.status == "ok" and 0 < commit.time_left_s <= 15 * 60

    land("orders", "orders_20260102.csv", orders(datetime.now(UTC) - timedelta(minutes=2), start=10))
    lake.ingest()
    recovered = by_name(lake)["orders_fresh"]
    assert recovered.status == "ok"
    assert 55 * 60 <= recovered.time_left_s <= 58 * 60

    # later, with no new commit, the commit-time SLA runs out
    late = by_name(lake, datetime.now(UTC) + timedelta(minutes=20), names=["orders_committed"])
    assert late["orders_committed"].status == "breach"
    history = lake.sla_history(["orders_fresh"], now - timedelta(hours=1))
    assert [r["status"] for r in history] == ["unknown", "breach", "ok"]


def test_deadline_met_missed_and_the_days_before_the_lake(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", orders(datetime(2026, 1, 1, 8, tzinfo=UTC)))
    lake = Lake.open(project)
    lake.ingest()
    from lakestack.pipeline.records import list_runs

    ended = next(r["ended_at"] for r in list_runs(lake.warehouse, job="ingest.orders"))
    due = (ended + timedelta(hours=1)).replace(second=0, microsecond=0)  # the first deadline after the ingest
    write_slas(
        project, f'slas:\n  landed_daily:\n    kind: deadline\n    dataset: bronze.orders\n    by: "{due:%H:%M}"\n'
    )

    soon = by_name(lake, ended + timedelta(minutes=30), store=False)["landed_daily"]
    assert soon.status == "ok"  # the ingest already met today's deadline: the next breach is a day later
    assert soon.time_left_s == pytest.approx((due + timedelta(days=1) - ended - timedelta(minutes=30)).total_seconds())
    assert "ingest.orders by" in soon.target

    after = by_name(lake, due + timedelta(hours=1), store=False)["landed_daily"]
    assert after.status == "ok"
    assert after.time_left_s == pytest.approx(23 * 3600)

    missed = by_name(lake, due + timedelta(hours=25), store=False)["landed_daily"]
    assert missed.status == "breach"
    assert "did not succeed in the 24 h before" in missed.message

    # a lake whose records start after a deadline's window is not held to that deadline
    before = by_name(lake, ended - timedelta(minutes=1), store=False)["landed_daily"]
    assert before.status == "ok"


def test_completeness_finds_a_missing_day_and_a_thin_day(project: Path, land: Land) -> None:
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)
    at = [day + timedelta(days=d, minutes=m) for d in (0, 1, 3) for m in range(10)]  # no rows on 03-03
    land("orders", "orders_20260301.csv", orders(*at))
    write_slas(
        project,
        """
slas:
  every_day:
    kind: completeness
    dataset: bronze.orders
    column: order_ts
    days: 4
    through: latest
  volume:
    kind: completeness
    dataset: bronze.orders
    column: order_ts
    rows_within: 50%
    history: 3d
    through: latest
""",
    )
    lake = Lake.open(project)
    lake.ingest()
    found = by_name(lake)
    assert found["every_day"].status == "breach"
    assert "no rows on 1 day(s): 2026-03-03" in found["every_day"].message
    assert found["every_day"].observed.startswith("3/4 days")
    # history of 03-04: 10, 0, 10 rows (03-01 .. 03-03) → median 10; 10 rows is within ±50 %
    assert found["volume"].status == "ok", found["volume"].message

    land("orders", "orders_20260303.csv", orders(day + timedelta(days=2), start=100))  # one row on 03-03
    land("orders", "orders_20260305.csv", orders(day + timedelta(days=4), start=200))  # one row on the new day
    lake.ingest()
    found = by_name(lake)
    assert found["every_day"].status == "ok"
    assert found["every_day"].observed == "4/4 days"
    assert found["volume"].status == "breach"
    assert "2026-03-05 has 1 rows, outside ±50% of the median 10" in found["volume"].message


def test_availability_counts_failed_runs(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", orders(datetime(2026, 1, 1, 8, tzinfo=UTC)))
    (project / "checks").mkdir()
    (project / "checks" / "orders.yaml").write_text(
        "dataset: bronze.orders\nchecks:\n  - {type: row_count, min: 1000}\n", encoding="utf-8"
    )
    write_slas(
        project,
        "slas:\n  runs_ok:\n    kind: availability\n    job: run\n    min_success: 60%\n    window: 1d\n"
        "  checks_ok:\n    kind: availability\n    job: check.bronze.orders\n    min_success: 99%\n",
    )
    lake = Lake.open(project)
    assert by_name(lake)["runs_ok"].status == "unknown"
    lake.ingest()
    lake.check()  # the row_count check fails: a BLOCKED run
    found = by_name(lake)
    assert found["runs_ok"].status == "breach"
    assert found["runs_ok"].observed == "50.0% (1/2 runs)"
    assert found["checks_ok"].status == "breach"
    lake.ingest()
    lake.ingest()
    found = by_name(lake)
    assert found["runs_ok"].status == "ok"
    assert found["runs_ok"].observed_value == pytest.approx(0.75)
    assert found["checks_ok"].observed == "0.0% (0/1 runs)"


def test_error_budget_is_the_time_in_breach_over_the_time_allowed(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", orders(datetime(2026, 1, 1, 8, tzinfo=UTC)))
    write_slas(
        project,
        "objective: 99%\nslas:\n  fresh:\n    kind: freshness\n    dataset: bronze.orders\n    max_age: 1h\n"
        "  strict:\n    kind: freshness\n    dataset: bronze.orders\n    max_age: 1h\n    objective: 99.9%\n",
    )
    lake = Lake.open(project)
    lake.ingest()
    t = datetime.now(UTC)
    first = by_name(lake, t + timedelta(minutes=30))
    assert first["fresh"].status == "ok" and first["fresh"].budget_7d == 0
    by_name(lake, t + timedelta(hours=2))  # breach from here on
    second = by_name(lake, t + timedelta(hours=3))
    week, month = 0.01 * 7 * 24, 0.01 * 30 * 24  # hours of breach allowed at 99 %
    assert second["fresh"].budget_7d == pytest.approx(1 / week)
    assert second["fresh"].budget_30d == pytest.approx(1 / month)
    assert second["strict"].budget_7d == pytest.approx(1 / (week / 10))
    third = by_name(lake, t + timedelta(hours=4))
    assert third["fresh"].budget_7d == pytest.approx(2 / week) and third["fresh"].budget_7d > 1
    # evaluations 8 days later: the first breach hours have left the 7-day window, not the 30-day one
    # 8 days on, still stale: the last known state (breach) held all along, so the whole 7-day
    # window was in breach, and 8 d 1 h of the 30-day one
    later = by_name(lake, t + timedelta(days=8, hours=3))
    assert later["fresh"].budget_7d == pytest.approx(7 * 24 / week)
    assert later["fresh"].budget_30d == pytest.approx((8 * 24 + 1) / month)
    stored = lake.sla_history(None, t - timedelta(days=1))
    assert len(stored) == 5 * 2
    assert {r["name"] for r in stored} == {"fresh", "strict"}
    table = lake.warehouse.load("_lakestack.sla_results")
    assert len(table.metadata.snapshots) == 5  # one commit per evaluation

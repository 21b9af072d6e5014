"""SLA evaluations crashed at their commit: an evaluation lands whole or not at all, and the next
one stores itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lake_support import cli
from lakestack import Lake, failpoints

pytestmark = [pytest.mark.crash, pytest.mark.integration]

SLAS = (
    "slas:\n  fresh:\n    kind: freshness\n    dataset: bronze.orders\n    max_age: 1h\n"
    "  in_time:\n    kind: deadline\n    dataset: bronze.orders\n    by: '03:00'\n"
)


@pytest.mark.parametrize(("point", "stored"), [("sla.before_commit", 0), ("sla.after_commit", 1)])
def test_an_sla_evaluation_killed_at_its_commit_lands_whole_or_not_at_all(
    project: Path, point: str, stored: int
) -> None:
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(
        "order_id,qty,price,currency,order_ts,email\nORD-0001,1,1.00,USD,2026-01-01T08:00:00+00:00,a@b.co\n"
    )
    (project / "slas.yaml").write_text(SLAS)
    assert cli(project, "ingest").returncode == 0
    log = project.parent / "hits.log"
    crashed = cli(project, "sla", LAKESTACK_FAILPOINTS=f"{point}=kill", LAKESTACK_FAILPOINTS_LOG=str(log))
    assert crashed.returncode == -9, crashed.stderr
    assert failpoints.hits(str(log)) == [point]
    since = datetime.now(UTC) - timedelta(hours=1)

    def evaluations() -> list[set[str]]:
        rows = Lake.open(project).sla_history(None, since)
        by_time: dict[datetime, set[str]] = {}
        for row in rows:
            by_time.setdefault(row["evaluated_at"], set()).add(row["name"])
        return list(by_time.values())

    assert evaluations() == [{"fresh", "in_time"}] * stored
    again = cli(project, "sla")
    assert again.returncode == 0, again.stdout + again.stderr
    assert evaluations() == [{"fresh", "in_time"}] * (stored + 1)

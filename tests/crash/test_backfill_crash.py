"""A backfill killed at its commit: Silver holds the old or the backfilled partitions, never part
of them; the backfill run again gives what the incremental build gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_support import cli, lake_contents, small_northwind
from lakestack import Lake, failpoints

pytestmark = [pytest.mark.crash, pytest.mark.integration]


@pytest.mark.parametrize(("point", "landed"), [("backfill.before_commit", False), ("backfill.after_commit", True)])
def test_a_backfill_killed_at_its_commit_is_all_or_nothing(tmp_path: Path, point: str, landed: bool) -> None:
    project = small_northwind(tmp_path / "p", orders=300, days=3)
    ran = cli(project, "run")
    assert ran.returncode == 0, ran.stderr
    built = lake_contents(project)
    before = Lake.open(project).warehouse.load("silver.orders").current_snapshot().snapshot_id
    log = tmp_path / "hits.log"
    crashed = cli(
        project,
        "backfill",
        "orders",
        "--all",
        LAKESTACK_FAILPOINTS=f"{point}=kill",
        LAKESTACK_FAILPOINTS_LOG=str(log),
    )
    assert crashed.returncode == -9, crashed.stderr
    assert failpoints.hits(str(log)) == [point]
    after = Lake.open(project).warehouse.load("silver.orders").current_snapshot().snapshot_id
    assert (after != before) == landed
    assert lake_contents(project) == built  # either way the same rows: --all re-derives what was there

    again = cli(project, "backfill", "orders", "--all", "--downstream")
    assert again.returncode == 0, again.stderr
    assert lake_contents(project) == built

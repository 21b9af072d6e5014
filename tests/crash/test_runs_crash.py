"""Run records crashed at their commit: the data a run committed stays, the record lands exactly
once (the next run records a run killed before its record as FAIL, from its in-flight marker), and
the next run records itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_support import cli, lake_contents, small_northwind
from lakestack import Lake, failpoints
from lakestack.pipeline.records import read_runs

pytestmark = [pytest.mark.crash, pytest.mark.integration]


@pytest.mark.parametrize(("point", "recorded"), [("runs.before_commit", 0), ("runs.after_commit", 1)])
def test_an_ingest_killed_at_its_run_record_keeps_its_data_and_records_once(
    tmp_path: Path, point: str, recorded: int
) -> None:
    project = small_northwind(tmp_path / "p")
    log = tmp_path / "hits.log"
    crashed = cli(project, "ingest", LAKESTACK_FAILPOINTS=f"{point}=kill", LAKESTACK_FAILPOINTS_LOG=str(log))
    assert crashed.returncode == -9, crashed.stderr
    assert failpoints.hits(str(log)) == [point]
    landed = lake_contents(project)
    assert landed["bronze.orders"][0] > 0  # the data commits came before the record
    runs = read_runs(Lake.open(project).warehouse)
    assert len({r["run_id"] for r in runs if r["parent_run_id"] is None}) == recorded

    again = cli(project, "ingest")
    assert again.returncode == 0, again.stderr
    assert lake_contents(project) == landed  # nothing landed twice
    runs = read_runs(Lake.open(project).warehouse)
    top = [r for r in runs if r["parent_run_id"] is None]
    assert len(top) == len({r["run_id"] for r in top}) == 2  # the killed run once, and the new one
    killed, new = sorted(top, key=lambda r: r["started_at"])
    assert new["status"] == "COMPLETE"
    if recorded:  # killed after its record's commit: that record stands, not doubled by a FAIL
        assert killed["status"] == "COMPLETE"
    else:
        assert killed["status"] == "FAIL" and "ended without finishing" in killed["error"], killed

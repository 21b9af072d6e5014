"""A rollback killed at its commit: the table is at the old or the new snapshot, never between;
the rollback run again finishes it, and the next promote gives what a straight promotion gave.
SQLite and PostgreSQL catalogs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake_support import cli, copy_project, create_database, drop_database, lake_contents, small_northwind
from lakestack import Lake, failpoints
from lakestack.pipeline.records import read_runs
from tests_support import service_url

pytestmark = [pytest.mark.crash, pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    yield url
    drop_database(url)


def _promoted_twice(root: Path, catalog: str | None) -> tuple[int, int]:
    """Silver orders promoted from the first day's file, then from the rest: its two snapshot ids."""
    project = copy_project(small_northwind(root.parent / "pristine", orders=300, days=3), root, catalog_url=catalog)
    held = root.parent / "held"
    held.mkdir()
    later = [p for p in (project / "landing" / "orders").iterdir() if "20260101" not in p.name]
    for path in later:
        shutil.move(path, held / path.name)
    lake = Lake.open(project)
    lake.ingest(["orders"])
    first = lake.promote(["orders"])[0].snapshot_id
    for path in later:
        shutil.move(held / path.name, path)
    lake.ingest(["orders"])
    second = lake.promote(["orders"])[0].snapshot_id
    assert first is not None and second is not None and first != second
    return first, second


@pytest.mark.parametrize(("point", "landed"), [("rollback.before_commit", False), ("rollback.after_commit", True)])
def test_a_rollback_killed_at_its_commit_is_all_or_nothing(
    tmp_path: Path, catalog: str | None, point: str, landed: bool
) -> None:
    first, second = _promoted_twice(tmp_path / "p", catalog)
    project = tmp_path / "p"
    straight = lake_contents(project)
    log = tmp_path / "hits.log"
    crashed = cli(
        project,
        "rollback",
        "silver.orders",
        "--to",
        str(first),
        "--yes",
        LAKESTACK_FAILPOINTS=f"{point}=kill",
        LAKESTACK_FAILPOINTS_LOG=str(log),
    )
    assert crashed.returncode == -9, crashed.stderr
    assert failpoints.hits(str(log)) == [point]
    lake = Lake.open(project)
    current = lake.warehouse.load("silver.orders").current_snapshot().snapshot_id
    assert current == (first if landed else second)
    assert not any(r["job_type"] == "rollback" for r in read_runs(lake.warehouse))  # killed before its record

    again = cli(project, "rollback", "silver.orders", "--to", str(first), "--yes")
    assert again.returncode == 0, again.stderr
    assert ("already is at snapshot" in again.stdout) == landed
    assert lake.warehouse.load("silver.orders").current_snapshot().snapshot_id == first
    rollbacks = [r for r in read_runs(lake.warehouse) if r["job_type"] == "rollback"]
    assert [r["status"] for r in rollbacks] == ["COMPLETE"]
    # the killed command is recorded by the next one, from its in-flight marker: once, as FAIL
    tops = [r for r in read_runs(lake.warehouse) if r["parent_run_id"] is None and r["job"] == "rollback"]
    assert [r["status"] for r in tops] == ["COMPLETE", "FAIL"]  # newest first
    assert "ended without finishing" in tops[1]["error"]

    promoted = cli(project, "promote", "orders")
    assert promoted.returncode == 0, promoted.stderr
    assert lake_contents(project) == straight

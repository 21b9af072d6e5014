"""A quarantine replay SIGKILLed at each step of its commit path (the `_replayed_from` column added
to Bronze, the append of the replayed rows), twice at the same point, then run again clean: Bronze
holds every replayed record exactly once, as ingesting with the fixed contract from the start gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lake_support import cli
from lakestack import failpoints
from replay_support import bronze_records, fix, mistaken, pristine, reference

pytestmark = [pytest.mark.crash, pytest.mark.integration]

POINTS = (
    "replay.before_schema",
    "replay.after_schema",
    "replay.before_commit",
    "storage.append.after_write",
    "storage.append.after_commit",
    "replay.after_commit",
)

# a kill here follows a commit (the column, the rows), so the run after it may not reach the point
AFTER_A_COMMIT = ("replay.after_schema", "storage.append.after_commit", "replay.after_commit")


@pytest.fixture(scope="module", params=["iceberg", "delta"])
def staged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[object, ...]]]:
    """The pristine project (its tables Iceberg or Delta) and what Bronze must hold after the replay."""
    if request.param == "delta":
        pytest.importorskip("deltalake")
    root = tmp_path_factory.mktemp("stage")
    source = pristine(root / "northwind", request.param)
    return source, bronze_records(reference(source, root / "ref", "whole_file"))


def test_every_replay_failpoint_is_in_the_matrix() -> None:
    assert {n for n in failpoints.NAMES if n.startswith("replay.")} <= set(POINTS)


@pytest.mark.parametrize("point", POINTS)
def test_a_replay_killed_at_each_step_lands_each_record_once(
    staged: tuple[Path, list[tuple[object, ...]]], tmp_path: Path, point: str
) -> None:
    source, expected = staged
    project = mistaken(source, tmp_path / "p", "whole_file")
    fix(project, "whole_file")
    log = tmp_path / "hits.log"
    for attempt in (1, 2):  # killed twice at the same point: the first kill's leftovers meet the second
        crashed = cli(
            project,
            "quarantine",
            "replay",
            "orders",
            LAKESTACK_FAILPOINTS=f"{point}=kill",
            LAKESTACK_FAILPOINTS_LOG=str(log),
        )
        hits = failpoints.hits(str(log))
        if crashed.returncode == 0:  # a point a rerun no longer reaches: what it follows was committed
            assert attempt == 2 and point in AFTER_A_COMMIT, crashed.stdout
            assert bronze_records(project) == expected
            break
        assert crashed.returncode == -9, crashed.stderr
        assert hits == [point] * attempt
        got = bronze_records(project)
        assert got in ([], expected), f"{point}: {len(got)} rows after the kill"

    done = cli(project, "quarantine", "replay", "orders", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rows_in"] == result["replayed"] + result["still_failing"] + result["already_replayed"]
    assert result["replayed"] + result["already_replayed"] == len(expected)
    assert bronze_records(project) == expected  # each record exactly once

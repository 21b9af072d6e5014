"""`lakestack checkpoints`: positions, file ledgers and how far each dataset has read its inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lake_support import cli, small_northwind

pytestmark = pytest.mark.integration


def _views(project: Path, *args: str) -> dict[tuple[str, str], dict[str, object]]:
    out = cli(project, "checkpoints", "--json", *args)
    assert out.returncode == 0, out.stderr
    return {(v["layer"], v["name"]): v for v in json.loads(out.stdout)}


def test_checkpoints_follow_ingest_promote_and_build(tmp_path: Path) -> None:
    project = small_northwind(tmp_path / "p")
    before = _views(project)
    assert before[("source", "orders")]["state"] == "no commits yet"
    assert before[("silver", "orders")]["state"] == "no commits yet"

    assert cli(project, "ingest", "orders").returncode == 0
    views = _views(project, "orders", "silver.orders")
    assert set(views) == {("source", "orders"), ("silver", "orders")}
    landed = sorted(p.name for p in (project / "landing" / "orders").iterdir())
    assert views[("source", "orders")]["files"] == len(landed)
    assert views[("source", "orders")]["newest_files"] == landed[-3:]

    assert cli(project, "promote", "orders").returncode == 0
    silver = _views(project, "silver.orders")[("silver", "orders")]
    assert silver["state"] == "caught up"
    (read,) = silver["inputs"]  # type: ignore[misc]
    bronze = _views(project, "orders")[("source", "orders")]
    assert read == {"table": "bronze.orders", "read_up_to": bronze["snapshot_id"], "unread_commits": 0}

    # a new drop: Bronze commits again, Silver has one commit to read
    extra = project / "landing" / "orders" / "orders_20990101.csv"
    first = sorted((project / "landing" / "orders").glob("*.csv"))[0]
    extra.write_text(first.read_text().splitlines()[0] + "\n")  # a header only: a commit, no rows
    assert cli(project, "ingest", "orders").returncode == 0
    silver = _views(project, "silver.orders")[("silver", "orders")]
    assert silver["inputs"][0]["unread_commits"] >= 1  # type: ignore[index]
    assert "unread" in str(silver["state"])
    table = cli(project, "checkpoints", "silver.orders")
    assert table.returncode == 0 and "bronze.orders @" in table.stdout and "unread" in table.stdout


def test_unknown_name_is_a_usage_error(tmp_path: Path) -> None:
    project = small_northwind(tmp_path / "p")
    out = cli(project, "checkpoints", "nope")
    assert out.returncode == 2 and "unknown source or dataset 'nope'" in out.stderr
    assert "Traceback" not in out.stderr

"""The read path without pyiceberg (storage/readpath.py): `Lake.query` over recorded plans, `tables`
from metadata files; same answers as the full path, a new commit seen at once, a tampered plan
ignored, and no catalog library imported once a table's plan is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lake_support import cli
from lakestack import Lake

LATER = {"event_id": "0b6f7a7e-4d0c-4c57-9f61-2f1f8a0d9c0a", "event_ts": "2026-01-02T09:00:00Z", "event_type": "login"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    assert cli(tmp_path, "init", "demo", "--path", str(folder)).returncode == 0
    assert cli(folder, "ingest").returncode == 0
    return folder


def _count(lake: Lake) -> int:
    return int(lake.query("SELECT count(*) AS n FROM bronze.events")["n"][0].as_py())


def test_a_recorded_plan_answers_until_the_next_commit(project: Path) -> None:
    plans = project / ".lakestack" / "plans"
    with Lake.open(project) as lake:
        assert lake.read_path is not None
        assert _count(lake) == 2 and len(list(plans.glob("*.json"))) == 1  # planned once, recorded
        assert _count(lake) == 2
        full = lake.tables()
        lake._read_path = None
        assert lake.tables() == full  # the metadata files' figures are the catalog's
    (project / "landing" / "events" / "events_20260102.ndjson").write_text(json.dumps(LATER) + "\n")
    assert cli(project, "ingest").returncode == 0
    with Lake.open(project) as lake:
        assert _count(lake) == 3  # a new pointer: a new plan, replacing the old one
    assert [p.name.split(".")[:2] for p in plans.glob("*.json")] == [["bronze", "events"]]


def test_a_plan_naming_files_outside_the_warehouse_is_ignored(project: Path, tmp_path: Path) -> None:
    with Lake.open(project) as lake:
        assert _count(lake) == 2
    (plan,) = (project / ".lakestack" / "plans").glob("*.json")
    data = json.loads(plan.read_text())
    outside = tmp_path / "other.parquet"
    outside.write_bytes(Path(data["files"][0].removeprefix("file://")).read_bytes())
    plan.write_text(json.dumps({**data, "files": data["files"] + [outside.as_uri()]}))
    with Lake.open(project) as lake:
        assert _count(lake) == 2  # not 3: the tampered plan was not used
    data = json.loads(plan.read_text())
    assert all("/warehouse/" in f for f in data["files"])  # and it was recorded again


def test_a_query_over_recorded_plans_loads_no_catalog_library(project: Path) -> None:
    with Lake.open(project) as lake:
        assert _count(lake) == 2  # records the plan
    code = (
        "import sys; from lakestack import Lake\n"
        f"lake = Lake.open({str(project)!r})\n"
        "n = lake.query('SELECT count(*) AS n FROM bronze.events')['n'][0].as_py()\n"
        "loaded = sorted(m for m in ('sqlalchemy', 'pyiceberg.catalog.sql', 'pyiceberg.table') if m in sys.modules)\n"
        "print(n, len(lake.tables()), loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 3 []", done.stdout  # bronze.events, quarantine.events, _lakestack.runs


def test_show_and_status_answer_as_the_full_path(project: Path) -> None:
    (project / "landing" / "events" / "events_20260102.ndjson").write_text(json.dumps(LATER) + "\n")  # pending
    with Lake.open(project) as lake:
        fast = (lake.status(), lake.schema("bronze.events"), lake.read("bronze.events", limit=5).to_pylist())
        assert fast[0][0].pending_files == 1 and fast[0][0].ingested_files == 1
        lake._read_path = None
        assert (lake.status(), lake.schema("bronze.events"), lake.read("bronze.events", limit=5).to_pylist()) == fast


def test_cli_reads_load_no_catalog_library_nor_sqlglot(project: Path) -> None:
    # (pyarrow's to_pylist of a timestamptz column still imports pandas: `show` of such a table)
    assert cli(project, "query", "SELECT count(*) FROM bronze.events").returncode == 0  # records the plan
    code = (
        "import sys\n"
        "from lakestack.cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlalchemy', 'pyiceberg.catalog.sql', 'pyiceberg.table', 'sqlglot')\n"
        "sys.stderr.write(repr(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    for args in (["query", "SELECT count(*) AS n FROM bronze.events"], ["show", "bronze.events"], ["tables"]):
        command = [sys.executable, "-c", code, "-p", str(project), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stderr.endswith("[]"), (args, done.stderr[-300:])

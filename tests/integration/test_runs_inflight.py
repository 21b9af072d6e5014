"""Runs in flight (pipeline/inflight.py): a run still going is listed as RUNNING, and a run whose
process was killed is recorded as FAIL by the next run that records, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake_support import child_env, cli, small_northwind
from lakestack import Lake
from lakestack.pipeline.events import JobRun
from lakestack.pipeline.inflight import InFlight
from lakestack.pipeline.records import read_runs

pytestmark = pytest.mark.integration

LAKESTACK = str(Path(sys.executable).parent / "lakestack")


def _runs(project: Path, *args: str) -> list[dict[str, object]]:
    out = cli(project, "runs", "--json", *args)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def test_a_running_ingest_is_listed_and_a_killed_one_is_recorded_once(tmp_path: Path) -> None:
    project = small_northwind(tmp_path / "p")
    env = child_env(LAKESTACK_FAILPOINTS="files.before_read=sleep(60000)")
    proc = subprocess.Popen(  # a session of its own: its forked readers die with it
        [LAKESTACK, "-p", str(project), "ingest"], env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list((project / ".lakestack" / "runs").rglob("*.json")):
            assert proc.poll() is None and time.monotonic() < deadline, "the ingest never marked itself in flight"
            time.sleep(0.1)
        running = _runs(project)
        assert [(r["job"], r["status"]) for r in running] == [("ingest", "RUNNING")]
        assert [r["status"] for r in _runs(project, "--status", "running")] == ["RUNNING"]
        assert _runs(project, "--status", "fail") == []
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    # gone: no longer RUNNING, and not yet recorded (only a run that records reaps it)
    assert _runs(project) == []
    again = cli(project, "ingest")
    assert again.returncode == 0, again.stderr
    runs = _runs(project)
    assert [(r["job"], r["status"]) for r in runs] == [("ingest", "COMPLETE"), ("ingest", "FAIL")]
    killed = runs[1]
    assert killed["run_id"] == running[0]["run_id"] and killed["lake_run_id"] == running[0]["lake_run_id"]
    assert f"process {proc.pid}" in str(killed["error"]) and "ended without finishing" in str(killed["error"])
    assert not list((project / ".lakestack" / "runs").rglob("*.json")), "markers are gone once recorded"

    assert cli(project, "promote").returncode == 0  # a later run records the killed one no second time
    tops = [r for r in read_runs(Lake.open(project).warehouse) if r["parent_run_id"] is None]
    assert [r["job"] for r in tops].count("ingest") == 2


def test_markers_of_live_processes_other_hosts_and_garbage_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    inflight = InFlight(folder)
    mine = JobRun(run_id="01-live", job="ingest", job_type="ingest")
    inflight.start(mine)
    other = json.loads((folder / "01-live.json").read_text())
    (folder / "02-far.json").write_text(json.dumps({**other, "run_id": "02-far", "host": "elsewhere", "pid": 1}))
    (folder / "03-dead.json").write_text(json.dumps({**other, "run_id": "03-dead", "pid": 2**22 + 7}))
    (folder / "04-reused.json").write_text(json.dumps({**other, "run_id": "04-reused", "process_start": "1"}))
    (folder / "05-garbage.json").write_text("{not json")
    assert sorted(m.run_id for m in inflight.running()) == ["01-live", "02-far"]
    abandoned = sorted(inflight.abandoned(), key=lambda m: m.run_id)
    assert [m.run_id for m in abandoned] == ["03-dead", "04-reused"]  # a reused pid: another start time
    assert inflight.claim(abandoned[0]) and not inflight.claim(abandoned[0])  # one reaper wins
    inflight.settle(["03-dead"], recorded=False)  # its record failed: back for the next run
    assert "03-dead" in {m.run_id for m in inflight.abandoned()}
    job = abandoned[1].as_job()
    assert job.status == "FAIL" and job.exit_code == 3 and job.ended_at is not None
    inflight.finish(["01-live"])
    assert "01-live" not in {m.run_id for m in inflight.markers()}
    InFlight(tmp_path / "missing").finish(["x"])  # nothing to do, no error
    assert InFlight(tmp_path / "missing").markers() == []

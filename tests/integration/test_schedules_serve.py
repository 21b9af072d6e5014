"""`lakestack serve` firing the project's `schedules:` on a fast cron (a sixth field: seconds):
every firing recorded in `_lakestack.runs`, each run under the run id the firing gave it, runs of one
job never overlapping (a fire time while it runs is SKIPPED), and `lakestack schedules` reporting it."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from serve_support import free_port, start_serve, wait_healthy

pytestmark = [pytest.mark.slow]

ORDERS = "order_id,qty,price,currency,order_ts,email\nORD-0001,2,9.50,EUR,2026-01-01T10:00:00,a@example.com\n"


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(root), *args], capture_output=True, text=True, timeout=120
    )


def _records(root: Path) -> list[dict]:
    """Every run record, read the way `lakestack runs --json` reads them (newest first)."""
    from lakestack.cli.render import to_jsonable
    from lakestack.pipeline.lake import Lake
    from lakestack.pipeline.records import read_runs

    with Lake.open(root) as lake:
        return [json.loads(json.dumps(to_jsonable(r), default=str)) for r in read_runs(lake.warehouse)]


def test_serve_fires_schedules_records_them_and_never_overlaps(project: Path) -> None:
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(ORDERS)
    with (project / "lakestack.yaml").open("a") as f:
        f.write('schedules:\n  run: "* * * * * *"\n  sla: {cron: "* * * * * */3", missed: run_once}\n')
    port = free_port()
    server = start_serve(project, port)
    try:
        assert wait_healthy(port, server), server.stderr.read().decode() if server.stderr else ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until two runs have completed (a loaded machine is slow)
            done = [r for r in _records(project) if r["job"] == "schedule.run" and r["status"] == "COMPLETE"]
            if len(done) >= 2:
                print(f"two scheduled runs completed after {time.monotonic() - deadline + 60:.1f} s")
                break
            time.sleep(1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    rows = _records(project)
    firings = [r for r in rows if r["job_type"] == "schedule"]
    by_status: dict[str, list[dict]] = {}
    for row in firings:
        if row["job"] == "schedule.run":
            by_status.setdefault(row["status"], []).append(row)
    assert len(by_status.get("COMPLETE", [])) >= 2, [(r["job"], r["status"], r["error"]) for r in firings]
    assert by_status.get("SKIPPED"), "a run takes more than a second: some fire times must be skipped"
    assert all(
        r["error"] == "still running" for r in by_status["SKIPPED"] if not json.loads(r["progress"]).get("missed")
    )
    # each completed firing's run id is the lakestack run it started, recorded by the child process
    runs = {r["lake_run_id"]: r for r in rows if r["job"] == "run" and r["parent_run_id"] is None}
    for firing in by_status["COMPLETE"]:
        run_id = json.loads(firing["progress"])["run_id"]
        assert runs[run_id]["status"] == "COMPLETE"
    # the scheduled runs never overlapped
    spans = sorted((_t(r["started_at"]), _t(r["ended_at"])) for r in runs.values() if r["ended_at"])
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end
    assert sum(r["rows_written"] for r in runs.values()) == 1  # the one order landed once
    assert any(r["job"] == "schedule.sla" for r in firings)
    # `lakestack schedules` shows the jobs with their next fire time and last firing
    done = _cli(project, "schedules", "--json")
    assert done.returncode == 0, done.stderr
    listed = {s["job"]: s for s in json.loads(done.stdout)}
    assert set(listed) == {"run", "sla"}
    assert listed["run"]["last_status"] in ("COMPLETE", "SKIPPED", "ABORT")
    assert listed["sla"]["missed"] == "run_once" and listed["run"]["next"]


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_invalid_cron_stops_serve_with_the_line(project: Path) -> None:
    with (project / "lakestack.yaml").open("a") as f:
        f.write('schedules:\n  run: "61 * * * *"\n')
    done = subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(project), "serve", "--insecure-dev", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = len((project / "lakestack.yaml").read_text().splitlines())
    assert done.returncode == 2 and f"lakestack.yaml:{line}" in done.stderr and "not a cron expression" in done.stderr
    assert "Traceback" not in done.stderr

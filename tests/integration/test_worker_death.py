"""A file-reading worker process that dies (the OOM killer, kill -9) fails the run with one line;
the next run lands every file once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HEADER = "order_id,qty,price,currency,order_ts,email\n"


def _rows(day: int) -> str:
    return HEADER + "".join(f"ORD-{day}{i:03d},1,1.00,USD,2026-01-01 10:00:00,a@b.io\n" for i in range(5))


def _ingest(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LAKESTACK_INGEST_WORKERS": "2", "COLUMNS": "200", **env}
    full.pop("LAKESTACK_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(project), "ingest", "orders", "--json"],
        capture_output=True,
        text=True,
        env=full,
        timeout=180,
    )


def test_a_dead_worker_fails_the_run_clearly_and_the_next_run_lands_everything_once(
    project: Path, land: Callable[[str, str, str | bytes], Path]
) -> None:
    for day in range(1, 5):
        land("orders", f"orders_202601{day:02d}.csv", _rows(day))
    crashed = _ingest(project, LAKESTACK_FAILPOINTS="files.before_read=kill")
    assert crashed.returncode == 3, crashed.stdout + crashed.stderr
    assert "Traceback" not in crashed.stdout + crashed.stderr
    problem = json.loads(crashed.stdout)
    assert "worker process reading orders_2026010" in problem["message"] and "died" in problem["message"]
    clean = _ingest(project)
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    again = json.loads(_ingest(project).stdout)
    assert (report["rows_in"], report["landed"], report["quarantined"]) == (20, 20, 0)
    assert again["landed"] == 0

"""`lakestack ingest` output: files an earlier run already ingested are one summary line, not one
row each; `--verbose` lists them; `--json` always lists every file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lakestack", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_files_already_ingested_are_one_line_and_verbose_lists_them(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    assert run("init", "demo", "--path", str(folder)).returncode == 0
    landing = folder / "landing" / "events"
    shutil.copyfile(landing / "events_20260101.ndjson", landing / "events_20260102.ndjson")

    first = run("-p", str(folder), "ingest")
    assert first.returncode == 0, first.stderr
    # a duplicate inside this drop is news: listed by name, naming the file it repeats
    assert "events_20260102.ndjson" in first.stdout and "same content as events_20260101.ndjson" in first.stdout
    assert "unchanged" not in first.stdout

    again = run("-p", str(folder), "ingest")
    assert again.returncode == 0, again.stderr
    assert "2 files unchanged (already ingested): events 2" in again.stdout
    assert "files not landed" not in again.stdout and "events_20260101.ndjson" not in again.stdout

    verbose = run("-p", str(folder), "ingest", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "files not landed" in verbose.stdout and "unchanged (already ingested)" not in verbose.stdout
    assert "events_20260101.ndjson" in verbose.stdout and "events_20260102.ndjson" in verbose.stdout

    as_json = json.loads(run("-p", str(folder), "ingest", "--json").stdout)
    files = as_json["sources"][0]["files"]
    assert [f["name"] for f in files] == ["events_20260101.ndjson", "events_20260102.ndjson"]
    assert {f["status"] for f in files} == {"skipped"} and all("already ingested" in f["reason"] for f in files)

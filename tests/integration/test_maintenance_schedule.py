"""`maintenance: {every: …}` makes a real `lakestack serve` run `lakestack maintain` on its schedule."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import yaml

from lake_support import cli, small_northwind, spawn
from serve_support import free_port


def test_serve_runs_maintenance_on_its_schedule(tmp_path: Path) -> None:
    root = small_northwind(tmp_path / "nw", orders=200, days=2)
    config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
    config["environments"]["dev"]["maintenance"] = {"every": "2s", "snapshot_retention": "1s"}
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    for _ in range(3):  # a few Bronze commits to compact
        cli(root, "ingest")
    assert cli(root, "runs", "--job", "maintain", "--json").stdout.strip() == "[]"

    server = spawn(root, "serve", "--insecure-dev", "--port", str(free_port()))
    try:
        deadline, runs = time.monotonic() + 90, []
        while not runs and time.monotonic() < deadline:
            time.sleep(1)
            listed = json.loads(cli(root, "runs", "--job", "maintain", "--json").stdout or "[]")
            runs = [r for r in listed if r["status"] != "RUNNING"]  # one still going is listed RUNNING
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert runs, "no maintain run within 90 s of `lakestack serve` with maintenance.every: 2s"
    assert {r["status"] for r in runs} == {"COMPLETE"}
    assert any(r["job"].startswith("maintain.bronze.") for r in runs)


def test_maintenance_is_off_by_default(tmp_path: Path) -> None:
    from lakestack import Lake
    from lakestack.serve.scheduler import default_schedules

    root = small_northwind(tmp_path / "nw", orders=50, days=1)
    with Lake.open(root) as lake:
        assert "maintenance" not in {s.name for s in default_schedules(lake)}

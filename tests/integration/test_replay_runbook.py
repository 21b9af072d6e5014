"""docs/runbooks/replay-quarantine.md, run: its Northwind walk-through, then every step's commands in
order, in one shell with `lakestack` on PATH; the orders end up in Bronze once and in Silver."""

from __future__ import annotations

from pathlib import Path

from lakestack import Lake
from runbook_support import run_runbook


def test_the_replay_runbook_runs_on_northwind(tmp_path: Path) -> None:
    done = run_runbook("replay-quarantine.md", tmp_path, min_blocks=5)
    assert "already ingested" in done.stdout
    assert "replayed before" in done.stdout

    with Lake.open(tmp_path / "nw") as lake:
        bronze = lake.warehouse.load("bronze.orders").scan().to_arrow()
        silver = lake.warehouse.load("silver.orders").scan().to_arrow()
    lines = list(zip(bronze["_source_file"].to_pylist(), bronze["_source_line"].to_pylist(), strict=True))
    assert len(lines) == len(set(lines)) > 1000  # every record once
    assert bronze["_replayed_from"].null_count == 0  # every orders file was rejected whole, then replayed
    assert silver.num_rows > 0

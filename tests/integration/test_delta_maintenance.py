"""`lakestack maintain` on Delta tables (storage/delta_maintenance.py, ADR 35): small files compacted
with optimize, files only expired versions reference vacuumed, contents and checkpoints unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_support import cli, copy_project, small_northwind
from lakestack import Lake
from lakestack.storage.checkpoints import FileLedger, UpstreamSnapshots, read_checkpoint

pytest.importorskip("deltalake")
OWN_RECORDS = ("_lakestack.runs", "_lakestack.audit")  # maintain itself appends to these


def _contents(root: Path) -> dict[str, tuple[int, str]]:
    warehouse = Lake.open(root).warehouse
    out = {}
    for name in [t for t in warehouse.tables() if t not in OWN_RECORDS]:
        rows = warehouse.load(name).scan().to_arrow().to_pylist()
        out[name] = (
            len(rows),
            hashlib.sha256(repr(sorted(repr(sorted(r.items())) for r in rows)).encode()).hexdigest(),
        )
    return out


def _checkpoints(root: Path) -> dict[str, Any]:
    warehouse = Lake.open(root).warehouse
    out: dict[str, Any] = {}
    for name in warehouse.tables():
        table = warehouse.load(name)
        kind = FileLedger if name.startswith(("bronze.", "quarantine.")) else UpstreamSnapshots
        out[name] = read_checkpoint(table, kind)  # type: ignore[call-overload]
    return out


def _parquet(root: Path, identifier: str) -> set[Path]:
    folder = root / "warehouse" / identifier.replace(".", "/", 1)
    return {p for p in folder.rglob("*.parquet") if "_lakestack" not in p.relative_to(folder).parts}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Northwind on Delta with no snapshot retention, run three times (the later runs commit run
    records and check results: small files), and Silver's orders rewritten by a backfill."""
    base = tmp_path_factory.mktemp("delta-maintain")
    root = copy_project(small_northwind(base / "pristine", orders=300, days=2), base / "nw", table_format="delta")
    config = yaml.safe_load((root / "lakestack.yaml").read_text())
    config["environments"]["dev"]["maintenance"] = {"snapshot_retention": "0s", "keep_last": 1}
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for args in (["run"], ["run"], ["run"], ["backfill", "orders", "--all"]):
        done = cli(root, *args)
        assert done.returncode in (0, 4), done.stderr  # 4: the example's gate may block a Gold mart
    return root


def test_maintain_compacts_and_vacuums_without_changing_what_tables_hold(project: Path) -> None:
    before, checkpoints = _contents(project), _checkpoints(project)
    warehouse = Lake.open(project).warehouse
    results_files = len(warehouse.load("_lakestack.check_results").scan().plan_files())
    silver = _parquet(project, "silver.orders")
    live = {Path(t.file.file_path.removeprefix("file://")) for t in warehouse.load("silver.orders").scan().plan_files()}
    assert results_files > 1 and silver - live  # small files to compact; files the backfill replaced

    done = cli(project, "maintain")
    assert done.returncode == 0, done.stderr

    assert _contents(project) == before
    assert _checkpoints(project) == checkpoints
    assert len(Lake.open(project).warehouse.load("_lakestack.check_results").scan().plan_files()) == 1
    assert _parquet(project, "silver.orders") == live  # the replaced files are gone, the live ones stay
    again = cli(project, "run")  # nothing to do: ingest skips every file, Silver and Gold are unchanged
    assert again.returncode in (0, 4), again.stderr
    assert {k: v for k, v in _contents(project).items() if not k.startswith("_lakestack.")} == {
        k: v for k, v in before.items() if not k.startswith("_lakestack.")
    }

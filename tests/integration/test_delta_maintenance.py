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
from lakestack.storage.checkpoints import FileLedger, StreamPositions, UpstreamSnapshots, read_checkpoint

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


def test_orphan_removal_on_delta_deletes_old_unreferenced_files_and_never_a_logged_or_young_one(
    tmp_path: Path,
) -> None:
    """Files no log version adds or removes (a writer killed before its commit) and side files no
    version's state names go once older than orphan_min_age; live files, files the log removed (kept
    for time travel until vacuum), young files and what is not a table file stay."""
    from maintenance_support import backdate, stream_commits
    from stream_support import stream_project

    root = stream_project(
        tmp_path / "p", "kafka", {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]}, table_format="delta"
    )
    stream_commits(root, 0, 12)
    lake = Lake.open(root)
    table = lake.warehouse.load("bronze.events")
    folder = Path(table.location().removeprefix("file://"))
    live = [Path(t.file.file_path.removeprefix("file://")) for t in table.scan().plan_files()]
    old_stray = live[0].parent / "part-00000-crashed-writer-c000.zstd.parquet"
    young_stray = live[0].parent / "part-00000-writing-now-c000.zstd.parquet"
    for path in (old_stray, young_stray):
        path.write_bytes(live[0].read_bytes())
    stray_side = folder / "_lakestack" / "ledger-never-committed.json"
    stray_side.parent.mkdir(exist_ok=True)
    stray_side.write_text("{}")
    elsewhere = folder / "notes" / "readme.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text("not a table file")
    side_before = set((folder / "_lakestack").iterdir()) - {stray_side}
    backdate(root / "warehouse", 3 * 86400)  # every file, live ones too, looks three days old
    young_stray.touch()
    versions = [s.snapshot_id for s in table.metadata.snapshots]
    by_version = {v: sorted(map(repr, table.scan(snapshot_id=v).to_arrow().to_pylist())) for v in versions}
    positions = read_checkpoint(table, StreamPositions)

    reports = {r.table: r for r in lake.maintain(["bronze.events"]).tables}  # retention 7d: no expiry

    report = reports["bronze.events"]
    assert report.compacted_files >= 2  # compaction removed files the log still names: they stay
    assert report.orphans == 2
    assert not old_stray.exists() and not stray_side.exists()
    assert young_stray.exists() and elsewhere.exists()
    assert set((folder / "_lakestack").iterdir()) >= side_before
    table = Lake.open(root).warehouse.load("bronze.events")
    for version, rows in by_version.items():  # every version still reads every file
        assert sorted(map(repr, table.scan(snapshot_id=version).to_arrow().to_pylist())) == rows
    assert read_checkpoint(table, StreamPositions) == positions


def test_orphan_removal_on_delta_after_the_oldest_log_files_are_gone(tmp_path: Path) -> None:
    """A log checkpoint, then the log files before it deleted (as an erasure's expiry does): the
    live files and what the remaining versions name stay; a stray goes."""
    import deltalake

    from maintenance_support import backdate, stream_commits
    from stream_support import stream_project

    root = stream_project(
        tmp_path / "p", "kafka", {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]}, table_format="delta"
    )
    stream_commits(root, 0, 6)
    lake = Lake.open(root)
    table = lake.warehouse.load("bronze.events")
    folder = Path(table.location().removeprefix("file://"))
    deltalake.DeltaTable(table.uri).create_checkpoint()
    for version in range(table.version):
        (folder / "_delta_log" / f"{version:020d}.json").unlink()
    stream_commits(root, 6, 8)
    live = [
        Path(t.file.file_path.removeprefix("file://")) for t in lake.warehouse.load("bronze.events").scan().plan_files()
    ]
    stray = live[0].parent / "part-00000-crashed-writer-c000.zstd.parquet"
    stray.write_bytes(live[0].read_bytes())
    backdate(root / "warehouse", 3 * 86400)
    rows = sorted(map(repr, lake.warehouse.load("bronze.events").scan().to_arrow().to_pylist()))

    report = Lake.open(root).maintain(["bronze.events"]).tables[0]

    assert not stray.exists()
    table = Lake.open(root).warehouse.load("bronze.events")
    assert sorted(map(repr, table.scan().to_arrow().to_pylist())) == rows
    assert all(Path(t.file.file_path.removeprefix("file://")).exists() for t in table.scan().plan_files())
    assert report.orphans >= 1

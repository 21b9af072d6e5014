"""`lakestack maintain`: compaction keeps content and time travel, expiry keeps what checkpoints
need, a stream resumes exactly once after it, orphan removal spares live and young files, and a
dry run changes nothing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lake_support import cli, lake_contents, small_northwind
from lakestack import Lake
from lakestack.storage.checkpoints import StreamPositions, read_checkpoint
from maintenance_support import (
    backdate,
    expected_ids,
    fingerprint,
    quarantined_ids,
    set_maintenance,
    stream_commits,
    stream_table,
)
from stream_support import bronze_ids

pytestmark = pytest.mark.slow

COMMITS = 300


def _scan(table: object, snapshot_id: int) -> list[str]:
    rows = table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()  # type: ignore[attr-defined]
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def test_a_stream_table_of_300_commits_is_compacted_and_expired_then_the_stream_resumes_exactly_once(
    tmp_path: Path,
) -> None:
    root = stream_table(tmp_path / "p", COMMITS)
    lake = Lake.open(root)
    before = lake_contents(root)
    positions = read_checkpoint(lake.warehouse.load("bronze.events"), StreamPositions)
    assert len(lake.warehouse.load("bronze.events").metadata.snapshots) == COMMITS
    set_maintenance(root, snapshot_retention="0s", orphan_min_age="0s")

    result = Lake.open(root).maintain()

    reports = {r.table: r for r in result.tables}
    bronze = reports["bronze.events"]
    assert (bronze.before.files, bronze.after.files) == (COMMITS, 1)
    assert bronze.before.snapshots == COMMITS and bronze.after.snapshots == 1
    assert bronze.after.manifests == 1 and bronze.after.bytes < bronze.before.bytes
    assert bronze.refused is None
    assert reports["quarantine.events"].after.files == 1
    assert lake_contents(root) == before  # not a row lost, doubled or changed
    table = Lake.open(root).warehouse.load("bronze.events")
    assert read_checkpoint(table, StreamPositions) == positions
    assert not any(f.name.endswith(".parquet") for f in _unreferenced_data(root))

    stream_commits(root, COMMITS - 40, COMMITS + 60, run_id="resumed")  # 40 positions come again
    good, bad = expected_ids(COMMITS + 60)
    assert Counter(bronze_ids(root)) == good
    assert quarantined_ids(root) == bad


def _unreferenced_data(root: Path) -> list[Path]:
    """Data files on disk that no snapshot of their table references."""
    lake = Lake.open(root)
    live: set[str] = set()
    for identifier in lake.warehouse.tables():
        table = lake.warehouse.load(identifier)
        for snap in table.metadata.snapshots:
            for manifest in snap.manifests(table.io):
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                    live.add(entry.data_file.file_path.removeprefix("file://"))
    return [p for p in (root / "warehouse").rglob("*.parquet") if "/data/" in str(p) and str(p) not in live]


def test_compaction_keeps_content_time_travel_and_incremental_promotion(tmp_path: Path) -> None:
    """Northwind ingested in several drops: compaction rewrites only what Silver has read, a later
    promotion still takes exactly the new rows, and the result equals a lake never maintained."""
    from lake_support import copy_project

    pristine = small_northwind(tmp_path / "pristine", orders=600, days=3)
    held = pristine / "held"
    held.mkdir()
    landing = sorted((pristine / "landing" / "orders").iterdir())
    for path in landing[1:]:
        path.rename(held / path.name)
    maintained = copy_project(pristine, tmp_path / "maintained")
    plain = copy_project(pristine, tmp_path / "plain")
    for root in (maintained, plain):
        assert cli(root, "run").returncode in (0, 4)
        for path in sorted((root / "held").iterdir())[:-1]:  # all but the last drop, one ingest each
            path.rename(root / "landing" / "orders" / path.name)
            assert cli(root, "ingest", "orders").returncode == 0
        assert cli(root, "promote").returncode == 0
        last = sorted((root / "held").iterdir())[-1]
        last.rename(root / "landing" / "orders" / last.name)
        assert cli(root, "ingest", "orders").returncode == 0  # landed, not promoted yet

    lake = Lake.open(maintained)
    silver = lake.warehouse.load("silver.orders")
    old = silver.current_snapshot().snapshot_id
    old_rows = _scan(silver, old)
    contents = lake_contents(maintained)
    result = lake.maintain()
    reports = {r.table: r for r in result.tables}
    assert reports["bronze.orders"].compacted_files >= 2
    assert lake_contents(maintained) == contents
    assert _scan(Lake.open(maintained).warehouse.load("silver.orders"), old) == old_rows  # time travel
    bronze = Lake.open(maintained).warehouse.load("bronze.orders")
    newest = bronze.current_snapshot()
    unread = [e for e in _entries(bronze) if e.snapshot_id != newest.snapshot_id]
    assert unread, "the drop Silver has not read was compacted with the rest"

    for root in (maintained, plain):
        assert cli(root, "run").returncode in (0, 4)
    assert lake_contents(maintained) == lake_contents(plain)


def _entries(table: object) -> list[object]:
    snap = table.current_snapshot()  # type: ignore[attr-defined]
    io = table.io  # type: ignore[attr-defined]
    return [e for m in snap.manifests(io) for e in m.fetch_manifest_entry(io, discard_deleted=True)]


def test_expiry_keeps_the_snapshot_a_gold_model_reads_on_from_and_refuses_an_unreadable_checkpoint(
    tmp_path: Path,
) -> None:
    root = small_northwind(tmp_path / "p", orders=300, days=2)
    assert cli(root, "run").returncode in (0, 4)
    landing = root / "landing" / "orders"
    first = landing / "orders_20260101.csv"
    (landing / "orders_20260109.csv").write_bytes(first.read_bytes().replace(b"ORD-0", b"ORD-9"))  # new orders
    assert cli(root, "ingest", "orders").returncode == 0
    assert cli(root, "promote", "orders").returncode == 0  # Silver moves on; Gold is not rebuilt yet
    set_maintenance(root, snapshot_retention="0s", orphan_min_age="0s")
    lake = Lake.open(root)
    from lakestack.storage.checkpoints import UpstreamSnapshots

    built_from = read_checkpoint(lake.warehouse.load("gold.fact_sales"), UpstreamSnapshots).snapshots["silver.orders"]
    assert built_from != lake.warehouse.load("silver.orders").current_snapshot().snapshot_id

    reports = {r.table: r for r in lake.maintain(["silver.orders", "bronze.orders"]).tables}

    kept = dict(reports["silver.orders"].kept)
    assert "gold." in kept[built_from] and "reads on from it" in kept[built_from]
    assert Lake.open(root).warehouse.load("silver.orders").snapshot_by_id(built_from) is not None
    built = cli(root, "build")  # incremental: compares Silver's files with the kept snapshot
    assert built.returncode in (0, 4), built.stderr
    incremental = lake_contents(root)
    assert cli(root, "build", "--full-refresh").returncode in (0, 4)
    assert lake_contents(root) == incremental
    bronze = Lake.open(root).warehouse.load("bronze.orders")

    # a commit whose checkpoint cannot be read: nothing can be proven safe, so expiry refuses
    from lakestack.storage.checkpoints import STATE

    with bronze.transaction() as tx, tx.update_snapshot(snapshot_properties={STATE: "{broken"}).fast_append():
        pass
    refused = Lake.open(root).maintain(["bronze.orders"]).tables[0]
    assert refused.refused is not None and "cannot be read" in refused.refused
    assert refused.expired == 0
    assert any("orphan removal refused" in n for n in refused.notes)


def test_orphan_removal_deletes_old_strays_and_never_a_live_or_young_file(tmp_path: Path) -> None:
    root = stream_table(tmp_path / "p", 12)
    lake = Lake.open(root)
    table = lake.warehouse.load("bronze.events")
    location = Path(table.location().removeprefix("file://"))
    old_stray = location / "data" / "stray-old.parquet"
    young_stray = location / "data" / "stray-young.parquet"
    elsewhere = location / "notes" / "readme.txt"
    for path in (old_stray, young_stray, elsewhere):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a table file")
    backdate(root / "warehouse", 3 * 86400)  # every file, live ones too, looks three days old
    young_stray.touch()
    snapshots = [s.snapshot_id for s in table.metadata.snapshots]
    by_snapshot = {s: _scan(table, s) for s in snapshots}
    contents = lake_contents(root)

    reports = {r.table: r for r in lake.maintain(["bronze.events"]).tables}  # retention 7d: no expiry

    assert reports["bronze.events"].orphans == 1
    assert not old_stray.exists() and young_stray.exists() and elsewhere.exists()
    table = Lake.open(root).warehouse.load("bronze.events")
    assert {s.snapshot_id for s in table.metadata.snapshots} >= set(snapshots)
    for snapshot_id, rows in by_snapshot.items():  # every live snapshot still reads every file
        assert _scan(table, snapshot_id) == rows
    assert lake_contents(root) == contents


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(tmp_path: Path) -> None:
    root = stream_table(tmp_path / "p", 25)
    set_maintenance(root, snapshot_retention="0s", orphan_min_age="0s")
    before = fingerprint(root)

    done = cli(root, "maintain", "--dry-run", "--json")

    assert done.returncode == 0, done.stderr
    assert fingerprint(root) == before
    plan = {t["table"]: t for t in json.loads(done.stdout)["tables"]}
    assert json.loads(done.stdout)["dry_run"] is True
    assert plan["bronze.events"]["compacted_files"] == 25
    assert plan["bronze.events"]["files_after"] == 1
    assert plan["bronze.events"]["expired_snapshots"] == 24
    runs = cli(root, "runs", "--json")
    assert json.loads(runs.stdout) == []  # a dry run records nothing


def test_cli_maintain_reports_before_and_after_records_a_run_and_refuses_an_unknown_table(tmp_path: Path) -> None:
    root = stream_table(tmp_path / "p", 15)
    set_maintenance(root, snapshot_retention="0s", orphan_min_age="0s", history_retention="1s")

    shown = cli(root, "maintain", "bronze.events")
    assert shown.returncode == 0, shown.stderr
    assert "15 → 1" in shown.stdout and "maintain" in shown.stdout
    runs = json.loads(cli(root, "runs", "--all", "--json").stdout)
    jobs = [r for r in runs if r["job"] == "maintain.bronze.events"]
    assert len(jobs) == 1 and jobs[0]["status"] == "COMPLETE"

    unknown = cli(root, "maintain", "bronze.nope")
    assert unknown.returncode == 2
    assert "unknown table 'bronze.nope'" in unknown.stderr and "bronze.events" in unknown.stderr

    import time

    time.sleep(1.5)  # the first run's record is now past history_retention
    again = json.loads(cli(root, "maintain", "_lakestack.runs", "--json").stdout)
    assert again["tables"][0]["history_rows_deleted"] >= 2  # the run and its job
    left = json.loads(cli(root, "runs", "--all", "--json").stdout)
    assert {r["lake_run_id"] for r in left} == {again["run_id"]}  # only this run's own record

"""What compaction and expiry plan, on small real Iceberg tables (SQLite catalog in a temp folder)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack.storage.expiry import plan_expiry
from lakestack.storage.maintenance import _pack, compact, plan_compaction


@pytest.fixture
def table(tmp_path: Path) -> Any:
    """An unpartitioned table with five appends of one small file each."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("ns")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    made = catalog.create_table("ns.t", schema=schema, properties={"commit.retry.num-retries": "0"})
    for i in range(5):
        made.append(pa.table({"id": pa.array([i * 10 + j for j in range(10)], pa.int64())}, schema=schema))
        time.sleep(0.01)  # distinct commit times
    return catalog.load_table("ns.t")


class _File:
    def __init__(self, path: str, size: int) -> None:
        self.file_path, self.file_size_in_bytes = path, size


def test_bins_stay_within_the_target_and_keep_commit_order() -> None:
    files = [_File(f"f{i}", size) for i, size in enumerate([40, 40, 40, 70, 10, 30])]
    bins = _pack(files, 100)  # type: ignore[arg-type]
    assert all(sum(f.file_size_in_bytes for f in b) <= 100 for b in bins)
    assert sorted(f.file_path for b in bins for f in b) == [f"f{i}" for i in range(6)]
    assert [f.file_path for f in bins[0]] == ["f0", "f1", "f4"]


def _ids(table: Any) -> list[int]:
    return [s.snapshot_id for s in sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)]


def test_expiry_goes_oldest_first_and_stops_at_the_first_snapshot_that_must_stay(table: Any) -> None:
    ids = _ids(table)
    now = int(time.time() * 1000) + 1000
    plan = plan_expiry(table, now_ms=now, retention_ms=0, keep_last=1, pinned={ids[2]: "a reader starts there"})
    assert plan.expire == (ids[0], ids[1])
    assert plan.kept == ((ids[2], "a reader starts there; the 1 older-than-retention snapshots after it stay too"),)
    assert plan.refused is None


def test_expiry_keeps_the_snapshot_current_at_the_start_of_the_window(table: Any) -> None:
    snaps = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
    start = snaps[2].timestamp_ms + 1  # the window starts just after the third commit
    plan = plan_expiry(table, now_ms=start + 10_000, retention_ms=10_000, keep_last=1)
    assert plan.expire == (snaps[0].snapshot_id, snaps[1].snapshot_id)
    assert plan.kept == ((snaps[2].snapshot_id, "time travel to the start of the retention window"),)
    nothing = plan_expiry(table, now_ms=start + 10_000, retention_ms=10**9, keep_last=1)
    assert nothing.expire == () and nothing.kept == ()


def test_compaction_merges_small_files_in_one_replace_snapshot_keeping_rows_and_sequence(table: Any) -> None:
    rows = sorted(table.scan().to_arrow()["id"].to_pylist())
    plan = plan_compaction(table, 1 << 20)
    assert plan.files == 5 and len(plan.bins) == 1
    table, done = compact(table, 1 << 20, run_id="r", batch_id="b")
    assert (done.removed, done.added) == (5, 1)
    snap = table.current_snapshot()
    assert snap.summary.operation.value == "replace"
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == rows
    entries = [e for m in snap.manifests(table.io) for e in m.fetch_manifest_entry(table.io)]
    assert [e.sequence_number for e in entries] == [5]  # the newest of the files it replaced, not 6
    assert plan_compaction(table, 1 << 20).bins == ()  # nothing left to merge


def test_settings_read_durations_and_off_as_for_ever() -> None:
    import math

    from lakestack.config import EnvironmentConfig, MaintenanceConfig
    from lakestack.pipeline.maintain import settings_from

    default = settings_from(EnvironmentConfig())
    assert (default.retention_s, default.orphan_min_age_s, default.history_s) == (7 * 86400, 86400, 90 * 86400)
    assert default.target_bytes == 128 * 1024 * 1024
    off = settings_from(
        EnvironmentConfig(maintenance=MaintenanceConfig(snapshot_retention="off", orphan_min_age="never"))
    )
    assert math.isinf(off.retention_s) and math.isinf(off.orphan_min_age_s)
    with pytest.raises(ValueError, match="is not a duration"):
        MaintenanceConfig(history_retention="90 days")


def test_a_rewrite_carries_what_readers_keep_in_the_current_snapshot_summary(table: Any) -> None:
    """`_lakestack.alerts` keeps its open incidents in the current snapshot's summary: compaction and
    manifest rewrite must carry such keys (and not a writer's own run and batch ids)."""
    from lakestack.storage.maintenance import rewrite_manifests

    held = {"lakestack.alerts": '{"open":{"x":1}}', "lakestack.run-id": "writer", "lakestack.batch-id": "w1"}
    table.append(table.scan().to_arrow().slice(0, 1), snapshot_properties=held)
    table, _ = compact(table, 1 << 20, run_id="m", batch_id="m1")
    table, _ = rewrite_manifests(table, run_id="m", batch_id="m2")
    summary = table.current_snapshot().summary.additional_properties
    assert summary["lakestack.alerts"] == held["lakestack.alerts"]
    assert (summary["lakestack.run-id"], summary["lakestack.batch-id"]) == ("m", "m2")
    assert summary["lakestack.maintenance"] == "manifests"

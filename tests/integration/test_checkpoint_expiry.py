"""Expire every snapshot but the newest with pyiceberg's own expiry, then ingest, promote and stream
again: every row lands exactly once (the compact checkpoint, ADR 18)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lakestack import Lake
from lakestack.ingest.stream import StreamRecord, StreamWriter, stream_positions
from lakestack.storage.checkpoints import needed_snapshots
from stream_support import bronze_ids, payload, quarantine_rows, stream_project

Land = Callable[[str, str, "str | bytes"], Path]
HEADER = "order_id,qty,price,currency,order_ts,email\n"


def expire_all_but_current(lake: Lake, identifier: str) -> int:
    """Expire every snapshot of a table but the current one (pyiceberg's ExpireSnapshots); how many."""
    table = lake.warehouse.load(identifier)
    assert needed_snapshots(table) == set(), f"{identifier} still needs older snapshots"
    current = table.current_snapshot().snapshot_id
    old = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id != current]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    assert [s.snapshot_id for s in lake.warehouse.load(identifier).metadata.snapshots] == [current]
    return len(old)


def orders(first: int, n: int, day: int = 1) -> str:
    lines = [f"ORD-{i:04d},1,2.50,USD,2026-01-0{day}T10:00:00Z," for i in range(first, first + n)]
    return HEADER + "\n".join(lines) + "\n"


BAD = "ORD-1,2,9.99,USD,2026-01-01 10:00:00,\n"  # fails the order_id pattern


def bronze_orders(lake: Lake) -> list[str]:
    return sorted(r["order_id"] for r in lake.read("bronze.orders").to_pylist())


def test_file_ingest_after_expiry_skips_what_bronze_holds_and_lands_the_rest_once(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", orders(1, 5) + BAD)
    lake = Lake.open(project)
    lake.ingest(["orders"])
    land("orders", "orders_20260102.csv", orders(6, 5, day=2))
    lake.ingest(["orders"])
    land("orders", "orders_20260103.csv", orders(11, 5, day=3))
    lake.ingest(["orders"])
    assert expire_all_but_current(lake, "bronze.orders") == 2
    assert expire_all_but_current(lake, "quarantine.orders") == 0

    # the same contents dropped again under other names, and one new file
    land("orders", "orders_20260201.csv", orders(1, 5) + BAD)
    land("orders", "orders_20260202.csv", orders(6, 5, day=2))
    land("orders", "orders_20260104.csv", orders(16, 5, day=4))
    report = Lake.open(project).ingest(["orders"])
    outcomes = {f.name: f.status for s in report.sources for f in s.files}
    assert outcomes == {
        "orders_20260101.csv": "skipped",  # still in the landing folder
        "orders_20260102.csv": "skipped",
        "orders_20260103.csv": "skipped",
        "orders_20260201.csv": "skipped",
        "orders_20260202.csv": "skipped",
        "orders_20260104.csv": "landed",
    }
    assert bronze_orders(lake) == [f"ORD-{i:04d}" for i in range(1, 21)]
    assert lake.read("quarantine.orders").num_rows == 1


def test_silver_promotes_every_bronze_commit_once_after_its_checkpoint_snapshot_expired(
    project: Path, land: Land
) -> None:
    config = (project / "lakestack.yaml").read_text()
    (project / "lakestack.yaml").write_text(config + "datasets:\n  orders: {layer: silver}\n")
    lake = Lake.open(project)
    land("orders", "orders_20260101.csv", orders(1, 4))
    lake.ingest(["orders"])
    lake.promote()
    promoted = lake.warehouse.load("bronze.orders").current_snapshot().snapshot_id
    for day, first in ((2, 5), (3, 9)):  # two Bronze commits Silver has not read yet
        land("orders", f"orders_2026010{day}.csv", orders(first, 4, day=day))
        lake.ingest(["orders"])
    assert expire_all_but_current(lake, "bronze.orders") == 2
    assert lake.warehouse.load("bronze.orders").snapshot_by_id(promoted) is None  # Silver's checkpoint is gone
    [result] = Lake.open(project).promote()
    assert result.bronze_rows == 8  # exactly the rows of the two expired-but-unread commits
    ids = sorted(r["order_id"] for r in lake.read("silver.orders").to_pylist())
    assert ids == [f"ORD-{i:04d}" for i in range(1, 13)]
    assert expire_all_but_current(lake, "silver.orders") >= 1
    [again] = Lake.open(project).promote()
    assert again.snapshot_id is None  # nothing new: no snapshot


def _writer(root: Path, run_id: str) -> StreamWriter:
    lake = Lake.open(root)
    cfg = lake.project.config.sources["events"]
    return StreamWriter(lake.warehouse, "events", lake.project.contract("events"), "kafka", cfg.stream, run_id)


def test_a_stream_resumes_exactly_once_after_expiry_with_a_quiet_partition(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    writer = _writer(root, "run-1")
    writer.add([StreamRecord("t/1", 0, payload(1000)), StreamRecord("t/1", 1, b"{broken")])
    writer.flush()
    for i in range(30):  # t/0 moves on for 30 commits; t/1 stays quiet
        writer.add([StreamRecord("t/0", i, payload(i))])
        writer.flush()
    lake = Lake.open(root)
    assert expire_all_but_current(lake, "bronze.events") == 30
    assert expire_all_but_current(lake, "quarantine.events") == 0

    restarted = _writer(root, "run-2")
    assert restarted.committed == {"t/0": 29, "t/1": 1}
    assert restarted.quarantined_upto == {"t/1": 1}
    # the broker redelivers everything from the start of both partitions, and two new records
    redelivered = [StreamRecord("t/0", i, payload(i)) for i in range(32)]
    redelivered += [StreamRecord("t/1", 0, payload(1000)), StreamRecord("t/1", 1, b"{broken")]
    redelivered += [StreamRecord("t/1", 2, payload(1001))]
    restarted.add(redelivered)
    result = restarted.flush()
    assert result is not None and (result.landed, result.quarantined) == (3, 0)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 34  # e0..e31, e1000, e1001
    assert len(quarantine_rows(root)) == 1
    assert stream_positions(Lake.open(root).warehouse.load("bronze.events")) == {"t/0": 31, "t/1": 2}

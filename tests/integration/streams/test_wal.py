"""The collector's write-ahead log: positions never go backwards, a lost log is reported, trimming
keeps what is not committed, a failed write leaves nothing, and one process owns a source's log.

The two reproductions of issue 10 run against real `lakestack serve` processes."""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakestack.errors import StorageError
from lakestack.failpoints import armed, hits
from lakestack.ingest.wal import LogWriteError, SourceBusy, SourceLock, Wal
from lakestack.pipeline.lake import Lake
from lakestack.storage.warehouse import history
from serve_support import free_port, kill_serve, start_serve, stop_serve, wait_healthy
from stream_support import bronze_ids, event, quarantine_rows, stream_project

pytestmark = pytest.mark.integration


def _entries(wal: Wal) -> list[int]:
    return [position for position, _ in wal.read_after(-1)]


def _segments(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.wal"))


# -- the log on its own ----------------------------------------------------------------------------
def test_positions_continue_after_the_checkpoint_when_the_log_is_gone(tmp_path: Path) -> None:
    wal = Wal(tmp_path / "log", committed=19)
    try:
        assert wal.next_position == 20
        assert wal.health.problem is not None and "missing" in wal.health.problem
        assert wal.health.incidents == 1
        assert wal.append([b"a", b"b"]) == 20
        assert _segments(tmp_path / "log") == [f"{20:020d}.wal"]
    finally:
        wal.close()
    again = Wal(tmp_path / "log", committed=19)  # now whole: nothing new to report, the incident stays counted
    try:
        assert (again.health.problem, again.health.incidents, again.next_position) == (None, 1, 22)
        assert _entries(again) == [20, 21]
    finally:
        again.close()
    Wal(tmp_path / "gone", committed=19).close()  # reported, and stopped before any write
    again = Wal(tmp_path / "gone", committed=19)  # the position was anchored: reported once, not at every start
    try:
        assert (again.health.problem, again.health.incidents, again.next_position) == (None, 1, 20)
    finally:
        again.close()


def test_an_empty_newest_segment_keeps_the_position_without_a_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / f"{20:020d}.wal").touch()  # a roll killed before its first write, the older segment trimmed
    wal = Wal(folder)
    try:
        assert wal.next_position == 20
        assert wal.health.problem is None
    finally:
        wal.close()


def test_a_log_behind_the_checkpoint_or_with_a_gap_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    wal = Wal(folder)
    for _ in range(3):
        wal.append([b"x"])  # positions 0, 1, 2
    wal.close()
    behind = Wal(folder, committed=9)
    try:
        assert behind.next_position == 10
        assert behind.health.problem is not None and "behind" in behind.health.problem
    finally:
        behind.close()
    gap = tmp_path / "gap"
    wal = Wal(gap)
    wal.append([b"a"])  # 0
    wal.close()
    wal = Wal(gap, committed=0)  # a restart rolls a new segment: 1
    wal.append([b"b"])
    wal.close()
    wal = Wal(gap, committed=0)
    wal.append([b"c"])  # 2 in a third segment
    wal.close()
    (gap / f"{1:020d}.wal").unlink()  # the segment holding uncommitted position 1 is lost
    lost = Wal(gap, committed=0)
    try:
        assert lost.health.lost == 1
        assert lost.health.problem is not None and "LOST" in lost.health.problem
        assert lost.next_position == 3
    finally:
        lost.close()


def test_trim_keeps_the_newest_segment_and_every_uncommitted_entry(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    for start in range(3):  # three segments (each start rolls one): positions 0-1, 2-3, 4-5
        wal = Wal(folder, committed=start * 2 - 1)
        wal.append([b"a", b"b"])
        wal.close()
    wal = Wal(folder, committed=2)
    try:
        assert wal.trim(2) == 1  # 0-1 go; 2-3 holds 3, beyond the checkpoint
        assert _entries(wal) == [2, 3, 4, 5]
        assert wal.trim(5) == 1  # 2-3 go; the newest stays although all of it is committed
        assert _segments(folder) == [f"{4:020d}.wal"]
        assert wal.append([b"c"]) == 6
    finally:
        wal.close()


@pytest.mark.parametrize("point", ["wal.append.before_write", "wal.append.before_fsync", "wal.append.after_fsync"])
def test_a_failed_append_leaves_nothing_and_reuses_no_position(tmp_path: Path, point: str) -> None:
    wal = Wal(tmp_path / "log")
    try:
        assert wal.append([b"one"]) == 0
        with armed(f"{point}=enospc"), pytest.raises(LogWriteError, match="no space left"):
            wal.append([b"lost", b"lost"])
        assert wal.append([b"two"]) == 1
        assert [p for p, _ in wal.read_after(-1)] == [0, 1]
        assert [payload for _, payload in wal.read_after(-1)] == [b"one", b"two"]
    finally:
        wal.close()


def test_a_second_lock_on_a_source_is_refused_with_the_holder(tmp_path: Path) -> None:
    lock = SourceLock(tmp_path / "log", "events")
    with pytest.raises(SourceBusy, match=r"source events is collected by pid \d+ since"):
        Wal(tmp_path / "log", source="events")
    lock.release()
    Wal(tmp_path / "log", source="events").close()  # released: the next one takes it


# -- the two reproductions, with real processes -------------------------------------------
URL = "http://127.0.0.1:{port}/v1/streams/events/records"


def _project(tmp_path: Path) -> Path:
    root = stream_project(tmp_path / "p", "http", None, max_seconds=30)  # no commit comes before the kill
    config = root / "lakestack.yaml"
    config.write_text(config.read_text().replace("kind: http", "kind: http\n    http: {workers: 0}"))
    return root


def _batch(b: int) -> tuple[str, list[dict[str, Any]]]:
    return f"batch-{b:04d}", [event(b * 10 + i) for i in range(10)]


def _post(port: int, batches: range) -> None:
    with httpx.Client(timeout=30) as client:
        for b in batches:
            batch_id, records = _batch(b)
            answer = client.post(URL.format(port=port), json=records, headers={"Lakestack-Batch-Id": batch_id})
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 10


def _committed_200(root: Path, port: int) -> None:
    """20 batches of 10, committed by a clean stop: the checkpoint says wal 19."""
    proc = start_serve(root, port)
    assert wal_up(port, proc)
    _post(port, range(20))
    stop_serve(proc)
    assert len(bronze_ids(root)) == 200
    assert _wal_checkpoint(root) == 19


def wal_up(port: int, proc: Any) -> bool:
    return wait_healthy(port, proc)


def _wal_checkpoint(root: Path) -> int:
    table = Lake.open(root).warehouse.load("bronze.events")
    for commit in history(table, newest_first=True):
        positions = ((commit.checkpoint or {}).get("stream") or {}).get("positions", {})
        if "wal" in positions:
            return int(positions["wal"])
    return -1


def _five_more_acknowledged_then_kill(root: Path, port: int) -> str:
    proc = start_serve(root, port)
    assert wal_up(port, proc)
    _post(port, range(20, 25))  # all answered 200 (durable), none committed (max_seconds 30)
    status = httpx.get(f"http://127.0.0.1:{port}/v1/streams/events", timeout=10).json()
    kill_serve(proc)
    return json.dumps(status)


def _restart_and_stop(root: Path, port: int) -> None:
    proc = start_serve(root, port)
    assert wal_up(port, proc)
    stop_serve(proc)


@pytest.mark.slow
def test_a_kill_inside_the_segment_roll_loses_no_acknowledged_record(tmp_path: Path) -> None:
    root, port = _project(tmp_path), free_port()
    _committed_200(root, port)
    log = tmp_path / "hits.log"
    proc = start_serve(root, port, "wal.roll.after_create=kill", log)  # the next append rolls: killed inside
    assert wal_up(port, proc)
    with pytest.raises(httpx.TransportError):
        httpx.post(URL.format(port=port), json=[event(999)], timeout=30)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert hits(str(log)) == ["wal.roll.after_create"]
    folder = root / ".lakestack" / "wal" / "events"
    proc = start_serve(root, port)  # trims the old segment; killed before its first append
    assert wal_up(port, proc)
    kill_serve(proc)
    assert _segments(folder) == [f"{20:020d}.wal"]
    assert (folder / f"{20:020d}.wal").stat().st_size == 0  # the only segment left is empty
    _five_more_acknowledged_then_kill(root, port)
    _restart_and_stop(root, port)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {f"e{i}" for i in range(250)}
    assert _wal_checkpoint(root) == 24


@pytest.mark.slow
def test_a_lost_log_folder_is_reported_and_loses_no_record_acknowledged_after_it(tmp_path: Path) -> None:
    root, port = _project(tmp_path), free_port()
    _committed_200(root, port)
    shutil.rmtree(root / ".lakestack" / "wal")  # a new container or disk; the catalog survives
    proc = start_serve(root, port)
    assert wal_up(port, proc)
    _post(port, range(20, 25))
    status = httpx.get(f"http://127.0.0.1:{port}/v1/streams/events", timeout=10).json()
    err = kill_serve(proc)
    assert status["wal_lost_suspected"] is True
    assert status["wal_incidents"] == 1
    assert status["wal_committed_at_start"] == 19
    assert status["wal_position"] == 25
    assert "missing" in status["wal_problem"]
    assert re.search(r"missing or empty.*may have been lost before this start", err, re.S), err[-2000:]
    _restart_and_stop(root, port)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 250
    assert _wal_checkpoint(root) == 24


# -- one collector per source -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill", "term"])
def test_one_process_collects_a_source_and_the_next_takes_over(tmp_path: Path, stop: str) -> None:
    root = _project(tmp_path)
    holder_port, ports = free_port(), [free_port(), free_port()]
    holder = start_serve(root, holder_port)
    assert wal_up(holder_port, holder)
    _post(holder_port, range(0, 3))
    for port in ports:  # a second and a third process refuse the source at once
        rival = start_serve(root, port)
        _, err = rival.communicate(timeout=60)
        assert rival.returncode == 3, err.decode()
        text = " ".join(err.decode().split())
        assert f"source events is collected by pid {holder.pid} since" in text
        assert "Traceback" not in text
    _post(holder_port, range(3, 6))  # the holder kept serving
    if stop == "kill":
        kill_serve(holder)  # acknowledged, not committed (max_seconds 30): the log holds them
    else:
        stop_serve(holder)
    taker = start_serve(root, ports[0])
    assert wal_up(ports[0], taker)
    _post(ports[0], range(6, 9))
    _post(ports[0], range(0, 9))  # every batch retried: answered from what was recorded, nothing twice
    stop_serve(taker)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 90
    assert quarantine_rows(root) == []


@pytest.mark.slow
def test_a_stopped_holder_keeps_its_source_until_it_dies(tmp_path: Path) -> None:
    """SIGSTOP has no session to time out: the lock stays with the frozen process (no second writer
    of its log), which resumes on SIGCONT with nothing lost; once it is killed, the next takes over."""
    root = _project(tmp_path)
    holder_port, port = free_port(), free_port()
    holder = start_serve(root, holder_port)
    assert wal_up(holder_port, holder)
    _post(holder_port, range(0, 3))
    holder.send_signal(signal.SIGSTOP)
    try:
        rival = start_serve(root, port)
        _, err = rival.communicate(timeout=60)
        assert rival.returncode == 3
        assert f"collected by pid {holder.pid}" in " ".join(err.decode().split())
    finally:
        holder.send_signal(signal.SIGCONT)
    _post(holder_port, range(3, 6))
    kill_serve(holder)
    taker = start_serve(root, port)
    assert wal_up(port, taker)
    _post(port, range(0, 6))
    stop_serve(taker)
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 60


def test_positions_start_past_quarantine_when_it_is_ahead(tmp_path: Path) -> None:
    """A crash between the quarantine and the Bronze commit leaves quarantine's position ahead: a lost
    log must not hand out positions quarantine already covers (their rejects would be dropped)."""
    wal = Wal(tmp_path / "log", committed=5, at_least=9)
    try:
        assert wal.next_position == 10
    finally:
        wal.close()


def test_a_log_folder_that_cannot_be_made_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="cannot open the log of source events"):
        SourceLock(tmp_path / "file" / "log", "events")

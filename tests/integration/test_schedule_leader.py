"""One serve process per project fires the schedules (orchestrate/leader.py): two `lakestack serve`
on one project fire each cron time once, and the standby takes over when the leader is killed;
the lock itself on a flock and on a PostgreSQL session that breaks under its holder."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lake_support import create_database, drop_database
from lakestack.orchestrate.leader import Leadership
from lakestack.pipeline.lock import FileLock, PostgresLock
from serve_support import free_port, start_serve, wait_healthy
from tests_support import service_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _firings(root: Path) -> list[dict]:
    from lakestack.pipeline.lake import Lake
    from lakestack.pipeline.records import read_runs

    with Lake.open(root) as lake:
        return [r for r in read_runs(lake.warehouse) if r["job"] == "schedule.ingest"]


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=90)


def test_two_serve_processes_fire_each_time_once_and_the_standby_takes_over(project: Path) -> None:
    with (project / "lakestack.yaml").open("a") as f:
        f.write('schedules:\n  ingest: "* * * * * */3"\n')  # every 3 s (croniter's sixth field: seconds)
    first = start_serve(project, port := free_port())
    second: subprocess.Popen[bytes] | None = None
    try:
        assert wait_healthy(port, first), first.stderr.read().decode() if first.stderr else ""
        second = start_serve(project, port2 := free_port())
        assert wait_healthy(port2, second), second.stderr.read().decode() if second.stderr else ""
        both = datetime.now(UTC)
        deadline = time.monotonic() + 60
        while sum(r["started_at"] > both for r in _firings(project)) < 2:  # two fire times with both serving
            assert time.monotonic() < deadline, "the leader fired fewer than two times in 60 s"
            time.sleep(0.5)
        killed = datetime.now(UTC)
        _stop(first, signal.SIGKILL)  # the leader dies without a word: its flock goes with it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until a run the standby fired has completed
            if any(r["started_at"] > killed and r["status"] == "COMPLETE" for r in _firings(project)):
                break
            time.sleep(1)
    finally:
        _stop(first, signal.SIGKILL)
        if second is not None:
            _stop(second)
    rows = _firings(project)
    dues = Counter(json.loads(r["progress"])["due"] for r in rows)
    assert rows and max(dues.values()) == 1, f"a fire time was fired twice: {dues.most_common(3)}"
    before = [r for r in rows if r["started_at"] <= killed]
    after = [r for r in rows if r["started_at"] > killed]
    assert len(before) >= 2, [(r["status"], r["error"]) for r in rows]  # the leader fired while both served
    # the standby fired after the leader's death (its last run may be stopped with it: ABORT)
    assert any(r["status"] == "COMPLETE" for r in after), [(r["status"], r["error"]) for r in after]
    assert {r["status"] for r in after} <= {"COMPLETE", "SKIPPED", "ABORT"}, [(r["status"], r["error"]) for r in after]


def test_a_released_flock_passes_the_lead(tmp_path: Path) -> None:
    path = tmp_path / ".lakestack" / "scheduler.lock"
    one = Leadership(FileLock(path, "p", what="the schedules of project p"))
    two = Leadership(FileLock(path, "p", what="the schedules of project p"))
    assert (one.held(), two.held(), one.held()) == (True, False, True)
    one.release()
    assert (two.held(), one.held()) == (True, False)
    assert (one.takeovers, two.takeovers) == (1, 1)
    two.release()


@pytest.fixture
def catalog_database() -> Iterator[str]:
    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    yield url
    drop_database(url)


def test_a_leader_whose_postgres_session_breaks_steps_down(catalog_database: str) -> None:
    import psycopg

    def lock() -> PostgresLock:
        return PostgresLock(catalog_database, "p", key="p#schedules", what="the schedules of project p")

    one, two = Leadership(lock()), Leadership(lock())
    try:
        assert (one.held(), two.held()) == (True, False)
        with psycopg.connect(catalog_database, autocommit=True) as admin:  # the network cuts the leader's session
            backend = one.lock._conn.info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
            deadline = time.monotonic() + 30  # the signal is asynchronous: wait until the backend is gone
            while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone()[0]:
                assert time.monotonic() < deadline, f"backend {backend} still alive 30 s after pg_terminate_backend"
                time.sleep(0.05)
        deadline = time.monotonic() + 30  # the server drops the lock as the backend ends
        while not two.held():
            assert time.monotonic() < deadline, "the standby never got the lock of a terminated session"
            time.sleep(0.05)
        assert one.held() is False  # the old leader finds its session gone and stands by: never two leaders
        two.release()
        assert one.held() is True
    finally:
        one.release()
        two.release()

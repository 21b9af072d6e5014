"""The `lakestack serve` scheduler: schedules run on a real uvicorn server's loop, never overlap,
count their errors, and stop promptly; a real `lakestack serve` evaluates SLAs on its schedule."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import signal
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakestack import Lake
from lakestack.serve.scheduler import Schedule, Scheduler
from serve_support import free_port, start_serve, wait_healthy

pytestmark = pytest.mark.integration


@contextmanager
def serving(project: Path, schedules: Sequence[Schedule]) -> Iterator[Any]:
    """The app of `project` with `schedules` on a real uvicorn server on 127.0.0.1; yields the app."""
    import httpx
    import uvicorn

    from lakestack.serve.api import create_app

    app = create_app(Lake.open(project), schedules=schedules, insecure_dev=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    try:
        yield app
    finally:
        server.should_exit = True
        t0 = time.monotonic()
        thread.join(timeout=30)
        app.state.stopped_in = time.monotonic() - t0


def test_schedules_run_do_not_overlap_count_errors_and_stop(project: Path) -> None:
    ticks: list[float] = []
    active, most = [0], [0]
    lock = threading.Lock()

    def slow() -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.3)  # longer than its interval: the next run waits for this one
        with lock:
            active[0] -= 1

    def broken() -> None:
        raise RuntimeError("disk on fire\nsecond line")

    schedules = [
        Schedule("tick", 0.1, lambda: ticks.append(time.monotonic())),
        Schedule("slow", 0.05, slow),
        Schedule("broken", 0.1, broken, first_after_s=0.2),
    ]
    with serving(project, schedules) as app:
        time.sleep(1.5)
        stats = {k: dataclasses.replace(v) for k, v in app.state.scheduler.stats.items()}  # as of now
        elapsed = time.monotonic() - ticks[0]  # since the schedules started (at the first tick)
    assert app.state.stopped_in < 5
    assert len(ticks) >= 6
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert min(gaps) > 0.02 and 0.08 < statistics.median(gaps) < 0.3  # every 0.1 s (a loaded machine is late)
    assert most[0] == 1 and 2 <= stats["slow"].runs <= elapsed / 0.3 + 1  # 0.3 s runs, one at a time
    assert stats["broken"].errors == stats["broken"].runs >= 5
    assert stats["broken"].last_error == "RuntimeError: disk on fire"
    assert stats["tick"].errors == 0
    assert not any(s.running or s.abandoned for s in app.state.scheduler.stats.values())  # all ended at shutdown
    count = len(ticks)
    time.sleep(0.4)
    assert len(ticks) == count  # nothing runs after shutdown


def test_stop_does_not_wait_for_a_hung_run_longer_than_its_grace() -> None:
    release = threading.Event()

    async def main() -> tuple[float, Scheduler]:
        scheduler = Scheduler([Schedule("hung", 1.0, lambda: release.wait(60))], grace_s=0.5)
        scheduler.start()
        await asyncio.sleep(0.2)
        assert scheduler.stats["hung"].running
        t0 = time.monotonic()
        await scheduler.stop()
        return time.monotonic() - t0, scheduler

    took, scheduler = asyncio.run(main())
    release.set()
    assert 0.4 < took < 3
    hung = scheduler.stats["hung"]
    assert hung.runs == 0 and hung.abandoned == 1 and not hung.running  # it never finished while the scheduler ran
    with pytest.raises(ValueError, match="unique"):
        Scheduler([Schedule("a", 1, print), Schedule("a", 2, print)])
    with pytest.raises(ValueError, match="more than 0"):
        Schedule("a", 0, print)


@pytest.mark.slow
def test_lakestack_serve_evaluates_slas_on_schedule_and_stops_on_sigterm(project: Path) -> None:
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(
        "order_id,qty,price,currency,order_ts,email\nORD-0001,1,1.00,USD,2026-01-01T08:00:00+00:00,a@b.co\n"
    )
    Lake.open(project).ingest()
    (project / "slas.yaml").write_text(
        "evaluate_every: 1s\nslas:\n  fresh:\n    kind: freshness\n    dataset: bronze.orders\n    max_age: 1h\n"
        "  stale:\n    kind: freshness\n    dataset: bronze.orders\n    column: order_ts\n    max_age: 1h\n"
    )
    port = free_port()
    proc = start_serve(project, port)
    try:
        assert wait_healthy(port, proc)
        deadline = time.monotonic() + 60
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len({r["evaluated_at"] for r in rows}) < 3:
            time.sleep(0.5)
            rows = Lake.open(project).sla_history(None, datetime.now().astimezone() - timedelta(hours=1))
        assert len({r["evaluated_at"] for r in rows}) >= 3, rows
        assert {(r["name"], r["status"]) for r in rows} == {("fresh", "ok"), ("stale", "breach")}
        stamps = sorted({r["evaluated_at"] for r in rows})
        assert all(b - a >= timedelta(seconds=0.9) for a, b in itertools.pairwise(stamps))
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - t0 < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""Periodic jobs of `lakestack serve`: SLA evaluation, and what alerts and maintenance add.

A :class:`Schedule` names a plain (blocking) function and how often it runs. The :class:`Scheduler`
runs each schedule as one asyncio task on the server's loop, started and stopped in the app's
lifespan (`serve/api.py`):

- the function runs in a thread of its own, so the event loop (the collector's endpoints) never
  waits for it;
- a schedule never overlaps itself: the next run starts `every_s` after the previous one started,
  or at once when a run took longer (missed ticks are skipped, not queued);
- an error is logged and counted (`Scheduler.stats`), and the schedule goes on;
- `stop()` ends waiting tasks at once and waits at most `grace_s` for a run in progress (its thread
  is a daemon: a run that hangs does not hold the process);
- with a `leader` (orchestrate/leader.py), a due run starts only in the serve process that holds the
  project's scheduler lock; the others count it as `standby` and take over when the holder dies.

Each family of periodic jobs adds its schedules in :func:`default_schedules`, one line each, the
way run listeners are added in `pipeline/listeners.py`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

SlaHook = Callable[[list[Any]], None]  # told every scheduled SLA evaluation's results (monitor.sla.SlaResult)


@dataclass(frozen=True, slots=True)
class Schedule:
    """`fn` every `every_s` seconds, the first run `first_after_s` after the scheduler starts."""

    name: str
    every_s: float
    fn: Callable[[], object]
    first_after_s: float = 0.0

    def __post_init__(self) -> None:
        if self.every_s <= 0:
            raise ValueError(f"schedule {self.name}: every_s must be more than 0 (got {self.every_s})")


@dataclass(slots=True)
class ScheduleStats:
    """How one schedule has fared since the scheduler started."""

    runs: int = 0  # runs finished, with or without an error
    errors: int = 0
    abandoned: int = 0  # runs still going at shutdown, not waited for
    standby: int = 0  # due runs left to the serve process that holds the scheduler lock
    running: bool = False
    last_started: datetime | None = None
    last_duration_s: float | None = None
    last_error: str | None = None


class Scheduler:
    """Runs schedules on the running event loop between `start()` and `stop()`."""

    def __init__(
        self, schedules: Sequence[Schedule], *, grace_s: float = 10.0, leader: Callable[[], bool] | None = None
    ) -> None:
        names = [s.name for s in schedules]
        if len(set(names)) != len(names):
            raise ValueError(f"schedule names must be unique: {names}")
        self.schedules = tuple(schedules)
        self.grace_s = grace_s
        self.leader = leader  # None: this process runs every schedule
        self.stats = {s.name: ScheduleStats() for s in schedules}
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one task per schedule on the running loop (call from async code, e.g. a lifespan)."""
        self._stopping = asyncio.Event()
        self._tasks = [asyncio.create_task(self._loop(s), name=f"schedule-{s.name}") for s in self.schedules]
        if self.schedules:
            log.info("scheduler: %s", ", ".join(f"{s.name} every {s.every_s:g} s" for s in self.schedules))

    async def stop(self) -> None:
        """Stop every schedule: at once when waiting, after at most `grace_s` when running."""
        if self._stopping is None:
            return
        self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self.grace_s)
        for task in pending:  # a run still going: its daemon thread is left to finish or die with the process
            log.warning("scheduler: %s still running at shutdown; not waiting for it", task.get_name())
            task.cancel()
        self._tasks = []

    async def _loop(self, schedule: Schedule) -> None:
        assert self._stopping is not None
        loop = asyncio.get_running_loop()
        due = loop.time() + schedule.first_after_s
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, due - loop.time()))
                return  # stopping
            except TimeoutError:
                pass
            started = loop.time()
            await self._run(schedule)
            due = max(started + schedule.every_s, loop.time())

    async def _run(self, schedule: Schedule) -> None:
        stats = self.stats[schedule.name]
        if self.leader is not None and not await asyncio.to_thread(self.leader):  # a lock query: off the loop
            stats.standby += 1
            return
        stats.running, stats.last_started = True, datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            await _in_thread(schedule.fn, f"schedule-{schedule.name}")
        except asyncio.CancelledError:  # shut down while it ran: its thread is left behind
            stats.running = False
            stats.abandoned += 1
            raise
        except Exception as exc:  # a scheduled job's failure is logged and counted; the next run goes on
            stats.errors += 1
            text = str(exc).strip().splitlines()
            stats.last_error = f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
            log.warning("scheduled %s failed: %s", schedule.name, stats.last_error)
            log.debug("scheduled %s failure", schedule.name, exc_info=True)
        stats.runs += 1
        stats.running = False
        stats.last_duration_s = time.perf_counter() - t0


async def _in_thread(fn: Callable[[], object], name: str) -> object:
    """`fn()` in a daemon thread of its own, awaited (asyncio.to_thread's pool would hold the
    process at exit until a hung run returned)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[object] = loop.create_future()

    def settle(result: object, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        result: object = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop closed while this ran (shutdown)
            log.debug("%s finished after the event loop closed", name)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


# -- what `lakestack serve` schedules ------------------------------------------------------------


def default_schedules(lake: Any) -> list[Schedule]:
    """Every periodic job `lakestack serve` runs for `lake`; each family (SLAs, alerts, maintenance)
    adds its schedules here. SLA results also set the `sla_breach` gauges (`/metrics`, CloudWatch)."""
    from lakestack.pipeline.metrics import lake_metrics

    slas = sla_schedules(lake, [*sla_hooks(lake), lake_metrics(lake).slas])
    return [*slas, *alert_schedules(lake), *maintenance_schedules(lake)]


def sla_hooks(lake: Any) -> list[SlaHook]:
    """Who hears each scheduled SLA evaluation's results: alerts (with an `alerts:` block)."""
    from lakestack.pipeline.alerting import sla_alert_hooks

    return [*sla_alert_hooks(lake)]


def alert_schedules(lake: Any) -> list[Schedule]:
    """Re-sending open incidents that are due, even when nothing else happens (with an `alerts:` block)."""
    from lakestack.pipeline.alerting import alert_sweep

    sweep = alert_sweep(lake)
    return [Schedule("alerts", sweep[0], sweep[1])] if sweep is not None else []


def sla_schedules(lake: Any, hooks: Sequence[SlaHook] = ()) -> list[Schedule]:
    """SLA evaluation every `evaluate_every` of slas.yaml (none without one); the first at start."""
    every = lake.sla_interval()
    if every is None or "sla" in lake.project.config.schedules:  # a cron in `schedules:` instead
        return []

    def evaluate() -> None:
        results = lake.sla()
        breached = [r.name for r in results if r.status == "breach"]
        if breached:
            log.warning("SLA breached: %s", ", ".join(breached))
        for hook in hooks:
            try:
                hook(results)
            except Exception as exc:  # one hook's failure neither stops the others nor the schedule
                log.warning("SLA hook %s failed: %s", getattr(hook, "__name__", hook), exc)

    return [Schedule("sla", every, evaluate)]


def maintenance_schedules(lake: Any) -> list[Schedule]:
    """`lakestack maintain` of every table each `maintenance.every` (`off`, the default: none); the
    first one interval after start, not at start (a restart loop must not become a maintenance loop)."""
    from lakestack.config import duration_seconds

    every = duration_seconds(lake.env.maintenance.every)
    if every <= 0 or "maintain" in lake.project.config.schedules:  # a cron in `schedules:` instead
        return []
    return [Schedule("maintenance", every, lake.maintain, first_after_s=every)]

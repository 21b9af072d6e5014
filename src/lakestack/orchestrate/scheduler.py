"""The cron jobs of a project's `schedules:` block, run by `lakestack serve` on one machine.

    schedules:
      run: "0 * * * *"                                   # lakestack run, at the top of each hour
      ingest orders: {cron: "*/5 * * * *", missed: run_once}
      maintain: {cron: "0 3 * * 0", timezone: Europe/Berlin}
      sla: "*/5 * * * *"

- **A job is the CLI in a child process** (`lakestack --run-id ID run --json`): a job cannot stop
  the server or leak its memory into it, and it takes the project lock like any other run. The
  child records its own run (`_lakestack.runs`, lineage, metrics) under the run id given to it.
- **One run at a time per job.** A fire time that comes while the job still runs is not started:
  it is recorded as SKIPPED, and with `missed: run_once` one catch-up run starts when the running
  one ends (however many fire times it missed).
- **Missed while down.** At start, fire times since the job's last recorded firing are missed:
  `skip` records them as one SKIPPED firing, `run_once` runs the job once at once.
- **Every firing is recorded** in `_lakestack.runs` as a top-level row, job `schedule.<job>` of type
  `schedule`: COMPLETE, FAIL (the exit code and the last error line), BLOCKED (exit 4 of `run`),
  SKIPPED or ABORT (still running when serve stopped); the child's run id is in its `progress`.

- **One leader.** With a `leader` (orchestrate/leader.py), only the serve process holding the
  project's scheduler lock fires; a standby lets fire times pass unrecorded, and when it takes
  over it first handles what was missed since the last recorded firing (`last_fired` read again),
  by each job's `missed` policy, as a restart does.

The clock is a function (tests drive it with the real clock and a second-level cron: croniter
reads a sixth field as seconds).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEDULE_JOB_TYPE = "schedule"
SKIPPED = "SKIPPED"
MAX_COUNTED_MISSES = 10_000  # fire times counted when reporting how many were missed


@dataclass(frozen=True, slots=True)
class CronJob:
    """One entry of `schedules:`: the job (`run`, `ingest`, `ingest SOURCE`, `maintain`, `sla`)."""

    name: str
    cron: str
    missed: str = "skip"  # skip | run_once
    timezone: str = "UTC"

    @property
    def args(self) -> tuple[str, ...]:
        """The lakestack command line of the job."""
        return tuple(self.name.split())

    @property
    def record_name(self) -> str:
        return "schedule." + ".".join(self.args)

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (UTC)."""
        from zoneinfo import ZoneInfo

        from croniter import croniter

        local = moment.astimezone(ZoneInfo(self.timezone))
        found: datetime = croniter(self.cron, local).get_next(datetime)
        return found.astimezone(UTC)

    def fire_times(self, after: datetime, until: datetime, limit: int = MAX_COUNTED_MISSES) -> int:
        """How many fire times fall in (after, until], counted up to `limit`."""
        count, moment = 0, after
        while count < limit:
            moment = self.next_after(moment)
            if moment > until:
                break
            count += 1
        return count


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of a job ended."""

    exit_code: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Firing:
    """One fire time of a job: run (with its outcome) or skipped."""

    job: CronJob
    run_id: str | None
    due: datetime
    started_at: datetime
    ended_at: datetime
    status: str  # COMPLETE | FAIL | BLOCKED | SKIPPED | ABORT
    exit_code: int | None = None
    error: str | None = None
    missed: int = 0  # fire times this firing stands for (a skip while down, a catch-up)


@dataclass(slots=True)
class JobState:
    next_fire: datetime
    running: bool = False
    catch_up: int = 0  # run_once: fire times that passed while it ran (one run follows)
    runs: int = 0
    skipped: int = 0
    last: Firing | None = None
    process: subprocess.Popen[bytes] | None = None
    terminated: bool = False  # stop() ended the running process
    thread: threading.Thread | None = field(default=None, repr=False)


Runner = Callable[[CronJob, str, "JobState"], Outcome]
Recorder = Callable[[Firing], None]


def _now() -> datetime:
    return datetime.now(UTC)


class CronScheduler:
    """Fires `jobs` on their crons from a thread of its own, between `start()` and `stop()`."""

    def __init__(
        self,
        jobs: Sequence[CronJob],
        runner: Runner,
        record: Recorder,
        *,
        last_fired: Mapping[str, datetime] | None = None,
        clock: Callable[[], datetime] = _now,
        new_run_id: Callable[[], str] | None = None,
        leader: Callable[[], bool] | None = None,
        reload_last_fired: Callable[[], Mapping[str, datetime]] | None = None,
    ) -> None:
        from lakestack.pipeline.runs import new_run_id as _new_run_id

        self.jobs = tuple(jobs)
        self._runner, self._record, self._clock = runner, record, clock
        self._new_run_id = new_run_id or _new_run_id
        self._last_fired = dict(last_fired or {})
        self._leader = leader  # None: this process fires every job
        self._reload_last_fired = reload_last_fired
        self._leading = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state: dict[str, JobState] = {}

    def start(self) -> None:
        now = self._clock()
        for job in self.jobs:
            self.state[job.name] = JobState(next_fire=job.next_after(now))
        self._leading = self._leader is None or self._leader()
        if self._leading:
            for job in self.jobs:
                self._missed_while_down(job, now)
        self._thread = threading.Thread(target=self._loop, name="lakestack-cron", daemon=True)
        self._thread.start()
        log.info("cron: %s", ", ".join(f"{j.name} ({j.cron})" for j in self.jobs))

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop firing; ask running jobs to stop (SIGTERM) and wait up to `grace_s` for them."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            running = [s for s in self.state.values() if s.running]
        for state in running:
            if state.process is not None and state.process.poll() is None:
                state.terminated = True
                state.process.terminate()
        for state in running:
            if state.thread is not None:
                state.thread.join(timeout=grace_s)

    def _missed_while_down(self, job: CronJob, now: datetime, why: str = "missed while serve was down") -> None:
        last = self._last_fired.get(job.name)
        if last is None:
            return  # a new schedule has missed nothing
        missed = job.fire_times(last, now)
        if not missed:
            return
        if job.missed == "run_once":
            self._start_run(job, due=job.next_after(last), missed=missed)
        else:
            due = job.next_after(last)
            self._write(Firing(job, None, due, now, now, SKIPPED, error=why, missed=missed))

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            wake = now + timedelta(seconds=1)
            due_jobs = [job for job in self.jobs if now >= self.state[job.name].next_fire]
            if due_jobs and not self._lead(now):
                for job in due_jobs:  # the leader fires them (and records them)
                    self.state[job.name].next_fire = job.next_after(now)
                due_jobs = []
            for job in due_jobs:
                state = self.state[job.name]
                due, state.next_fire = state.next_fire, job.next_after(now)
                self._fire(job, due, now)
            for job in self.jobs:
                wake = min(wake, self.state[job.name].next_fire)
            self._stop.wait(max(0.0, (wake - self._clock()).total_seconds()))

    def _lead(self, now: datetime) -> bool:
        """Whether this process fires now; a standby that has just taken over first handles what
        the old leader left unfired since its last recorded firing."""
        if self._leader is None:
            return True
        was, self._leading = self._leading, self._leader()
        if self._leading and not was:
            if self._reload_last_fired is not None:
                try:
                    self._last_fired = dict(self._reload_last_fired())
                except Exception as exc:  # no records to go by: nothing is counted as missed
                    log.warning("cron: could not read the last firings on taking over: %s", exc)
                    self._last_fired = {}
            for job in self.jobs:
                state = self.state[job.name]
                if not state.running:  # up to the fire time due now, which the loop fires itself
                    until = min(now, state.next_fire - timedelta(microseconds=1))
                    self._missed_while_down(job, until, "missed while no serve process led the schedules")
        return self._leading

    def _fire(self, job: CronJob, due: datetime, now: datetime) -> None:
        with self._lock:
            state = self.state[job.name]
            if state.running:
                state.skipped += 1
                state.catch_up += 1 if job.missed == "run_once" else 0
                busy = True
            else:
                busy = False
        if busy:
            then = "; one run follows when it ends" if job.missed == "run_once" else ""
            self._write(Firing(job, None, due, now, now, SKIPPED, error=f"still running{then}"))
            return
        self._start_run(job, due)

    def _start_run(self, job: CronJob, due: datetime, missed: int = 0) -> None:
        state = self.state[job.name]
        with self._lock:
            state.running, state.terminated = True, False
        run_id = self._new_run_id()
        thread = threading.Thread(
            target=self._run, args=(job, due, run_id, missed), name=f"lakestack-cron-{job.name}", daemon=True
        )
        state.thread = thread
        thread.start()

    def _run(self, job: CronJob, due: datetime, run_id: str, missed: int) -> None:
        state = self.state[job.name]
        started = self._clock()
        try:
            outcome = self._runner(job, run_id, state)
        except Exception as exc:  # a job that cannot start is recorded, and the schedule goes on
            outcome = Outcome(-1, f"{type(exc).__name__}: {exc}"[:500])
        ended = self._clock()
        status = _status(job, outcome, terminated=state.terminated)
        self._write(Firing(job, run_id, due, started, ended, status, outcome.exit_code, outcome.error, missed))
        with self._lock:
            state.running, state.process, state.runs = False, None, state.runs + 1
            again, state.catch_up = (0 if self._stop.is_set() else state.catch_up), 0
        if again:  # run_once: the fire times it missed while running, as one run
            self._start_run(job, due=self._clock(), missed=again)

    def _write(self, firing: Firing) -> None:
        self.state[firing.job.name].last = firing
        try:
            self._record(firing)
        except Exception as exc:  # a record that cannot be written never stops the schedule
            log.warning("cron: could not record %s: %s", firing.job.record_name, exc)


def _status(job: CronJob, outcome: Outcome, *, terminated: bool) -> str:
    if terminated:  # stopped by our SIGTERM at shutdown
        return "ABORT"
    if outcome.exit_code == 0:
        return "COMPLETE"
    if outcome.exit_code == 4 and job.args[0] == "run":
        return "BLOCKED"
    return "FAIL"


# -- running jobs as lakestack commands, recording firings in the run store ------------------------


def cli_runner(project_root: Path, environment: str) -> Runner:
    """Runs a job as `lakestack -p ROOT -e ENV --run-id ID <job> --json` in a child process."""

    def run(job: CronJob, run_id: str, state: JobState) -> Outcome:
        argv = [sys.executable, "-m", "lakestack", "-p", str(project_root), "-e", environment, "--run-id", run_id]
        process = subprocess.Popen(
            [*argv, *job.args, "--json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the scheduler stops its jobs (stop()); a Ctrl-C to serve does not reach them
        )
        state.process = process
        _, err = process.communicate()
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        return Outcome(process.returncode, lines[-1][:500] if process.returncode and lines else None)

    return run


def firing_row(firing: Firing) -> dict[str, Any]:
    """A firing as a `_lakestack.runs` row (type `schedule`; the child's run id in `progress`)."""
    from lakestack.pipeline.events import JobRun, uuid7
    from lakestack.pipeline.records import job_row

    job = JobRun(uuid7(), firing.job.record_name, "run", started_at=firing.started_at, ended_at=firing.ended_at)
    job.error = firing.error
    row = job_row(job)
    details: dict[str, object] = {"run_id": firing.run_id, "cron": firing.job.cron, "due": firing.due.isoformat()}
    if firing.exit_code is not None:
        details["exit_code"] = firing.exit_code
    if firing.missed:
        details["missed"] = firing.missed
    row.update(job_type=SCHEDULE_JOB_TYPE, status=firing.status, progress=json.dumps(details, sort_keys=True))
    return row


def run_store_recorder(warehouse: Callable[[], Any]) -> Recorder:
    """Appends each firing to `_lakestack.runs` (one small commit per firing)."""

    def record(firing: Firing) -> None:
        import pyarrow as pa

        from lakestack.pipeline.records import RUNS, runs_schema
        from lakestack.storage.warehouse import append

        schema = runs_schema()
        row = firing_row(firing)
        table = warehouse().system_table(RUNS, schema)
        append(
            table, pa.Table.from_pylist([row], schema=schema), run_id=row["run_id"], batch_id=f"cron:{row['run_id']}"
        )

    return record


def firings(warehouse: Any) -> dict[str, dict[str, Any]]:
    """The newest recorded firing of each job (`schedule.<job>` → its row)."""
    from lakestack.pipeline.records import read_runs

    newest: dict[str, dict[str, Any]] = {}
    for row in read_runs(warehouse):  # newest first
        if row["job_type"] == SCHEDULE_JOB_TYPE and row["job"] not in newest:
            newest[row["job"]] = row
    return newest


def project_jobs(lake: Any) -> list[CronJob]:
    return [CronJob(name, s.cron, s.missed, s.timezone) for name, s in lake.project.config.schedules.items()]


def cron_scheduler(lake: Any, leader: Callable[[], bool] | None = None) -> CronScheduler | None:
    """The scheduler `lakestack serve` runs for `lake` (None without a `schedules:` block); with a
    `leader`, it fires only while that says this process leads (orchestrate/leader.py)."""
    jobs = project_jobs(lake)
    if not jobs:
        return None

    def last_fired() -> dict[str, datetime]:
        newest = firings(lake.warehouse)
        return {j.name: newest[j.record_name]["started_at"] for j in jobs if j.record_name in newest}

    runner = cli_runner(Path(lake.project.root), lake.environment)
    return CronScheduler(
        jobs,
        runner,
        run_store_recorder(lambda: lake.warehouse),
        last_fired=last_fired(),
        leader=leader,
        reload_last_fired=last_fired,
    )


def schedule_status(lake: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each job of `schedules:`: its cron, policy, next fire time and last recorded firing."""
    now = now or _now()
    newest = firings(lake.warehouse)
    out = []
    for job in project_jobs(lake):
        row = newest.get(job.record_name)
        details = json.loads(row["progress"]) if row and row["progress"] else {}
        out.append(
            {
                "job": job.name,
                "cron": job.cron,
                "timezone": job.timezone,
                "missed": job.missed,
                "next": job.next_after(now),
                "last_started": row["started_at"] if row else None,
                "last_status": row["status"] if row else None,
                "last_run_id": details.get("run_id"),
                "last_error": row["error"] if row else None,
            }
        )
    return out

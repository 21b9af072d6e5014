"""The cron scheduler driven by the real clock on second-level crons: one run at a time per job,
skips recorded, `run_once` catch-ups, missed fire times while down; and `schedules:` validation."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lakestack.config import load_project_config
from lakestack.errors import ConfigError
from lakestack.orchestrate.scheduler import CronJob, CronScheduler, Firing, JobState, Outcome


class Jobs:
    """A runner that sleeps `seconds` per run and counts how many run at once, per job."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.active: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.run_ids: list[str] = []

    def __call__(self, job: CronJob, run_id: str, state: JobState) -> Outcome:
        with self.lock:
            self.active[job.name] = self.active.get(job.name, 0) + 1
            self.most[job.name] = max(self.most.get(job.name, 0), self.active[job.name])
            self.run_ids.append(run_id)
        time.sleep(self.seconds)
        with self.lock:
            self.active[job.name] -= 1
        return Outcome(0 if job.name != "sla" else 4, None if job.name != "sla" else "breached: x")


def _run_for(scheduler: CronScheduler, seconds: float) -> None:
    scheduler.start()
    time.sleep(seconds)
    scheduler.stop(grace_s=10)


def test_overlapping_fire_times_are_skipped_and_recorded() -> None:
    fired: list[Firing] = []
    jobs = Jobs(2.2)  # longer than two fire times of an every-second cron
    ids = iter(f"r{n}" for n in range(1000))
    scheduler = CronScheduler([CronJob("run", "* * * * * *")], jobs, fired.append, new_run_id=lambda: next(ids))
    _run_for(scheduler, 6.5)
    runs = [f for f in fired if f.status == "COMPLETE"]
    skips = [f for f in fired if f.status == "SKIPPED"]
    assert jobs.most == {"run": 1}  # never two at once
    assert 2 <= len(runs) <= 3 and len(skips) >= 3
    assert all(f.error == "still running" for f in skips)
    assert [f.run_id for f in runs] == jobs.run_ids[: len(runs)]
    for a, b in itertools.pairwise(runs):
        assert b.started_at >= a.ended_at  # the next run started after the previous ended
    assert all(f.due.microsecond == 0 for f in runs)  # fired at whole seconds, as the cron says


def test_exit_codes_become_statuses() -> None:
    fired: list[Firing] = []
    jobs = Jobs(0.1)

    def runner(job: CronJob, run_id: str, state: JobState) -> Outcome:
        if job.name == "maintain":
            raise OSError("no such interpreter")
        if job.name == "run":
            return Outcome(4, "quality gate failed")
        return jobs(job, run_id, state)

    crons = [CronJob("run", "* * * * * *"), CronJob("sla", "* * * * * *"), CronJob("maintain", "* * * * * *")]
    _run_for(CronScheduler(crons, runner, fired.append), 1.6)
    status = {f.job.name: (f.status, f.exit_code, f.error) for f in fired}
    assert status["run"] == ("BLOCKED", 4, "quality gate failed")  # exit 4 of run: a gate blocked it
    assert status["sla"] == ("FAIL", 4, "breached: x")  # exit 4 of sla: a breach
    assert status["maintain"] == ("FAIL", -1, "OSError: no such interpreter")  # the schedule goes on


def test_catch_up_follows_a_skip_with_run_once() -> None:
    fired: list[Firing] = []
    jobs = Jobs(1.6)
    scheduler = CronScheduler([CronJob("maintain", "* * * * * *", missed="run_once")], jobs, fired.append)
    _run_for(scheduler, 5.5)
    assert jobs.most == {"maintain": 1}
    statuses = [f.status for f in fired]
    assert "SKIPPED" in statuses
    caught_up = [f for f in fired if f.status == "COMPLETE" and f.missed]
    assert caught_up, statuses  # a run standing for the fire times it missed
    first_skip = next(f for f in fired if f.status == "SKIPPED")
    assert "one run follows" in (first_skip.error or "")


def test_missed_while_down() -> None:
    now = datetime.now(UTC)
    last = {"run": now - timedelta(minutes=10), "ingest orders": now - timedelta(minutes=10)}
    jobs = Jobs(0.1)
    fired: list[Firing] = []
    scheduler = CronScheduler(
        [CronJob("run", "* * * * *"), CronJob("ingest orders", "*/5 * * * *", missed="run_once")],
        jobs,
        fired.append,
        last_fired=last,
    )
    _run_for(scheduler, 1.0)
    down = {f.job.name: f for f in fired if f.missed}
    assert down["run"].status == "SKIPPED" and down["run"].error == "missed while serve was down"
    assert 9 <= down["run"].missed <= 10
    assert down["ingest orders"].status == "COMPLETE" and down["ingest orders"].missed in (2, 3)
    assert jobs.run_ids and len(jobs.run_ids) == 1  # only the catch-up ran (the next fires are minutes away)


def test_cron_job_args_and_time_zone() -> None:
    job = CronJob("ingest orders", "0 3 * * *", timezone="Europe/Berlin")
    assert job.args == ("ingest", "orders") and job.record_name == "schedule.ingest.orders"
    after = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert job.next_after(after) == datetime(2026, 7, 2, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert CronJob("run", "*/15 * * * *").fire_times(after, after + timedelta(hours=1)) == 4


@pytest.mark.parametrize(
    ("block", "line", "needle"),
    [
        ('  run: "61 * * * *"\n', 9, "is not a cron expression"),
        ('  run: "* * * * * * * *"\n', 9, "is not a cron expression"),
        ('  publish: "0 * * * *"\n', 9, "not a job to schedule"),
        ('  ingest nope: "0 * * * *"\n', 9, "no source 'nope'"),
        ('  sla: {cron: "0 * * * *", missed: later}\n', 9, "'skip' or 'run_once'"),
        ('  sla: {cron: "0 * * * *", timezone: Mars/Base}\n', 9, "unknown time zone"),
    ],
)
def test_bad_schedules_name_the_line(tmp_path: Path, block: str, line: int, needle: str) -> None:
    (tmp_path / "lakestack.yaml").write_text(
        "name: shop\n"
        "environments:\n"
        "  dev: {warehouse: ./warehouse}\n"
        "sources:\n"
        "  orders: {kind: files, landing: landing/orders, contract: orders}\n"
        "schedules:\n"
        '  maintain: "0 3 * * 0"\n'
        '  ingest orders: {cron: "*/5 * * * *", missed: run_once}\n' + block
    )
    with pytest.raises(ConfigError) as caught:
        load_project_config(tmp_path)
    assert needle in caught.value.message
    assert caught.value.location is not None and caught.value.location.line == line


def test_good_schedules_load(tmp_path: Path) -> None:
    (tmp_path / "lakestack.yaml").write_text(
        'name: shop\nsources: {}\nschedules:\n  run: "*/10 * * * *"\n  sla: {cron: "* * * * * */5", missed: run_once}\n'
    )
    config = load_project_config(tmp_path)
    assert config.schedules["run"].missed == "skip" and config.schedules["sla"].cron == "* * * * * */5"

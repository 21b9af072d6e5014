"""The run-event seam: jobs start, report and end; listeners that fail never fail the job."""

from __future__ import annotations

import re
import uuid

import pytest

from lakestack.pipeline.events import CheckOutcome, DatasetIO, JobRun, RunEvents, RunListener, uuid7


class Recorder(RunListener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_start(self, job: JobRun) -> None:
        self.calls.append(("start", job.job))

    def on_dataset(self, job: JobRun, dataset: DatasetIO) -> None:
        self.calls.append(("dataset", dataset.name))

    def on_check(self, job: JobRun, check: CheckOutcome) -> None:
        self.calls.append(("check", check.name))

    def on_complete(self, job: JobRun) -> None:
        self.calls.append(("complete", job.status))

    def on_fail(self, job: JobRun) -> None:
        self.calls.append(("fail", f"{job.status}:{job.error}"))


class Broken(RunListener):
    def on_start(self, job: JobRun) -> None:
        raise RuntimeError("the lineage server is down")


def test_uuid7_is_a_time_ordered_version_7_uuid() -> None:
    ids = [uuid7(now_ms=ms) for ms in (1_000, 2_000, 3_000)]
    assert ids == sorted(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert len({uuid7() for _ in range(1000)}) == 1000


def test_a_job_reports_start_datasets_checks_and_completion() -> None:
    recorder = Recorder()
    events = RunEvents([recorder])
    with (
        events.job("run", "run", lake_run_id="20261202T000000Z-abcd") as parent,
        events.job("promote", "promote.orders", parent=parent.run) as job,
    ):
        job.dataset(DatasetIO("bronze.orders", "input", snapshot_id=1))
        job.dataset(DatasetIO("silver.orders", "output", snapshot_id=2, rows=10))
        job.check(CheckOutcome("silver.orders", "unique(order_id)", "unique", True, "fail"))
    assert recorder.calls == [
        ("start", "run"),
        ("start", "promote.orders"),
        ("dataset", "bronze.orders"),
        ("dataset", "silver.orders"),
        ("check", "unique(order_id)"),
        ("complete", "COMPLETE"),
        ("complete", "COMPLETE"),
    ]
    assert job.run.parent_run_id == parent.run.run_id
    assert job.run.lake_run_id == "20261202T000000Z-abcd"
    assert job.run.duration_s is not None and job.run.duration_s >= 0


def test_a_failing_job_ends_in_fail_and_raises() -> None:
    recorder = Recorder()
    events = RunEvents([recorder])
    with pytest.raises(ValueError, match="bad input"), events.job("build", "build.fact_sales"):
        raise ValueError("bad input")
    assert recorder.calls[-1] == ("fail", "FAIL:bad input")


def test_a_stopped_job_ends_in_abort() -> None:
    recorder = Recorder()
    with pytest.raises(KeyboardInterrupt), RunEvents([recorder]).job("stream", "stream.orders"):
        raise KeyboardInterrupt
    assert recorder.calls[-1] == ("fail", "ABORT:KeyboardInterrupt")


def test_a_failing_listener_is_counted_and_never_fails_the_job() -> None:
    recorder = Recorder()
    events = RunEvents([Broken(), recorder])
    with events.job("ingest", "ingest.orders"):
        pass
    assert events.listener_errors == 1
    assert recorder.calls == [("start", "ingest.orders"), ("complete", "COMPLETE")]


def test_error_text_in_a_record_is_one_line() -> None:
    recorder = Recorder()
    with pytest.raises(RuntimeError), RunEvents([recorder]).job("check", "check.silver.orders"):
        raise RuntimeError("first line\nsecond line")
    assert re.fullmatch(r"fail", recorder.calls[-1][0])
    assert recorder.calls[-1][1] == "FAIL:first line"

"""Run records: every job `Lake` does reports through the run-event seam, and `_lakestack.runs`
holds one row per job, written in one commit per top-level run (real Iceberg, SQLite catalog,
a small Northwind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakestack import Lake
from lakestack.examples.northwind import generate_northwind
from lakestack.pipeline.events import JobRun, RunListener
from lakestack.pipeline.records import RUNS, find_run, list_runs, read_runs
from lakestack.pipeline.scaffold import copy_example
from lakestack.pipeline.silver import model_from_config


def _northwind(root: Path, *, break_gold: bool = False) -> Path:
    copy_example("northwind", root)
    generate_northwind(root, orders=2_000, seed=3, days=4, break_gold=break_gold)
    return root


class Seen(RunListener):
    """What a second listener (lineage, metrics) is told: each job as it ends."""

    def __init__(self) -> None:
        self.ended: list[JobRun] = []

    def on_complete(self, job: JobRun) -> None:
        self.ended.append(job)

    def on_fail(self, job: JobRun) -> None:
        self.ended.append(job)


class Broken(RunListener):
    def on_start(self, job: JobRun) -> None:
        raise RuntimeError("lineage endpoint down")

    def on_dataset(self, job: JobRun, dataset: Any) -> None:
        raise ValueError("bad dataset")

    def on_complete(self, job: JobRun) -> None:
        raise OSError("disk full")


def _snapshots(lake: Lake, identifier: str) -> int:
    return len(lake.warehouse.load(identifier).metadata.snapshots)


def _by_job(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["job"]: r for r in records}


def _dataset(record: dict[str, Any], name: str, role: str) -> dict[str, Any]:
    found = [d for d in record["datasets"] if d["name"] == name and d["role"] == role]
    assert len(found) == 1, (record["job"], name, role, record["datasets"])
    return found[0]


@pytest.fixture(scope="module")
def completed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Any, Seen]:
    root = _northwind(tmp_path_factory.mktemp("runs") / "northwind")
    seen = Seen()
    lake = Lake.open(root, listeners=[seen])
    report = lake.run()
    return lake, report, seen


def test_a_run_records_itself_and_every_job_in_one_commit(completed: tuple[Lake, Any, Seen]) -> None:
    lake, report, seen = completed
    records = read_runs(lake.warehouse)
    assert _snapshots(lake, RUNS) == 1  # one Iceberg commit for the whole run
    top = [r for r in records if r["parent_run_id"] is None]
    assert len(top) == 1 and top[0]["job"] == "run" and top[0]["status"] == "COMPLETE"
    assert top[0]["lake_run_id"] == report.run_id and top[0]["error"] is None
    children = [r for r in records if r["parent_run_id"] is not None]
    assert {r["parent_run_id"] for r in children} == {top[0]["run_id"]}
    assert {r["lake_run_id"] for r in records} == {report.run_id}
    sources = list(lake.project.config.sources)
    expected = (
        {f"ingest.{s}" for s in sources}
        | {f"promote.{d}" for d in lake.silver_datasets()}
        | {f"build.{m}" for m in lake.gold_models()}
        | {f"check.{d}" for d in lake.dataset_checks() if lake.warehouse.exists(d)}
    )
    assert {r["job"] for r in children} == expected
    assert all(r["status"] == "COMPLETE" for r in records)
    # the other listener was told about the same jobs, under the same run ids
    assert sorted(j.run_id for j in seen.ended) == sorted(r["run_id"] for r in records)
    # uuid7 run ids are time-ordered: the parent started first
    assert top[0]["run_id"] < min(r["run_id"] for r in children)


def test_counts_reconcile_with_the_ingest_report_and_the_tables(completed: tuple[Lake, Any, Seen]) -> None:
    lake, report, _ = completed
    jobs = _by_job(read_runs(lake.warehouse))
    assert report.ingest is not None
    for source in report.ingest.sources:
        job = jobs[f"ingest.{source.source}"]
        assert job["rows_read"] == source.rows_in == job["rows_written"] + job["rows_quarantined"]
        assert job["rows_written"] == source.landed and job["rows_quarantined"] == source.quarantined
        bronze = _dataset(job, f"bronze.{source.source}", "output")
        assert bronze["snapshot_id"] == source.snapshots[f"bronze.{source.source}"]
        assert bronze["rows"] == lake.table_info(f"bronze.{source.source}").rows  # one ingest: all of Bronze
        assert [s["name"] for s in job["stages"]] == ["ingest"]
    for result in report.promoted:
        job = jobs[f"promote.{result.dataset.partition('.')[2]}"]
        assert job["rows_written"] == result.inserted + result.updated
        assert _dataset(job, result.dataset, "output")["snapshot_id"] == result.snapshot_id
        source = model_from_config(result.dataset.partition(".")[2], lake.project).source
        bronze = _dataset(job, f"bronze.{source}", "input")
        assert bronze["rows"] == result.bronze_rows
        assert bronze["snapshot_id"] == _dataset(jobs[f"ingest.{source}"], f"bronze.{source}", "output")["snapshot_id"]
    for result in report.built:
        job = jobs[f"build.{result.dataset.partition('.')[2]}"]
        out = _dataset(job, result.dataset, "output")
        assert out["rows"] == result.rows_written == lake.table_info(result.dataset).rows
        assert out["snapshot_id"] == result.snapshot_id
        assert {d["name"] for d in job["datasets"] if d["role"] == "input"}
    checks = {(c.dataset, c.check) for c in report.checks}
    recorded = {(c["dataset"], c["name"]) for r in jobs.values() for c in r["checks"]}
    assert recorded == checks
    top = jobs["run"]
    children = [r for r in jobs.values() if r["parent_run_id"]]
    assert top["rows_quarantined"] == sum(r["rows_quarantined"] for r in children) == report.ingest.quarantined
    assert top["rows_read"] == report.ingest.rows_in  # what entered the lake, not every job's re-read
    assert top["rows_written"] == sum(r["rows_written"] for r in children)
    assert top["checks_total"] == len(report.checks)
    assert top["checks_failed"] == sum(1 for c in report.checks if c.status not in ("pass", "skipped"))


def test_a_build_records_its_sql_and_model_file(completed: tuple[Lake, Any, Seen]) -> None:
    _, _, seen = completed
    build = next(j for j in seen.ended if j.job == "build.fact_sales")
    assert build.sql is not None and "silver.orders" in build.sql
    assert build.source_file == "models/gold/fact_sales.sql"
    out = next(d for d in build.datasets if d.role == "output")
    assert ("order_id", "string") in out.columns


def test_runs_show_finds_a_run_by_either_id_or_a_prefix(completed: tuple[Lake, Any, Seen]) -> None:
    lake, report, _ = completed
    run, children = find_run(lake.warehouse, report.run_id)
    assert run["job"] == "run" and len(children) == len(read_runs(lake.warehouse)) - 1
    assert find_run(lake.warehouse, run["run_id"])[0] == run
    child = children[0]
    assert find_run(lake.warehouse, child["run_id"])[0]["job"] == child["job"]
    from lakestack.errors import UsageError

    with pytest.raises(UsageError, match="no run 'nope'"):
        find_run(lake.warehouse, "nope")
    with pytest.raises(UsageError, match="ambiguous"):
        find_run(lake.warehouse, run["run_id"][:4])  # every job of the run shares its first digits
    assert [r["job"] for r in list_runs(lake.warehouse, top_only=True)] == ["run"]
    assert {r["job"] for r in list_runs(lake.warehouse, job="ingest", limit=None)} == {
        f"ingest.{s}" for s in lake.project.config.sources
    }


def test_standalone_commands_are_top_level_runs_of_their_own(tmp_path: Path) -> None:
    lake = Lake.open(_northwind(tmp_path / "nw"))
    lake.ingest(["orders"])
    assert _snapshots(lake, RUNS) == 1
    lake.promote(["orders"])
    assert _snapshots(lake, RUNS) == 2
    results = lake.check(["silver.orders"])
    assert _snapshots(lake, RUNS) == 3
    tops = list_runs(lake.warehouse, top_only=True)
    assert [r["job"] for r in tops] == ["check", "promote", "ingest"]  # newest first
    check_top, jobs = find_run(lake.warehouse, tops[0]["run_id"])
    assert [j["job"] for j in jobs] == ["check.silver.orders"]
    assert jobs[0]["checks_total"] == len(results)
    assert check_top["lake_run_id"] == lake.check_results(check_top["lake_run_id"])[0]["run_id"]


def test_a_failing_build_records_fail_with_its_message(tmp_path: Path) -> None:
    root = _northwind(tmp_path / "nw")
    (root / "models" / "gold" / "broken.sql").write_text("SELECT product_id, no_such_column FROM silver.products\n")
    seen = Seen()
    lake = Lake.open(root, listeners=[seen])
    with pytest.raises(Exception, match="no_such_column"):
        lake.run()
    jobs = _by_job(read_runs(lake.warehouse))
    assert jobs["build.broken"]["status"] == "FAIL"
    assert "no_such_column" in jobs["build.broken"]["error"]
    assert _dataset(jobs["build.broken"], "silver.products", "input")["snapshot_id"] is not None
    assert jobs["run"]["status"] == "FAIL" and "no_such_column" in jobs["run"]["error"]
    assert jobs["ingest.orders"]["status"] == "COMPLETE"  # what ran before it is recorded as it was
    failed = next(j for j in seen.ended if j.job == "build.broken")
    assert failed.status == "FAIL" and failed.exit_code == 2 and not failed.blocked


def test_a_refused_command_leaves_no_record(tmp_path: Path) -> None:
    lake = Lake.open(_northwind(tmp_path / "nw"))
    from lakestack.errors import UsageError

    with pytest.raises(UsageError):
        lake.promote(["orders"])  # nothing ingested yet: refused before any data work
    assert not lake.warehouse.exists(RUNS)


def test_a_gate_blocked_run_records_what_the_gate_stopped(tmp_path: Path) -> None:
    seen = Seen()
    lake = Lake.open(_northwind(tmp_path / "nw", break_gold=True), listeners=[seen])
    report = lake.run()
    assert report.blocked
    jobs = _by_job(read_runs(lake.warehouse))
    top = jobs["run"]
    assert top["status"] == "BLOCKED"
    assert top["error"] == f"quality gate failed: blocked {', '.join(report.blocked)}"
    gated = jobs["build.daily_order_metrics"]
    assert gated["status"] == "BLOCKED"
    assert gated["error"] == "gate(gold.daily_order_metrics) failed: revenue is positive every day"
    assert not [d for d in gated["datasets"] if d["role"] == "output"]  # nothing was published
    check = jobs["check.gold.daily_order_metrics"]
    assert check["status"] == "BLOCKED" and check["checks_failed"] >= 1
    failing = [c for c in check["checks"] if not c["passed"]]
    assert [c["name"] for c in failing] == ["revenue is positive every day"]
    assert failing[0]["failing_rows"] >= 1
    for name in report.blocked:  # every blocked model downstream is recorded, never run
        if name != "gold.daily_order_metrics":
            job = jobs[f"build.{name.partition('.')[2]}"]
            assert job["status"] == "BLOCKED" and job["error"].startswith("blocked upstream: gate(")
    unblocked = [b.dataset for b in report.built if b.mode in ("full", "incremental")]
    assert unblocked and all(jobs[f"build.{d.partition('.')[2]}"]["status"] == "COMPLETE" for d in unblocked)
    # listeners that know only COMPLETE/FAIL/ABORT see FAIL, with the blocked flag
    ended = {j.job: j for j in seen.ended}
    assert ended["build.daily_order_metrics"].status == "FAIL" and ended["build.daily_order_metrics"].blocked
    assert ended["run"].status == "FAIL" and ended["run"].blocked


def test_a_raising_listener_never_fails_the_run(tmp_path: Path) -> None:
    lake = Lake.open(_northwind(tmp_path / "nw"), listeners=[Broken()])
    report = lake.run(["orders"])
    assert report.ingest is not None and report.ingest.landed > 0
    assert lake.events.listener_errors > 10  # every start, dataset and completion of every job
    records = read_runs(lake.warehouse)
    top = next(r for r in records if r["parent_run_id"] is None)
    assert top["status"] == "COMPLETE"
    # the top-level row counts what failed before it was written (its own completion comes after)
    assert 0 < top["listener_errors"] <= lake.events.listener_errors


def test_a_record_that_cannot_be_written_is_logged_and_the_job_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pyarrow as pa

    lake = Lake.open(_northwind(tmp_path / "nw"))
    # a runs table some other version made, with a schema these records do not cast to
    lake.warehouse.system_table(RUNS, pa.schema([("run_id", pa.int64()), ("other", pa.float64())]))
    report = lake.ingest(["orders"])
    assert report.landed > 0 and lake.table_info("bronze.orders").rows == report.landed
    assert lake.recorder.errors == 1
    assert "could not record 2 run record(s) in _lakestack.runs" in caplog.text
    assert _snapshots(lake, RUNS) == 0


class Progress(RunListener):
    def __init__(self) -> None:
        self.figures: list[dict[str, Any]] = []

    def on_progress(self, job: JobRun) -> None:
        self.figures.append(dict(job.progress))


def test_a_stream_session_is_one_run_with_progress_not_one_per_commit(tmp_path: Path) -> None:
    import json
    import threading
    import time

    from lakestack.pipeline import lake as lake_module
    from nats_support import delete_stream, make_stream, publish
    from stream_support import payload, stream_project
    from tests_support import service_url

    url = service_url("nats", "nats://127.0.0.1:4222")
    name, subject = make_stream(url)
    try:
        root = stream_project(tmp_path / "p", "nats", {"url": url, "stream": name}, max_seconds=0.2)
        publish(url, subject, [payload(i) for i in range(3_000)] + [b"not json"])
        progress = Progress()
        lake = Lake.open(root, listeners=[progress])
        started = time.monotonic()
        stats = lake.stream("events", threading.Event(), idle_stop=1.5)
        took = time.monotonic() - started
    finally:
        delete_stream(url, name)
    records = read_runs(lake.warehouse)
    assert [(r["job"], r["job_type"], r["status"]) for r in records] == [("stream.events", "stream", "COMPLETE")]
    record = records[0]
    assert (record["rows_read"], record["rows_written"], record["rows_quarantined"]) == (3_001, 3_000, 1)
    assert (stats.received, stats.landed, stats.quarantined) == (3_001, 3_000, 1)
    assert json.loads(record["progress"])["landed"] == 3_000
    # the final figures, plus at most one per STREAM_PROGRESS_S of the session: never one per commit
    assert 1 <= len(progress.figures) <= 1 + took / lake_module.STREAM_PROGRESS_S
    assert progress.figures[-1]["landed"] == 3_000
    assert _snapshots(lake, RUNS) == 1


def test_a_serve_collector_session_is_one_run(tmp_path: Path) -> None:
    import httpx

    from serve_support import running_server
    from stream_support import event, stream_project

    root = stream_project(tmp_path / "p", "http", None, max_seconds=0.2)
    with running_server(root) as url:
        for batch in range(3):  # three requests, each its own commit
            body = [event(batch * 10 + i) for i in range(5)] + [{"event_id": f"bad{batch}"}]
            answer = httpx.post(f"{url}/v1/streams/events/records?ack=committed", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
    lake = Lake.open(root)
    records = read_runs(lake.warehouse)
    assert [(r["job"], r["status"]) for r in records] == [("stream.events", "COMPLETE")]
    assert (records[0]["rows_read"], records[0]["rows_written"], records[0]["rows_quarantined"]) == (18, 15, 3)
    assert lake.table_info("bronze.events").rows == 15


def test_a_standalone_build_refused_with_a_project_error_changes_nothing(tmp_path: Path) -> None:
    root = _northwind(tmp_path / "nw")
    lake = Lake.open(root)
    lake.run()
    before = _snapshots(lake, RUNS)
    (root / "models" / "gold" / "broken.sql").write_text("SELECT product_id, no_such_column FROM silver.products\n")
    seen = Seen()
    with pytest.raises(Exception, match="no_such_column"):
        Lake.open(root, listeners=[seen]).build(["broken"])
    assert _snapshots(lake, RUNS) == before  # exit 2, nothing written: the message is the record
    failed = next(j for j in seen.ended if j.job == "build.broken")  # other listeners still hear of it
    assert failed.status == "FAIL" and [d.name for d in failed.datasets] == ["silver.products"]

"""`lakestack runs`, `runs show`, `check` and `checks show` as a user runs them: a real subprocess
over a small Northwind, JSON and tables, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("LAKESTACK_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "lakestack", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
    return result


def as_json(*args: str, cwd: Path) -> Any:
    result = run(*args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def northwind(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A Northwind that ran once, then had its checks evaluated once."""
    root = tmp_path_factory.mktemp("cli") / "nw"
    assert run("example", "northwind", str(root), "--orders", "2000").returncode == 0
    report = as_json("run", cwd=root)
    checked = as_json("check", "silver.orders", cwd=root)
    return root, report, checked


def test_runs_lists_top_level_runs_newest_first(northwind: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    root, report, checked = northwind
    runs = as_json("runs", cwd=root)
    assert [(r["job"], r["lake_run_id"]) for r in runs] == [
        ("check", checked["run_id"]),
        ("run", report["run_id"]),
    ]
    assert runs[1]["status"] == "COMPLETE" and runs[1]["parent_run_id"] is None
    quarantined = sum(s["quarantined"] for s in report["ingest"]["sources"])
    assert runs[1]["rows_quarantined"] == quarantined > 0
    assert as_json("runs", "--limit", "1", cwd=root) == runs[:1]
    assert as_json("runs", "--status", "fail", cwd=root) == []
    assert len(as_json("runs", "--since", "1d", cwd=root)) == 2
    assert as_json("runs", "--since", "2999-01-01", cwd=root) == []
    ingests = as_json("runs", "--job", "ingest", cwd=root)  # a job type: the jobs inside runs
    assert {r["job"] for r in ingests} == {f"ingest.{s['source']}" for s in report["ingest"]["sources"]}
    table = run("runs", cwd=root)
    assert table.returncode == 0 and report["run_id"] in table.stdout
    assert f"{runs[1]['rows_written']:,}" in table.stdout  # counts with separators


def test_runs_show_one_run_with_its_jobs(northwind: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    root, report, _ = northwind
    shown = as_json("runs", "show", report["run_id"], cwd=root)
    assert shown["run"]["job"] == "run" and shown["run"]["lake_run_id"] == report["run_id"]
    jobs = {j["job"]: j for j in shown["jobs"]}
    for source in report["ingest"]["sources"]:
        job = jobs[f"ingest.{source['source']}"]
        assert (job["rows_read"], job["rows_written"], job["rows_quarantined"]) == (
            source["rows_in"],
            source["landed"],
            source["quarantined"],
        )
    for built in report["built"]:
        job = jobs[f"build.{built['dataset'].partition('.')[2]}"]
        assert [d["rows"] for d in job["datasets"] if d["role"] == "output"] == [built["rows_written"]]
    uuid = shown["run"]["run_id"]
    assert as_json("runs", "show", uuid[:-4], cwd=root)["run"] == shown["run"]  # a unique prefix
    child = shown["jobs"][0]
    assert as_json("runs", "show", child["run_id"], cwd=root)["run"]["job"] == child["job"]
    text = run("runs", "show", report["run_id"], cwd=root)
    assert text.returncode == 0
    for part in ("jobs (", "datasets", "stage timings", "ingest.orders", "build.fact_sales"):
        assert part in text.stdout, part


def test_an_unknown_run_id_exits_2_naming_it(northwind: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    root, _, _ = northwind
    result = run("runs", "show", "no-such-run", cwd=root)
    assert result.returncode == 2 and "no run 'no-such-run'" in result.stderr
    bad = run("runs", "--since", "yesterday-ish", cwd=root)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_check_prints_the_run_id_it_recorded(northwind: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    root, _, checked = northwind
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", checked["run_id"])
    assert {r["dataset"] for r in checked["results"]} == {"silver.orders"}
    result = run("check", "silver.customers", cwd=root)
    match = re.search(r"run (\d{8}T\d{6}Z-[0-9a-f]{8}) recorded", result.stdout)
    assert result.returncode == 0 and match, result.stdout
    recorded = as_json("checks", "show", match.group(1), cwd=root)["results"]
    assert recorded and {r["dataset"] for r in recorded} == {"silver.customers"}


def test_check_counts_print_as_integers_with_separators(
    northwind: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    root, _, checked = northwind
    big = [r for r in checked["results"] if r["observed"] is not None and r["observed"] >= 1000]
    (root / "checks" / "orders_count.yaml").write_text(
        "dataset: silver.orders\nchecks:\n  - {type: row_count, min: 1}\n"
    )
    result = run("check", "silver.orders", cwd=root)
    run_id = re.search(r"run (\S+) recorded", result.stdout).group(1)  # type: ignore[union-attr]
    rows = as_json("checks", "show", run_id, cwd=root)["results"]
    count = next(r for r in rows if r["check"].startswith("row_count"))
    assert count["observed"] >= 1000 and float(count["observed"]).is_integer()
    shown = f"{int(count['observed']):,}"
    for text in (result.stdout, run("checks", "show", run_id, cwd=root).stdout):
        assert shown in text and "," in shown
        assert not re.search(r"\d\.\d+e[+-]\d", text)  # no 5.009e+04
        assert f"{count['observed']}" not in text  # no 1983.0
    assert big == [] or all(f"{int(r['observed']):,}" in result.stdout for r in big)


def test_failing_row_samples_show_checked_columns_and_key_first(
    northwind: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    from lakestack import Lake
    from lakestack.cli.render import failure_rows

    root, _, checked = northwind
    lake = Lake.open(root)
    failures = lake.check_failures(checked["run_id"])
    assert failures, "the generated orphan customers fail referential_integrity(customer_id ...)"
    leading = lake.sample_columns({(f["dataset"], f["check"]) for f in failures})
    for shown in failure_rows(failures, leading):
        names = [part.split("=", 1)[0] for part in re.split(r", (?=[A-Za-z_][\w]*=)", shown["row"])]
        assert names[:3] == ["customer_id", "order_id", "order_line"], names
        lineage = [n for n in names if n.startswith("_")]
        assert lineage and names[-len(lineage) :] == lineage, names
    text = run("checks", "show", checked["run_id"], cwd=root).stdout
    assert 'customer_id="C' in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [(50091.0, "50,091"), (7602.0, "7,602"), (1983, "1,983"), (0.8573, "0.8573"), (1234.567, "1,234.57"), (None, "")],
)
def test_numbers_for_people(value: Any, shown: str) -> None:
    from lakestack.cli.render import number

    assert number(value) == shown


def test_since_takes_durations_and_iso_dates() -> None:
    from datetime import UTC, datetime, timedelta

    from lakestack.errors import UsageError
    from lakestack.pipeline.records import parse_since

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="--since 'soon'"):
        parse_since("soon", now)


def test_a_blocked_job_is_fail_for_listeners_and_blocked_in_its_record() -> None:
    from lakestack.pipeline.events import RunEvents
    from lakestack.pipeline.records import job_row

    with RunEvents().job("build", "build.daily_order_metrics") as job:
        job.fail("gate(gold.daily_order_metrics) failed: revenue is positive every day", blocked=True)
    assert job.run.status == "FAIL" and job.run.blocked
    row = job_row(job.run)
    assert row["status"] == "BLOCKED" and row["error"].startswith("gate(gold.daily_order_metrics) failed")

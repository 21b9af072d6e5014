"""Runs started together on one project: the project lock lets one run at a time, and the file
ledger fences each commit, so every table ends as one run would leave it and reports reconcile.

Issue 10 item 6: two `lakestack ingest` started together used to land every quarantined row twice
(quarantine.orders 257 → 514) while both exited 0. Maintenance does not exist yet, so it is not raced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lake_support import (
    child_env,
    cli,
    copy_project,
    create_database,
    drop_database,
    lake_contents,
    small_northwind,
    spawn,
)
from tests_support import service_url

pytestmark = pytest.mark.integration

PREPARE: dict[str, list[list[str]]] = {"ingest": [], "promote": [["ingest"]], "build": [["ingest"], ["promote"]]}
PREPARE["run"] = []
# A pause at a point the lock holder passes, so its rivals certainly start while it holds the lock.
HOLD = {
    "ingest": "files.before_bronze_commit=1*sleep(2500)",
    "promote": "silver.before_commit=1*sleep(2500)",
    "build": "gold.before_publish=1*sleep(2500)",
    "run": "files.before_bronze_commit=1*sleep(2500)",
}
LOCKED = "another run holds the lock since"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_northwind(tmp_path_factory.mktemp("race") / "pristine", orders=600, days=3)


@pytest.fixture(scope="module")
def references(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per command: the lake after its preparation and one run of it, alone (made on first use)."""
    made: dict[str, Any] = {}

    def reference(command: str) -> Any:
        if command not in made:
            project = copy_project(pristine, tmp_path_factory.mktemp("ref") / command)
            for step in [*PREPARE[command], [command]]:
                done = cli(project, *step)
                assert done.returncode == 0, done.stderr
            made[command] = lake_contents(project)
        return made[command]

    return reference  # type: ignore[return-value]


def _race(project: Path, command: str, n: int, *extra: str) -> list[tuple[int, str, str]]:
    procs = [spawn(project, *extra, command, "--json", LAKESTACK_FAILPOINTS=HOLD[command]) for _ in range(n)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        out.append((proc.returncode, stdout, stderr))
    return out


def _refusal(stdout: str, stderr: str) -> str:
    """The message of a run refused with --json: one JSON problem on stdout, nothing on stderr."""
    problem = json.loads(stdout)
    assert problem["error"] == "ProjectLockedError" and problem["exit_code"] == 3, problem
    assert "Traceback" not in stderr, stderr
    message: str = problem["message"]
    return message


def _ingested(command: str, stdout: str) -> tuple[int, int]:
    report = json.loads(stdout)
    if command == "run":
        report = report["ingest"]
    files = [f for s in report["sources"] for f in s["files"]]
    # an unreadable file is quarantined whole, as one row of scope "file"
    rejected = sum(1 for f in files if f["status"] == "rejected")
    return sum(f["landed"] for f in files), sum(f["quarantined"] for f in files) + rejected


def _assert_reports_reconcile(command: str, results: list[tuple[int, str, str]], lake: dict[str, Any]) -> None:
    winners = [stdout for code, stdout, _ in results if code == 0]
    if command in ("ingest", "run"):
        landed = sum(_ingested(command, out)[0] for out in winners)
        quarantined = sum(_ingested(command, out)[1] for out in winners)
        assert landed == sum(rows for t, (rows, _) in lake.items() if t.startswith("bronze."))
        assert quarantined == sum(rows for t, (rows, _) in lake.items() if t.startswith("quarantine."))
    if command == "promote":
        inserted = sum(r["inserted"] for out in winners for r in json.loads(out))
        assert inserted == sum(rows for t, (rows, _) in lake.items() if t.startswith("silver."))


# `make test` races two ingests; the rest of the matrix is long and runs with the crash matrix (.ci/run)
LONG = [pytest.mark.slow, pytest.mark.crash]


@pytest.mark.parametrize(
    ("command", "n"),
    [
        ("ingest", 2),
        pytest.param("ingest", 3, marks=LONG),
        pytest.param("promote", 2, marks=LONG),
        pytest.param("build", 2, marks=LONG),
        pytest.param("run", 3, marks=LONG),
    ],
)
def test_racing_runs_one_holds_the_lock_the_others_refuse(
    pristine: Path, references: Any, tmp_path: Path, command: str, n: int
) -> None:
    project = copy_project(pristine, tmp_path / "p")
    for step in PREPARE[command]:
        assert cli(project, *step).returncode == 0
    results = _race(project, command, n)

    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and set(codes) <= {0, 3}, results
    refused = [_refusal(out, err) for code, out, err in results if code == 3]
    assert refused, "the rivals started while the holder paused with the lock: one must have been refused"
    for message in refused:
        assert LOCKED in message and f"(lakestack {command}, pid " in message, message
    lake = lake_contents(project)
    assert lake == references(command)
    _assert_reports_reconcile(command, results, lake)


@pytest.mark.slow
@pytest.mark.crash
@pytest.mark.parametrize("command", ["ingest", "run"])
def test_racing_runs_with_wait_take_turns(pristine: Path, references: Any, tmp_path: Path, command: str) -> None:
    project = copy_project(pristine, tmp_path / "p")
    results = _race(project, command, 3, "--wait", "120")

    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    lake = lake_contents(project)
    assert lake == references(command)
    _assert_reports_reconcile(command, results, lake)
    landed = sorted(_ingested(command, out)[0] for _, out, _ in results)
    assert landed[:2] == [0, 0] and landed[2] > 0  # the first did the work; the others found it done


def test_file_ingest_without_the_lock_is_fenced_per_file(pristine: Path, references: Any, tmp_path: Path) -> None:
    """Two processes ingest overlapping file sets without the lock (as on a catalog the lock does
    not cover): both read empty ledgers, then commit; the shared file lands once in Bronze and in
    quarantine, and is reported by exactly one of them."""
    project = copy_project(pristine, tmp_path / "p")
    files = sorted(p.name for p in (project / "landing" / "orders").iterdir())
    assert len(files) >= 3
    script = (
        "import json, sys\n"
        "from lakestack import Lake\n"
        "from lakestack.ingest.base import NullObserver\n"
        "from lakestack.pipeline.runs import new_run_id\n"
        "lake = Lake.open(sys.argv[1])\n"
        "report = lake.source('orders').ingest(lake.warehouse, new_run_id(), NullObserver(), only=sys.argv[2:])\n"
        "print(json.dumps([[f.name, f.status, f.landed, f.quarantined, f.reason] for f in report.files]))\n"
    )
    # Both read the ledgers at start; then each pauses at the first ledger read of its quarantine
    # commit attempt (the 3rd read), so the second to commit finds the other's commit there.
    env = child_env(LAKESTACK_FAILPOINTS="files.ledger.read=1*sleep(3000)@3")
    init = [sys.executable, "-c", "import sys; from lakestack import Lake; Lake.open(sys.argv[1]).warehouse"]
    subprocess.run([*init, str(project)], check=True, env=child_env(), timeout=120)  # namespaces, once
    sets = [files[:2], files[1:3]]  # files[1] is in both
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(project), *names], env=env, stdout=subprocess.PIPE, text=True
        )
        for names in sets
    ]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]

    shared = [next(r for r in report if r[0] == files[1]) for report in reports]
    assert sorted(s[1] for s in shared) == ["landed", "skipped"], shared
    skipped = next(s for s in shared if s[1] == "skipped")
    assert skipped[2:4] == [0, 0] and "committed by a concurrent run" in skipped[4], skipped
    lake = lake_contents(project)
    reference = references("ingest")
    from lakestack import Lake

    bronze = Lake.open(project).read("bronze.orders", columns=["_source_file"]).to_pylist()
    by_file: dict[str, int] = {}
    for row in bronze:
        by_file[row["_source_file"]] = by_file.get(row["_source_file"], 0) + 1
    landed = {r[0]: r[2] for report in reports for r in report if r[1] == "landed"}
    assert by_file == {name: n for name, n in landed.items() if n}
    quarantined = sum(r[3] + (r[1] == "rejected") for report in reports for r in report)
    assert lake["quarantine.orders"][0] == quarantined
    rejects = Lake.open(project).read("quarantine.orders", columns=["_source_file", "_source_line"]).to_pylist()
    assert len({(r["_source_file"], r["_source_line"]) for r in rejects}) == len(rejects)  # none twice
    if set(files[:3]) == set(files):  # the three files are the whole drop: the reference holds the same
        assert lake["bronze.orders"] == reference["bronze.orders"]
        assert lake["quarantine.orders"] == reference["quarantine.orders"]


@pytest.fixture
def postgres_database() -> Any:
    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    yield url
    drop_database(url)


@pytest.mark.slow
@pytest.mark.crash
def test_racing_runs_on_a_postgresql_catalog_take_an_advisory_lock(
    pristine: Path, references: Any, tmp_path: Path, postgres_database: str
) -> None:
    project = copy_project(pristine, tmp_path / "p", catalog_url=postgres_database)
    results = _race(project, "run", 2)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    message = next(_refusal(out, err) for code, out, err in results if code == 3)
    assert LOCKED in message and "(lakestack run, pid " in message, message
    lake = lake_contents(project)
    assert lake == references("run")
    _assert_reports_reconcile("run", results, lake)


def _hold_lock_then_fork(project: Path) -> subprocess.Popen[str]:
    """A child that takes the project lock, forks a grandchild that outlives it, and waits."""
    script = (
        "import os, sys, time\n"
        "from lakestack import Lake\n"
        "lake = Lake.open(sys.argv[1])\n"
        "with lake.locked('run'):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(120); os._exit(0)\n"
        "    print(pid, flush=True)\n"
        "    time.sleep(120)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(project)], env=child_env(), stdout=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_a_killed_lock_holder_never_blocks_the_next_run(
    pristine: Path, tmp_path: Path, catalog: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL the holder (its forked child still alive, as the file-ingest workers may be): the
    kernel drops the flock, the server drops the advisory lock with the session, and the child
    kept neither."""
    url = request.getfixturevalue("postgres_database") if catalog == "postgres" else None
    project = copy_project(pristine, tmp_path / "p", catalog_url=url)
    holder = _hold_lock_then_fork(project)
    grandchild = int(holder.stdout.readline())  # type: ignore[union-attr]
    try:
        blocked = cli(project, "ingest", "products")
        assert blocked.returncode == 3 and LOCKED in blocked.stderr, blocked.stderr
        assert f"pid {holder.pid}" in blocked.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        started = time.monotonic()
        done = cli(project, "ingest", "products")
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 60
    finally:
        os.kill(grandchild, signal.SIGKILL)
        if holder.poll() is None:
            holder.kill()

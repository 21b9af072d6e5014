"""The batch paths' crash matrix: a command SIGKILLed at each failpoint, twice, then `run` clean.

Every failpoint of file ingest, the Silver MERGE, the Gold build, the check results and the
storage commits under them, on a SQLite and on a PostgreSQL catalog, on Delta tables, and with
every landing file read in segments by two workers (ADR 42). The points are taken in
groups, in the order `lakestack run` reaches them; for each group, on a fresh copy of a small
Northwind project (orders, customers, products, fx_rates; three Gold models, one with a gate):

1. for each point of the group in turn, the narrowest command reaching it (`ingest`, `promote`,
   `check`, `build`; the group's earlier stages run clean first) with the point armed dies there
   (exit -9, the point last in LAKESTACK_FAILPOINTS_LOG), and is restarted to die there again: at the same
   step when nothing committed (before a commit: the restart redoes it), or one step further
   (after a commit: the next source, dataset or model), or at a later hit (`kill@2`);
2. then `lakestack run` clean, without --wait (a killed run leaves no lock behind): it completes;
3. every table equals the crash-free run of the same input (rows and a content hash without the
   run-id and commit-time columns): Bronze holds each (file, line) once, quarantine exactly the
   rejects, Silver and Gold the same rows; each table, the run logs included, reads the same
   through pyiceberg and through DuckDB over the Parquet files pyiceberg plans.

Each group leaves work for its later points (a group that ran out of work would end a crash run
with exit 0, which fails the test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, copy_project, create_database, drop_database, lake_contents, small_northwind
from lakestack import failpoints
from tests_support import service_url

pytestmark = [pytest.mark.crash, pytest.mark.integration]

# Per group: the commands run clean first, then (failpoint, the narrowest command reaching it,
# the two crashes' actions) in the order a run reaches them.
GROUPS: dict[str, tuple[list[str], list[tuple[str, str, tuple[str, str]]]]] = {
    "ingest-reads": (
        [],
        [
            ("files.ledger.read", "ingest", ("kill", "kill@2")),  # Bronze's ledger, then quarantine's
            ("files.after_quarantine_commit", "ingest", ("kill", "kill")),  # orders, then customers
            ("files.before_bronze_commit", "ingest", ("kill", "kill")),  # customers, twice
        ],
    ),
    "ingest-commits": (
        [],
        [
            ("checkpoints.side_file.after_write", "ingest", ("kill", "kill@2")),  # quarantine's ledger, Bronze's
            ("storage.append.after_write", "ingest", ("kill", "kill")),  # orders' quarantine files, twice
            ("storage.append.after_commit", "ingest", ("kill", "kill")),  # orders' quarantine, then Bronze
            ("files.after_bronze_commit", "ingest", ("kill", "kill")),  # customers, then products
        ],
    ),
    "promote": (
        ["ingest"],
        [
            ("silver.before_commit", "promote", ("kill", "kill")),  # silver.orders, twice
            ("storage.replace.after_write", "promote", ("kill", "kill")),  # silver.orders' files, twice
            ("storage.replace.after_commit", "promote", ("kill", "kill")),  # silver.orders, then customers
            ("silver.after_commit", "promote", ("kill", "kill")),  # silver.products, then fx_rates
        ],
    ),
    "checks-build": (
        ["ingest", "promote"],
        [
            ("checks.before_write", "check", ("kill", "kill")),  # the first dataset's results, twice
            ("checks.after_write", "check", ("kill", "kill@2")),
            ("gold.after_staging", "build", ("kill", "kill")),  # gold.fact_sales, twice
            ("gold.before_publish", "build", ("kill", "kill")),
            ("gold.after_publish", "build", ("kill", "kill")),  # gold.fact_sales, then daily_order_metrics
        ],
    ),
}
# Not crash points of a commit path: files.before_read widens a race in the read workers (a
# worker killed there fails the run with BrokenProcessPool, exit 3; nothing is committed).
NOT_IN_MATRIX = {"files.before_read"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_northwind(tmp_path_factory.mktemp("crash") / "pristine", orders=600, days=3)


@pytest.fixture(scope="module")
def reference(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The lake after one crash-free run (SQLite; a PostgreSQL catalog holds the same tables)."""
    project = copy_project(pristine, tmp_path_factory.mktemp("reference") / "p")
    done = cli(project, "run")
    assert done.returncode == 0, done.stderr
    return lake_contents(project)


@pytest.fixture(params=["sqlite", "postgres", "delta", "split"])
def storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Where the crashed copy keeps its tables: Iceberg on a SQLite or a PostgreSQL catalog, or
    Delta tables (ADR 35; compared with the same Iceberg reference). `split`: SQLite, with every
    landing file read in two segments by two workers (ADR 42), against the unsplit reference."""
    if request.param == "sqlite":
        yield {}
        return
    if request.param == "split":
        monkeypatch.setenv("LAKESTACK_SPLIT_BYTES", "1")
        monkeypatch.setenv("LAKESTACK_INGEST_WORKERS", "2")
        yield {}
        return
    if request.param == "delta":
        pytest.importorskip("deltalake")
        yield {"table_format": "delta"}
        return
    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    yield {"catalog_url": url}
    drop_database(url)


def _crash(project: Path, command: str, point: str, spec: str, log: Path) -> None:
    before = len(failpoints.hits(str(log)))
    done = cli(project, command, LAKESTACK_FAILPOINTS=f"{point}={spec}", LAKESTACK_FAILPOINTS_LOG=str(log))
    assert done.returncode == -9, f"{point}={spec} did not kill {command} (exit {done.returncode}): {done.stderr}"
    assert failpoints.hits(str(log))[before:] == [point], f"{point}={spec} killed elsewhere"


def _each_once(project: Path, identifier: str) -> None:
    from lakestack import Lake

    rows = Lake.open(project).read(identifier, columns=["_source_file", "_source_line"]).to_pylist()
    seen = [(r["_source_file"], r["_source_line"]) for r in rows]
    assert len(set(seen)) == len(seen), f"{identifier}: some (file, line) landed twice"


@pytest.mark.parametrize("group", list(GROUPS))
def test_run_killed_at_each_failpoint_twice_then_run_clean_equals_a_crash_free_run(
    pristine: Path, reference: dict[str, Any], storage: dict[str, str], tmp_path: Path, group: str
) -> None:
    project = copy_project(pristine, tmp_path / "p", **storage)
    log = tmp_path / "failpoints.log"
    prepare, points = GROUPS[group]
    for command in prepare:
        assert cli(project, command).returncode == 0
    for point, command, actions in points:
        for action in actions:
            _crash(project, command, point, action, log)

    done = cli(project, "run")  # no --wait: the killed runs' lock is gone
    assert done.returncode == 0, done.stderr
    lake = lake_contents(project)
    for identifier in (t for t in lake if t.startswith(("bronze.", "quarantine."))):
        _each_once(project, identifier)
    assert {t: rows for t, (rows, _) in lake.items()} == {t: rows for t, (rows, _) in reference.items()}
    assert lake == reference


def test_the_matrix_covers_every_batch_failpoint() -> None:
    batch = {
        n
        for n in failpoints.NAMES
        if n.startswith(("files.", "silver.", "gold.", "checks.", "storage.", "checkpoints."))
    }
    assert batch - NOT_IN_MATRIX == {p for _, points in GROUPS.values() for p, _, _ in points}

"""The crash matrix of the HTTP collector: a real `lakestack serve` killed at each failpoint of its
commit path (the log, the collector, the stream writer and the storage commit it goes through),
restarted at the same point, then without failpoints. On a SQLite catalog each point has a project
of its own and is crashed twice (at its first hit, then its second); on a PostgreSQL catalog (a
database per test) one project is crashed at every point in turn, as a process start costs more.

A producer sends batches with batch ids and retries each until it is answered 200. After the last
run: every record of every batch is in Bronze once (valid) or in quarantine once (invalid), each
retry of an answered batch was answered as the first time, the tables read the same through
pyiceberg and through DuckDB over the planned files, and the next run starts and stops cleanly.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakestack.failpoints import NAMES, hits
from serve_support import free_port, start_serve, stop_serve, wait_healthy
from stream_support import event, stream_project

pytestmark = [pytest.mark.crash]

SRC = Path(__file__).resolve().parents[2] / "src" / "lakestack"


def _points() -> list[str]:
    """wal.* and http.*, and the stream writer's and storage's points placed in the code (the
    collector commits through both)."""
    placed = set()
    for path in (SRC / "ingest" / "stream.py", SRC / "storage" / "warehouse.py"):
        placed |= set(re.findall(r"failpoint\(\s*\"([a-z_.]+)\"", path.read_text()))
    wanted = {n for n in NAMES if n.startswith(("wal.", "http."))}
    wanted |= {n for n in placed & NAMES if n.startswith(("stream.", "storage.append."))}
    return sorted(wanted)


BATCHES = 12  # per point (of RECORDS records; record 2 of each breaks the contract)
RECORDS = 5
PER_RUN = 4  # new batches each run sends (besides its retries)
ARMED = ("kill", "kill@2")  # each point is crashed at its first hit, then at its second
# reached only by broker sources (the collector is its log's only writer, so it fences nothing)
OFF_PATH = {"stream.fence", "stream.before_ack"}


@dataclass
class Producer:
    """Sends batches in order; a batch unanswered (connection lost, 503) is retried by the next run."""

    port: int
    total: int = BATCHES
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: int = 0

    def run(self, new: int, proc: Any) -> None:
        self.sent = min(self.total, self.sent + new)
        todo = [b for b in range(self.sent) if _batch_id(b) not in self.answers]
        with httpx.Client(timeout=30) as client:
            for b in todo:
                if proc.poll() is not None:
                    return
                try:
                    answer = client.post(
                        f"http://127.0.0.1:{self.port}/v1/streams/events/records",
                        json=_records(b),
                        headers={"Lakestack-Batch-Id": _batch_id(b)},
                    )
                except httpx.TransportError:
                    return  # the server died: the next run retries from here
                if answer.status_code != 200:
                    assert answer.status_code == 503 and "Retry-After" in answer.headers, answer.text
                    return
                self.answers[_batch_id(b)] = answer.json()


def _batch_id(b: int) -> str:
    return f"batch-{b:03d}"


def _records(b: int) -> list[dict[str, Any]]:
    return [event(b * 100 + i, amount=-1 if i == 2 else i) for i in range(RECORDS)]


def _project(tmp_path: Path, catalog_uri: str | None = None, ack: str = "durable", table_format: str = "") -> Path:
    root = stream_project(tmp_path / "p", "http", None, max_seconds=0.15)
    config = root / "lakestack.yaml"
    text = config.read_text().replace("kind: http", f"kind: http\n    http: {{workers: 0, ack: {ack}}}")
    if catalog_uri is not None:
        text = text.replace("sqlite:///.lakestack/catalog.db", catalog_uri)
    if table_format:
        text = text.replace(
            "    warehouse: ./warehouse\n", f"    warehouse: ./warehouse\n    format: {table_format}\n", 1
        )
        assert f"format: {table_format}" in text
    config.write_text(text)
    return root


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A database of its own on the test PostgreSQL server, dropped afterwards."""
    from lake_support import create_database, drop_database
    from tests_support import service_url

    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    try:
        yield url
    finally:
        drop_database(url)


def _run(root: Path, producer: Producer, spec: str, log: Path, new: int) -> str:
    """One server: armed with `spec`, it sends `new` batches more (and the retries) and ends, by the
    failpoint or by a SIGTERM once it has nothing to do; its stderr."""
    proc = start_serve(root, producer.port, spec, log)
    if wait_healthy(producer.port, proc):
        producer.run(new, proc)
        if proc.poll() is None:  # give commit-path points their timer commit, then a clean stop
            try:
                proc.wait(timeout=1.0)
            except Exception:
                proc.terminate()
    _, err = proc.communicate(timeout=90)
    text = err.decode(errors="replace")
    assert proc.returncode in (0, -9), f"{spec or 'a run'} exited {proc.returncode}: {text[-3000:]}"
    return text


def _setup(root: Path, producer: Producer, point: str, log: Path, check: bool = True) -> None:
    """Reach the point at all: trimming needs an older committed segment (each start rolls a new
    one); recovery needs acknowledged entries the last run did not commit."""
    if point.startswith("wal.trim."):
        _run(root, producer, "", log, 1)
    if point.startswith("http.recover."):
        before = len(hits(str(log)))
        _run(root, producer, "http.commit.before=kill", log, 1)
        assert not check or hits(str(log))[before:] == ["http.commit.before"]


@pytest.mark.parametrize("point", _points())
def test_the_collector_crashed_at_a_failpoint_loses_and_doubles_nothing(tmp_path: Path, point: str) -> None:
    """SQLite catalog: each point on a project of its own, crashed twice, then a clean run."""
    _crash_twice_then_finish(tmp_path, point, "durable")


COMMITTED_POINTS = ["http.commit.after", "http.before_answer"]  # committed, not yet answered


@pytest.mark.parametrize("point", COMMITTED_POINTS)
def test_with_ack_committed_a_crash_at_a_failpoint_loses_and_doubles_nothing(tmp_path: Path, point: str) -> None:
    """`ack: committed` answers after the Iceberg commit: the points around it, crashed twice."""
    _crash_twice_then_finish(tmp_path, point, "committed")


def _crash_twice_then_finish(tmp_path: Path, point: str, ack: str) -> None:
    root, log = _project(tmp_path, ack=ack), tmp_path / "hits.log"
    producer = Producer(free_port())
    _setup(root, producer, point, log)
    before = len(hits(str(log)))
    fired = []
    for n, action in enumerate(ARMED):
        _run(root, producer, f"{point}={action}", log, PER_RUN)
        now = hits(str(log))
        fired.append(now[before:].count(point))
        before = len(now)
        if n == 0 and not fired[0]:
            assert point in OFF_PATH, f"{point} did not fire in the first run: {now}"
            pytest.skip(f"{point} is not on the HTTP collector's path")
    assert fired[0] == 1
    _finish(root, producer)


def test_the_collector_on_postgresql_crashed_at_every_failpoint_in_turn(tmp_path: Path, postgres_uri: str) -> None:
    """PostgreSQL catalog: one project crashed at each point in turn (each process start costs
    seconds here), then a clean run; every point on the collector's path must have fired."""
    points = _points()
    root, log = _project(tmp_path, postgres_uri), tmp_path / "hits.log"
    producer = Producer(free_port(), total=PER_RUN * (len(points) + 6))
    missed = []
    for point in points:
        _setup(root, producer, point, log, check=False)
        before = len(hits(str(log)))
        _run(root, producer, f"{point}=kill", log, PER_RUN)
        if point not in hits(str(log))[before:] and point not in OFF_PATH:
            missed.append(point)
    assert not missed, f"these points did not fire: {missed}"
    _finish(root, producer)


def _finish(root: Path, producer: Producer) -> None:
    """A run without failpoints is not blocked; it takes every batch, answers every retry as the
    first time, and leaves Bronze and quarantine exact."""
    proc = start_serve(root, producer.port)
    if not wait_healthy(producer.port, proc):
        raise AssertionError(f"the run after the crashes did not start: {proc.communicate()[1].decode()[-3000:]}")
    for _ in range(3):
        producer.run(producer.total, proc)
    retried = _retry_all(producer.port, producer.total)
    stop_serve(proc)
    assert len(producer.answers) == producer.total
    for batch_id, first in producer.answers.items():
        assert retried[batch_id]["duplicate"] is True
        assert retried[batch_id]["results"] == first["results"], batch_id
    _assert_exact(root, producer.total)


def _retry_all(port: int, total: int) -> dict[str, dict[str, Any]]:
    out = {}
    with httpx.Client(timeout=30) as client:
        for b in range(total):
            answer = client.post(
                f"http://127.0.0.1:{port}/v1/streams/events/records",
                json=_records(b),
                headers={"Lakestack-Batch-Id": _batch_id(b)},
            )
            assert answer.status_code == 200, answer.text
            out[_batch_id(b)] = answer.json()
    return out


def test_the_collector_on_delta_tables_crashed_at_every_failpoint_in_turn(tmp_path: Path) -> None:
    """Delta tables (ADR 35): one project crashed at each point in turn, then a clean run; every
    point on the collector's path must have fired."""
    pytest.importorskip("deltalake")
    points = _points()
    root, log = _project(tmp_path, table_format="delta"), tmp_path / "hits.log"
    producer = Producer(free_port(), total=PER_RUN * (len(points) + 6))
    missed = []
    for point in points:
        _setup(root, producer, point, log, check=False)
        before = len(hits(str(log)))
        _run(root, producer, f"{point}=kill", log, PER_RUN)
        if point not in hits(str(log))[before:] and point not in OFF_PATH:
            missed.append(point)
    assert not missed, f"these points did not fire: {missed}"
    _finish(root, producer)
    assert (root / "warehouse" / "bronze" / "events" / "_delta_log").is_dir()


def _assert_exact(root: Path, total: int) -> None:
    from lakestack.pipeline.lake import Lake

    valid = {f"e{b * 100 + i}" for b in range(total) for i in range(RECORDS) if i != 2}
    invalid = {f"e{b * 100 + 2}" for b in range(total)}
    lake = Lake.open(root)
    bronze = lake.read("bronze.events", columns=["event_id"]).column("event_id").to_pylist()
    assert [k for k, v in Counter(bronze).items() if v > 1] == [], "a record landed twice"
    assert set(bronze) == valid
    bad = [json.loads(r)["event_id"] for r in lake.read("quarantine.events").column("_raw").to_pylist()]
    assert sorted(bad) == sorted(invalid), "quarantine does not hold each invalid record once"
    for name, expected in (("bronze.events", len(valid)), ("quarantine.events", len(invalid))):
        assert _duckdb_rows(lake, name) == expected, f"{name} reads differently through DuckDB"


def _duckdb_rows(lake: Any, name: str) -> int:
    """Rows of a table by DuckDB over the Parquet files pyiceberg plans (no delete files here)."""
    import duckdb

    tasks = list(lake.warehouse.load(name).scan().plan_files())
    assert all(not t.delete_files for t in tasks)
    files = [t.file.file_path.removeprefix("file://") for t in tasks]
    row = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()
    assert row is not None
    return int(row[0])

"""OpenLineage transports against real files, processes and a real loopback HTTP server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lakestack.config import OpenLineageConfig
from lakestack.pipeline.events import CheckOutcome, DatasetIO, RunEvents
from lakestack.pipeline.openlineage import FileTransport, HttpTransport, OpenLineageListener, create_listener
from openlineage_support import validate_event

SQL = (
    "SELECT o.order_id, o.qty * c.discount AS net "
    "FROM silver.orders AS o JOIN silver.customers AS c USING (customer_id)"
)


def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Lineage:
    """A Marquez-like endpoint: POST /api/v1/lineage, answers as told, keeps what it accepted."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self.status = 201
        self.delay = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.attempts += 1
                time.sleep(owner.delay)
                if self.path == "/api/v1/lineage" and owner.status < 300:
                    owner.received.append(json.loads(body))
                    owner.headers.append(dict(self.headers))
                self.send_response(owner.status if self.path == "/api/v1/lineage" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Lineage]:
    server = Lineage()
    yield server
    server.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(n: int) -> dict[str, Any]:
    return {"eventType": "START", "n": n, "payload": "x" * 200}


def _http(url: str, tmp_path: Path, **settings: Any) -> HttpTransport:
    config = OpenLineageConfig(transport="http", url=url, **{"timeout": 0.5, "retries": 1, **settings})
    return HttpTransport(config, spool=tmp_path / ".lakestack" / "openlineage-spool.ndjson")


def test_an_endpoint_that_is_down_then_back_gets_every_event_in_order(tmp_path: Path) -> None:
    port = _closed_port()
    transport = _http(f"http://127.0.0.1:{port}", tmp_path)
    started = time.perf_counter()
    for n in range(300):
        transport.emit(_event(n))
    emitting = time.perf_counter() - started
    assert emitting < 1.0, f"300 events took {emitting:.2f} s to hand over while the endpoint was down"
    assert _wait(lambda: transport.spool.path.exists() and transport.spool._count() == 300, 30)
    server = Lineage(port)  # the endpoint comes back on the same port
    try:
        assert _wait(lambda: len(server.received) == 300, 90), f"{len(server.received)} of 300 delivered"
        for n in range(300, 310):  # and new events follow the spooled ones
            transport.emit(_event(n))
        assert _wait(lambda: len(server.received) == 310, 30)
        transport.close()
        assert [e["n"] for e in server.received] == list(range(310))  # none lost, none doubled, in order
        assert transport.dropped == 0 and transport.spool._count() == 0
    finally:
        server.stop()


def test_a_slow_or_failing_endpoint_never_slows_the_job(endpoint: Lineage, tmp_path: Path) -> None:
    endpoint.delay = 2.0  # beyond the 0.5 s timeout
    transport = _http(endpoint.url, tmp_path, retries=0)
    started = time.perf_counter()
    for n in range(50):
        transport.emit(_event(n))
    assert time.perf_counter() - started < 1.0
    closing = time.perf_counter()
    transport.close()  # bounded: one attempt's timeout + 1 s, then the rest is spooled
    assert time.perf_counter() - closing < 5.0
    assert transport.spool._count() + len(endpoint.received) >= 49  # the one in flight may land either way
    endpoint.delay, endpoint.status = 0.0, 500
    attempts = endpoint.attempts
    later = _http(endpoint.url, tmp_path, retries=0)  # a later process: 500s keep the spool
    assert _wait(lambda: endpoint.attempts > attempts)
    assert later.spool._count() >= 49 and len(endpoint.received) <= 1
    endpoint.status = 200
    assert _wait(lambda: later.spool._count() == 0, 60)
    later.close()
    numbers = sorted(e["n"] for e in endpoint.received)
    assert set(numbers) == set(range(50))  # every event arrived (the slow one maybe twice: at-least-once)


def test_the_spool_is_bounded_and_drops_are_counted(tmp_path: Path) -> None:
    transport = _http(f"http://127.0.0.1:{_closed_port()}", tmp_path, retries=0, spool_max_events=5)
    for n in range(20):
        transport.emit(_event(n))
    transport.close()
    assert transport.spool._count() == 5
    assert transport.dropped == 15
    kept = [json.loads(line)["n"] for line in transport.spool.path.read_text().splitlines()]
    assert kept == [0, 1, 2, 3, 4]  # the oldest are kept: a START is not lost for its COMPLETE


def test_the_queue_is_bounded_and_drops_are_counted(endpoint: Lineage, tmp_path: Path) -> None:
    endpoint.delay = 0.3
    transport = _http(endpoint.url, tmp_path, queue_max_events=3, timeout=5.0)
    for n in range(30):
        transport.emit(_event(n))
    assert transport.dropped >= 20  # the sender holds one; the queue three
    transport.close(wait=10)
    assert len(endpoint.received) + transport.spool._count() + transport.dropped == 30


def test_api_key_from_a_secret_and_a_refused_event_is_not_resent(
    endpoint: Lineage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEAGE_KEY", "s3cr3t-token-value")
    transport = _http(endpoint.url, tmp_path, api_key_secret="LINEAGE_KEY")
    transport.emit(_event(1))
    assert _wait(lambda: len(endpoint.received) == 1)
    assert endpoint.headers[0]["Authorization"] == "Bearer s3cr3t-token-value"
    endpoint.status = 422
    transport.emit(_event(2))
    assert _wait(lambda: transport.rejected == 1)
    transport.close()
    assert transport.spool._count() == 0 and len(endpoint.received) == 1


def test_a_missing_api_key_secret_spools_events_and_never_fails_the_job(
    endpoint: Lineage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NO_SUCH_LINEAGE_KEY", raising=False)
    transport = _http(endpoint.url, tmp_path, api_key_secret="NO_SUCH_LINEAGE_KEY", retries=0)
    assert "secret 'NO_SUCH_LINEAGE_KEY' is not set" in caplog.text
    for n in range(3):
        transport.emit(_event(n))
    transport.close()
    assert transport.spool._count() == 3 and endpoint.attempts == 0  # kept for when the secret is set
    monkeypatch.setenv("NO_SUCH_LINEAGE_KEY", "now-it-is-set")
    later = _http(endpoint.url, tmp_path, api_key_secret="NO_SUCH_LINEAGE_KEY")
    assert _wait(lambda: len(endpoint.received) == 3)
    later.close()
    assert [e["n"] for e in endpoint.received] == [0, 1, 2]
    assert {h["Authorization"] for h in endpoint.headers} == {"Bearer now-it-is-set"}


_WRITER = """
import sys
from pathlib import Path
from lakestack.pipeline.openlineage import FileTransport
transport = FileTransport(Path(sys.argv[1]))
for n in range(int(sys.argv[3])):
    transport.emit({"writer": sys.argv[2], "n": n, "pad": "y" * 70_000})  # lines larger than a pipe buffer
"""


def test_file_transport_lines_from_concurrent_processes_never_interleave(tmp_path: Path) -> None:
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"w{i}", "150"]) for i in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in writers)
    (path,) = tmp_path.glob("*.ndjson")
    assert path.name == f"{datetime.now(UTC):%Y-%m-%d}.ndjson" or path.name < f"{datetime.now(UTC):%Y-%m-%d}.ndjson"
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    events = [json.loads(line) for line in lines[:-1]]  # every line whole JSON
    assert len(events) == 600
    for i in range(4):
        assert [e["n"] for e in events if e["writer"] == f"w{i}"] == list(range(150))


def test_a_job_tree_leaves_schema_valid_events_under_the_warehouse(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    listener = create_listener(
        OpenLineageConfig(), project="shop", environment="dev", warehouse=warehouse.as_uri(), root=tmp_path
    )
    assert isinstance(listener, OpenLineageListener) and isinstance(listener.transport, FileTransport)
    events = RunEvents([listener])
    orders = (("order_id", "string"), ("customer_id", "string"), ("qty", "long"))
    with events.job("run", "run", lake_run_id="20261202T000000Z-abcd") as run:
        with events.job("ingest", "ingest.orders", parent=run.run) as job:
            job.dataset(DatasetIO("landing.orders", "input", rows=10, bytes=400, source="landing/orders"))
            job.dataset(DatasetIO("bronze.orders", "output", snapshot_id=1, rows=9))
            job.dataset(DatasetIO("quarantine.orders", "output", snapshot_id=2, rows=1, quarantined=1))
        with events.job("promote", "promote.orders", parent=run.run) as job:
            job.dataset(DatasetIO("bronze.orders", "input", snapshot_id=1, rows=9))
            job.dataset(DatasetIO("silver.orders", "output", snapshot_id=3, rows=9, columns=orders))
        with events.job("check", "check.silver.orders", parent=run.run) as job:
            job.check(CheckOutcome("silver.orders", "unique(order_id)", "unique", True, "fail", ("order_id",), 0))
        with events.job("build", "build.net", parent=run.run, sql=SQL, source_file="models/gold/net.sql") as job:
            job.dataset(DatasetIO("silver.orders", "input", snapshot_id=3, columns=orders))
            job.dataset(
                DatasetIO(
                    "silver.customers",
                    "input",
                    snapshot_id=4,
                    columns=(("customer_id", "string"), ("discount", "double")),
                )
            )
            job.dataset(
                DatasetIO(
                    "gold.net", "output", snapshot_id=5, rows=9, columns=(("order_id", "string"), ("net", "double"))
                )
            )
        with pytest.raises(RuntimeError), events.job("build", "build.broken", parent=run.run, sql="SELECT 1/0"):
            raise RuntimeError("division by zero")
    events.close()
    assert events.listener_errors == 0
    (path,) = (warehouse / "_lakestack" / "lineage").glob("*.ndjson")
    written = [json.loads(line) for line in path.read_text().splitlines()]
    for event in written:
        validate_event(event)
    ends = {e["job"]["name"]: e for e in written if e["eventType"] in ("COMPLETE", "FAIL")}
    assert [e["eventType"] for e in written].count("START") == 6 and len(ends) == 6
    names = lambda e, side: sorted(d["name"] for d in e[side])  # noqa: E731
    assert names(ends["ingest.orders"], "inputs") == ["landing/orders"]
    assert names(ends["ingest.orders"], "outputs") == ["bronze.orders", "quarantine.orders"]
    assert names(ends["promote.orders"], "inputs") == ["bronze.orders"]
    assert names(ends["promote.orders"], "outputs") == ["silver.orders"]
    assert names(ends["build.net"], "inputs") == ["silver.customers", "silver.orders"]
    (gold,) = ends["build.net"]["outputs"]
    net = gold["facets"]["columnLineage"]["fields"]["net"]["inputFields"]
    assert sorted((f["name"], f["field"]) for f in net) == [("silver.customers", "discount"), ("silver.orders", "qty")]
    assert ends["build.broken"]["eventType"] == "FAIL"
    assert ends["build.broken"]["run"]["facets"]["errorMessage"]["message"] == "division by zero"
    root_id = ends["run"]["run"]["runId"]
    for name in ("ingest.orders", "promote.orders", "build.net", "check.silver.orders"):
        assert ends[name]["run"]["facets"]["parent"]["root"]["run"]["runId"] == root_id
    assert ends["check.silver.orders"]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]["success"]


def test_transport_none_adds_no_listener(tmp_path: Path) -> None:
    config = OpenLineageConfig(transport="none")
    assert create_listener(config, project="shop", environment="dev", warehouse="s3://b/wh", root=tmp_path) is None


def test_the_job_thread_only_queues_and_close_writes_everything(tmp_path: Path) -> None:
    """Building events (sqlglot's column lineage of a model) happens off the job's thread."""
    from lakestack.lineage.events import EventContext

    context = EventContext("https://github.com/lakestack/lakestack/tree/v0.1.0", "shop.dev", "file:///wh", tmp_path)
    listener = OpenLineageListener(context, FileTransport(tmp_path / "lineage"))
    events = RunEvents([listener])
    wide = ", ".join(f"o.c{i} + c.d{i} AS x{i}" for i in range(60))
    sql = f"SELECT {wide} FROM silver.orders AS o JOIN silver.customers AS c ON o.k = c.k"
    orders = (*((f"c{i}", "long") for i in range(60)), ("k", "string"))
    customers = (*((f"d{i}", "long") for i in range(60)), ("k", "string"))
    started = time.perf_counter()
    for n in range(6):
        with events.job("build", f"build.m{n}", sql=sql) as job:
            job.dataset(DatasetIO("silver.orders", "input", columns=orders))
            job.dataset(DatasetIO("silver.customers", "input", columns=customers))
            job.dataset(DatasetIO(f"gold.m{n}", "output", rows=1, columns=tuple((f"x{i}", "long") for i in range(60))))
    on_job_thread = time.perf_counter() - started
    events.close()
    built = time.perf_counter() - started
    (path,) = (tmp_path / "lineage").glob("*.ndjson")
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(written) == 12 and listener.dropped == 0
    lineage = written[-1]["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert sorted((f["name"], f["field"]) for f in lineage["x59"]["inputFields"]) == [
        ("silver.customers", "d59"),
        ("silver.orders", "c59"),
    ]
    assert on_job_thread < built / 3, f"jobs took {on_job_thread:.2f} s of {built:.2f} s building events"


def test_a_full_builder_queue_drops_and_counts(tmp_path: Path) -> None:
    from lakestack.lineage.events import EventContext

    context = EventContext("https://github.com/lakestack/lakestack/tree/v0.1.0", "shop.dev", "file:///wh", tmp_path)
    listener = OpenLineageListener(context, FileTransport(tmp_path / "lineage"), max_pending=2)
    events = RunEvents([listener])
    sql = "SELECT " + ", ".join(f"a + {i} AS x{i}" for i in range(80)) + " FROM silver.t"
    for n in range(30):
        with events.job("build", f"build.m{n}", sql=sql) as job:
            job.dataset(DatasetIO("silver.t", "input", columns=(("a", "long"),)))
    events.close()
    (path,) = (tmp_path / "lineage").glob("*.ndjson")
    written = len(path.read_text().splitlines())
    assert listener.dropped > 0 and written + listener.dropped == 60


def test_a_build_after_a_promotion_resolves_star_with_the_columns_the_promotion_reported(tmp_path: Path) -> None:
    listener = create_listener(
        OpenLineageConfig(), project="shop", environment="dev", warehouse=(tmp_path / "wh").as_uri(), root=tmp_path
    )
    assert listener is not None
    events = RunEvents([listener])
    orders = (("order_id", "string"), ("customer_id", "string"), ("qty", "long"))
    customers = (("customer_id", "string"), ("country", "string"))
    with events.job("run", "run") as run:
        for name, columns in (("orders", orders), ("customers", customers)):
            with events.job("promote", f"promote.{name}", parent=run.run) as job:
                job.dataset(DatasetIO(f"silver.{name}", "output", snapshot_id=1, columns=columns))
        sql = "SELECT * FROM silver.orders JOIN silver.customers USING (customer_id)"
        with events.job("build", "build.wide", parent=run.run, sql=sql) as job:
            job.dataset(DatasetIO("silver.orders", "input", snapshot_id=1))  # no columns: as `Lake` reports
            job.dataset(DatasetIO("silver.customers", "input", snapshot_id=1))
            job.dataset(DatasetIO("gold.wide", "output", snapshot_id=2))
    events.close()
    (path,) = (tmp_path / "wh" / "_lakestack" / "lineage").glob("*.ndjson")
    written = [json.loads(line) for line in path.read_text().splitlines()]
    (build,) = [e for e in written if e["job"]["name"] == "build.wide" and e["eventType"] == "COMPLETE"]
    validate_event(build)
    fields = build["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert set(fields) == {"customer_id", "order_id", "qty", "country"}
    assert [(f["name"], f["field"]) for f in fields["country"]["inputFields"]] == [("silver.customers", "country")]
    schema = {d["name"]: [f["name"] for f in d["facets"]["schema"]["fields"]] for d in build["inputs"]}
    assert schema == {
        "silver.orders": ["order_id", "customer_id", "qty"],
        "silver.customers": ["customer_id", "country"],
    }


_NEVER_CLOSED = """
import sys
from pathlib import Path
from lakestack.config import OpenLineageConfig
from lakestack.pipeline.events import DatasetIO, RunEvents
from lakestack.pipeline.openlineage import create_listener
root = Path(sys.argv[1])
listener = create_listener(OpenLineageConfig(), project="shop", environment="dev",
                           warehouse=(root / "wh").as_uri(), root=root)
events = RunEvents([listener])
for n in range(50):
    with events.job("promote", f"promote.t{n}") as job:
        job.dataset(DatasetIO(f"silver.t{n}", "output", rows=n))
# no events.close(): the process ends with events still queued
"""


def test_a_process_that_never_closes_its_lake_still_writes_its_events(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", _NEVER_CLOSED, str(tmp_path)], check=True, timeout=120)
    (path,) = (tmp_path / "wh" / "_lakestack" / "lineage").glob("*.ndjson")
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(written) == 100
    assert sorted(e["job"]["name"] for e in written if e["eventType"] == "COMPLETE") == sorted(
        f"promote.t{n}" for n in range(50)
    )


def test_an_idle_builder_thread_ends_and_the_next_event_starts_another(tmp_path: Path) -> None:
    listener = create_listener(
        OpenLineageConfig(), project="shop", environment="dev", warehouse=(tmp_path / "wh").as_uri(), root=tmp_path
    )
    assert listener is not None
    events = RunEvents([listener])
    with events.job("promote", "promote.a"):
        pass
    assert _wait(lambda: listener._thread is None, 30)  # ended after IDLE_S without events
    with events.job("promote", "promote.b"):
        pass
    events.close()
    (path,) = (tmp_path / "wh" / "_lakestack" / "lineage").glob("*.ndjson")
    assert [json.loads(line)["job"]["name"] for line in path.read_text().splitlines()] == [
        "promote.a",
        "promote.a",
        "promote.b",
        "promote.b",
    ]


def test_a_projects_environment_chooses_the_listener(project: Path) -> None:
    from lakestack.pipeline.openlineage import lake_listeners
    from lakestack.pipeline.project import Project

    (listener,) = lake_listeners(Project.load(project), "dev")
    assert isinstance(listener, OpenLineageListener) and isinstance(listener.transport, FileTransport)
    assert listener.transport.directory == (project / "warehouse" / "_lakestack" / "lineage").resolve()
    assert listener.context.job_namespace == "shop.dev"
    assert listener.context.warehouse == (project / "warehouse").resolve().as_uri()
    text = (project / "lakestack.yaml").read_text()
    line = "    warehouse: ./warehouse\n"
    off = text.replace(line, line + "    openlineage: {transport: none}\n")
    assert off != text
    (project / "lakestack.yaml").write_text(off)
    assert lake_listeners(Project.load(project), "dev") == []
    listener.close()


def test_a_refused_command_leaves_no_lineage_in_the_lake(tmp_path: Path) -> None:
    """Like run records: a command refused before it touched data (exit 2) writes nothing."""
    from lakestack.errors import UsageError

    warehouse = tmp_path / "wh"
    listener = create_listener(
        OpenLineageConfig(), project="shop", environment="dev", warehouse=warehouse.as_uri(), root=tmp_path
    )
    assert listener is not None
    events = RunEvents([listener])
    with (
        pytest.raises(UsageError),
        events.job("run", "ingest") as top,
        events.job("ingest", "ingest.nope", parent=top.run),
    ):
        raise UsageError("unknown source 'nope'")
    with pytest.raises(RuntimeError), events.job("run", "build"):  # a failure that is not a refusal
        raise RuntimeError("disk full")
    with events.job("run", "promote") as top:
        with events.job("promote", "promote.a", parent=top.run) as job:
            job.dataset(DatasetIO("silver.a", "output", rows=1))
        assert _wait(lambda: (warehouse / "_lakestack" / "lineage").exists(), 30)  # released by the dataset
    events.close()
    (path,) = (warehouse / "_lakestack" / "lineage").glob("*.ndjson")
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["eventType"], e["job"]["name"]) for e in written] == [
        ("START", "build"),
        ("FAIL", "build"),
        ("START", "promote"),
        ("START", "promote.a"),
        ("COMPLETE", "promote.a"),
        ("COMPLETE", "promote"),
    ]
    for event in written:
        validate_event(event)
    start, end = written[2], written[5]
    # each event carries when it happened (held or not), not when it was sent
    assert start["eventTime"] == start["run"]["facets"]["nominalTime"]["nominalStartTime"]
    assert end["eventTime"] == end["run"]["facets"]["nominalTime"]["nominalEndTime"]


def test_a_northwind_run_leaves_valid_events_chaining_ingest_silver_gold(tmp_path: Path) -> None:
    """`lakestack example northwind` + a run: the NDJSON under the warehouse is schema-valid, and
    each job's inputs are the outputs (same snapshot ids) of the jobs before it."""
    from lakestack.pipeline.lake import Lake

    folder = tmp_path / "nw"
    subprocess.run(
        [sys.executable, "-m", "lakestack", "example", "northwind", str(folder), "--orders", "300", "--days", "3"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    lake = Lake.open(folder)
    assert [type(listener) for listener in lake.events.listeners].count(OpenLineageListener) == 1  # by default
    lake.run()
    lake.close()
    assert lake.events.listener_errors == 0
    (path,) = (folder / "warehouse" / "_lakestack" / "lineage").glob("*.ndjson")
    written = [json.loads(line) for line in path.read_text().splitlines()]
    for event in written:
        validate_event(event)
    ends = [e for e in written if e["eventType"] != "START"]
    assert len(ends) == len(written) // 2 and all(e["eventType"] == "COMPLETE" for e in ends)
    by_job = {e["job"]["name"]: e for e in ends}
    warehouse = (folder / "warehouse").resolve().as_uri()

    def names(event: dict[str, Any], side: str) -> list[str]:
        return sorted(d["name"] for d in event[side])

    assert names(by_job["ingest.orders"], "inputs") == ["landing/orders"]
    assert by_job["ingest.orders"]["inputs"][0]["namespace"] == folder.resolve().as_uri()
    assert "bronze.orders" in names(by_job["ingest.orders"], "outputs")
    assert names(by_job["promote.orders"], "inputs") == ["bronze.orders"]
    assert names(by_job["promote.orders"], "outputs") == ["silver.orders"]
    assert names(by_job["build.fact_sales"], "inputs") == ["silver.fx_rates", "silver.orders"]
    assert names(by_job["build.fact_sales"], "outputs") == ["gold.fact_sales"]
    assert "gold.fact_sales" in names(by_job["build.daily_order_metrics"], "inputs")
    # versions chain: what a job read is the snapshot the last job before it wrote
    latest: dict[str, str] = {}
    chained = 0
    for event in ends:
        for dataset in event["inputs"]:
            version = dataset["facets"].get("version", {}).get("datasetVersion")
            if dataset["namespace"] == warehouse and version and dataset["name"] in latest:
                assert version == latest[dataset["name"]], (event["job"]["name"], dataset["name"])
                chained += 1
        for dataset in event["outputs"]:
            version = dataset["facets"].get("version", {}).get("datasetVersion")
            if version:
                latest[dataset["name"]] = version
    assert chained >= 10
    # column lineage of the Gold fact table names its upstream columns across the join
    (fact,) = by_job["build.fact_sales"]["outputs"]
    fields = fact["facets"]["columnLineage"]["fields"]
    usd = {(f["name"], f["field"]) for f in fields["amount_usd"]["inputFields"]}
    assert usd == {
        ("silver.fx_rates", "rate"),
        ("silver.orders", "currency"),
        ("silver.orders", "quantity"),
        ("silver.orders", "unit_price"),
    }
    assert {(f["name"], f["field"]) for f in fields["order_id"]["inputFields"]} == {("silver.orders", "order_id")}
    assert all(f["namespace"] == warehouse for f in fields["amount_usd"]["inputFields"])
    root = by_job["run"]["run"]["runId"]
    assert all(e["run"]["facets"]["parent"]["root"]["run"]["runId"] == root for e in ends if e["job"]["name"] != "run")


def test_a_lakestack_run_with_the_lineage_server_down_spools_and_a_later_command_delivers(tmp_path: Path) -> None:
    """The CLI end to end: the server is down for a whole `lakestack run` (which neither fails nor
    waits for it, beyond one bounded attempt at exit); the next command, with the server back,
    sends every spooled event first, in order, then its own."""
    import yaml

    from lake_support import cli, small_northwind

    project = small_northwind(tmp_path / "nw", orders=200)
    port = _closed_port()
    config = yaml.safe_load((project / "lakestack.yaml").read_text(encoding="utf-8"))
    config["environments"]["dev"]["openlineage"] = {
        "transport": "http",
        "url": f"http://127.0.0.1:{port}",
        "timeout": 1.0,
        "retries": 1,
    }
    (project / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    started = time.perf_counter()
    ran = cli(project, "run", "--json")
    wall = time.perf_counter() - started
    assert ran.returncode == 0, ran.stderr
    run_s = json.loads(ran.stdout)["duration_s"]
    assert wall - run_s < 15, f"the process took {wall:.1f} s for a {run_s:.1f} s run"  # start-up + one bounded close
    spool = project / ".lakestack" / "openlineage-spool.ndjson"
    spooled = [json.loads(line) for line in spool.read_text(encoding="utf-8").splitlines()]
    assert len(spooled) >= 24 and [e["eventType"] for e in spooled].count("START") == len(spooled) // 2
    runs = json.loads(cli(project, "runs", "--json").stdout)
    assert [r["listener_drops"] for r in runs if r["parent_run_id"] is None] == [0]  # kept, not lost
    jobs = 1 + len(config["sources"])  # the ingest and one job per source, each a START and a COMPLETE
    server = Lineage(port)
    try:
        assert cli(project, "ingest").returncode == 0  # nothing new lands; its events follow the spooled ones
        assert _wait(lambda: len(server.received) >= len(spooled) + 2 * jobs, 60), len(server.received)
    finally:
        server.stop()
    assert server.received[: len(spooled)] == spooled  # none lost, none doubled, in order
    later = server.received[len(spooled) :]
    assert len(later) == 2 * jobs and {e["job"]["name"] for e in later} >= {"ingest", "ingest.orders"}
    for event in server.received:
        validate_event(event)
    assert not spool.read_text(encoding="utf-8")

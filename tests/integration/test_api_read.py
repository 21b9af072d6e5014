"""The read API of `lakestack serve` (issue 14 item 2) over one small Northwind project built once:
every endpoint with its status codes, paging and problem details (400/404/413/422), masking for a
non-engineer key, a denied dataset answered exactly like an unknown one, every call audited.

In process (FastAPI's TestClient over the real app, real keys, real warehouse); one test starts a
real `lakestack serve` on loopback."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, small_northwind
from serve_support import free_port, start_serve, stop_serve, wait_healthy

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = small_northwind(tmp_path_factory.mktemp("api") / "nw", orders=300, days=2)
    ran = cli(root, "run")
    assert ran.returncode == 4, ran.stderr  # the small data fails daily_order_metrics' gate: a failing check to show
    assert cli(root, "sla").returncode in (0, 4)  # stores the SLA results the overview shows
    return root


@pytest.fixture(scope="module")
def keys(root: Path) -> dict[str, str]:
    from lakestack.pipeline.apikeys import create_key
    from lakestack.pipeline.lake import Lake

    lake = Lake.open(root)
    try:
        return {
            role: create_key(lake, role, [], f"{role}-key", "test")[1] for role in ("engineer", "analyst", "business")
        }
    finally:
        lake.close()


@pytest.fixture(scope="module")
def client(root: Path, keys: dict[str, str]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from lakestack.pipeline.lake import Lake
    from lakestack.serve.api import create_app

    lake = Lake.open(root)
    with TestClient(create_app(lake, schedules=[])) as c:
        yield c
    lake.close()


def _as(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


def _problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] == f"https://lakestack.dev/problems/{kind}"
    assert "Traceback" not in response.text
    return body


def test_health_ready_and_a_key_for_everything_else(client: Any, keys: dict[str, str]) -> None:
    for path in ("/healthz", "/health"):
        assert client.get(path).json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    for path in ("/v1/datasets", "/v1/runs", "/v1/overview", "/v1/lineage", "/v1/checks"):
        _problem(client.get(path), 401, "unauthorized")
    _problem(client.post("/v1/query", json={"sql": "SELECT 1"}), 401, "unauthorized")
    bad_key = {"Authorization": "Bearer lsk_nope_nope"}
    _problem(client.get("/v1/datasets", headers=bad_key), 401, "unauthorized")
    _problem(client.get("/v1/nothing-here", headers=_as(keys, "engineer")), 404, "not-found")
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/datasets/{name}/rows", "/v1/query", "/v1/runs/{run_id}", "/v1/lineage/{dataset}", "/readyz"):
        assert path in paths


def test_readyz_is_503_until_the_collectors_started(root: Path) -> None:
    from fastapi.testclient import TestClient

    from lakestack.pipeline.lake import Lake
    from lakestack.serve.api import create_app

    lake = Lake.open(root)
    app = create_app(lake, schedules=[])
    not_started = TestClient(app)  # outside `with`: the lifespan (collectors, scheduler) has not run
    _problem(not_started.get("/readyz"), 503, "not-ready")
    assert not_started.get("/healthz").status_code == 200
    with TestClient(app) as started:
        assert started.get("/readyz").status_code == 200
    lake.close()


def test_datasets_listed_filtered_and_described(client: Any, keys: dict[str, str]) -> None:
    eng = _as(keys, "engineer")
    names = [d["name"] for d in client.get("/v1/datasets", headers=eng).json()["datasets"]]
    assert {"bronze.orders", "silver.orders", "silver.customers", "gold.fact_sales", "quarantine.orders"} <= set(names)
    assert not any(n.startswith("_lakestack.") for n in names)
    gold = client.get("/v1/datasets", params={"layer": "gold"}, headers=eng).json()["datasets"]
    assert {d["name"] for d in gold} == {"gold.fact_sales", "gold.dim_customers"}
    assert [d["name"] for d in client.get("/v1/datasets?q=fact_sa", headers=eng).json()["datasets"]] == [
        "gold.fact_sales"
    ]
    _problem(client.get("/v1/datasets?layer=platinum", headers=eng), 422, "invalid-parameters")

    orders = client.get("/v1/datasets/silver.orders", headers=eng).json()
    assert orders["layer"] == "silver" and orders["rows"] > 0 and orders["contract"]["name"] == "orders"
    assert isinstance(orders["snapshot_id"], str) and orders["last_commit"].endswith("Z") and orders["age_s"] >= 0
    assert orders["snapshots"][0]["snapshot_id"] == orders["snapshot_id"]
    assert orders["snapshots"][0]["rows"] == orders["rows"] and orders["snapshots"][0]["run_id"]
    columns = {c["name"]: c for c in orders["schema"]}
    assert columns["order_id"] == {
        "name": "order_id",
        "type": "string",
        "nullable": False,
        "pii": None,
        "masking": None,
    }
    assert orders["checks"] and all(c["status"] in ("pass", "fail", "warn", "error") for c in orders["checks"])
    assert all(c["dataset"] == "silver.orders" for c in orders["checks"])
    customers = client.get("/v1/datasets/silver.customers", headers=eng).json()
    assert customers["pii"]["email"] == "email"
    _problem(client.get("/v1/datasets/silver.nope", headers=eng), 404, "unknown-dataset")


def test_rows_are_paged(client: Any, keys: dict[str, str]) -> None:
    eng = _as(keys, "engineer")
    total = client.get("/v1/datasets/gold.dim_customers", headers=eng).json()["rows"]
    seen: list[Any] = []
    url: str | None = "/v1/datasets/gold.dim_customers/rows?limit=70"
    while url is not None:
        page = client.get(url, headers=eng).json()
        assert page["total"] == total and len(page["rows"]) <= 70
        seen += page["rows"]
        url = page["next"]
    key = [c["name"] for c in page["columns"]].index("customer_id")
    assert len(seen) == total and len({r[key] for r in seen}) == total
    past = client.get("/v1/datasets/gold.dim_customers/rows?offset=100000", headers=eng).json()
    assert past["rows"] == [] and past["next"] is None
    too_big = _problem(client.get("/v1/datasets/gold.fact_sales/rows?limit=1001", headers=eng), 413, "too-large")
    assert too_big["max"] == 1000
    for bad in ("limit=0", "offset=-1", "limit=many"):
        _problem(client.get(f"/v1/datasets/gold.fact_sales/rows?{bad}", headers=eng), 422, "invalid-parameters")
    _problem(client.get("/v1/datasets/gold.nope/rows", headers=eng), 404, "unknown-dataset")


def test_rows_schema_and_query_are_masked_for_an_analyst(client: Any, keys: dict[str, str]) -> None:
    eng, analyst = _as(keys, "engineer"), _as(keys, "analyst")
    clear = client.get("/v1/datasets/silver.customers/rows?limit=50", headers=eng).json()
    masked = client.get("/v1/datasets/silver.customers/rows?limit=50", headers=analyst).json()
    at = [c["name"] for c in clear["columns"]].index("email")
    assert [c["masking"] for c in masked["columns"] if c["name"] == "email"] == ["partial"]
    emails = [r[at] for r in clear["rows"] if r[at]]
    shown = [r[at] for r in masked["rows"] if r[at]]
    assert emails and shown and not set(emails) & set(shown) and all("***" in e for e in shown)
    schema = {
        c["name"]: c["masking"] for c in client.get("/v1/datasets/silver.customers", headers=analyst).json()["schema"]
    }
    assert schema["email"] == "partial" and schema["customer_id"] is None
    sql = {"sql": "SELECT email FROM silver.customers WHERE email IS NOT NULL ORDER BY customer_id LIMIT 5"}
    queried = [r[0] for r in client.post("/v1/query", json=sql, headers=analyst).json()["rows"]]
    assert queried and all("***" in e for e in queried)
    assert not set(queried) & set(r[0] for r in client.post("/v1/query", json=sql, headers=eng).json()["rows"])


def test_a_denied_dataset_is_answered_like_an_unknown_one(client: Any, keys: dict[str, str]) -> None:
    business = _as(keys, "business")
    listed = {d["name"] for d in client.get("/v1/datasets", headers=business).json()["datasets"]}
    assert listed == {"gold.fact_sales", "gold.dim_customers"}
    for path in ("/v1/datasets/{}", "/v1/datasets/{}/rows", "/v1/lineage/{}"):
        denied = client.get(path.format("silver.customers"), headers=business)
        unknown = client.get(path.format("silver.customerz"), headers=business)
        assert denied.status_code == unknown.status_code == 404
        assert denied.json() == {**unknown.json(), "detail": unknown.json()["detail"].replace("customerz", "customers")}
    denied_q = client.get("/v1/quarantine/orders", headers=business)
    unknown_q = client.get("/v1/quarantine/orderz", headers=business)
    assert denied_q.status_code == unknown_q.status_code == 404
    assert denied_q.json()["detail"] == unknown_q.json()["detail"].replace("orderz", "orders")
    query = client.post("/v1/query", json={"sql": "SELECT * FROM silver.customers"}, headers=business)
    missing = client.post("/v1/query", json={"sql": "SELECT * FROM silver.customerz"}, headers=business)
    assert query.status_code == missing.status_code == 400
    assert query.json()["detail"] == missing.json()["detail"].replace("customerz", "customers")
    nodes = {n["id"] for n in client.get("/v1/lineage", headers=business).json()["nodes"]}
    gold = {"fact_sales", "dim_customers", "daily_order_metrics"}
    assert nodes == {f"gold.{m}" for m in gold} | {f"postgres:analytics.northwind.{m}" for m in gold}


def test_query_formats_paging_and_problems(client: Any, keys: dict[str, str]) -> None:
    import pyarrow as pa

    eng = _as(keys, "engineer")
    sql = "SELECT order_id, order_line FROM silver.orders ORDER BY order_id, order_line"
    everything = client.post("/v1/query", json={"sql": sql, "limit": 10_000}, headers=eng).json()
    assert everything["truncated"] is False and everything["next_offset"] is None
    assert everything["columns"] == [{"name": "order_id", "type": "string"}, {"name": "order_line", "type": "int64"}]
    first = client.post("/v1/query", json={"sql": sql, "limit": 100}, headers=eng).json()
    second = client.post("/v1/query", json={"sql": sql, "limit": 100, "offset": 100}, headers=eng).json()
    assert first["truncated"] is True and first["next_offset"] == 100 and first["elapsed_ms"] >= 0
    assert first["rows"] + second["rows"] == everything["rows"][:200]

    as_csv = client.post("/v1/query", json={"sql": sql, "format": "csv", "limit": 5}, headers=eng)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["lakestack-truncated"] == "true"
    parsed = list(csv.reader(io.StringIO(as_csv.text)))
    assert parsed[0] == ["order_id", "order_line"] and [r[0] for r in parsed[1:]] == [
        r[0] for r in everything["rows"][:5]
    ]
    as_arrow = client.post("/v1/query", json={"sql": sql, "format": "arrow", "limit": 7}, headers=eng)
    table = pa.ipc.open_stream(as_arrow.content).read_all()
    assert as_arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert table.column("order_id").to_pylist() == [r[0] for r in everything["rows"][:7]]

    assert (
        "Table with name nope"
        in _problem(client.post("/v1/query", json={"sql": "SELECT * FROM nope"}, headers=eng), 400, "bad-query")[
            "detail"
        ]
    )
    assert (
        "only one read-only SELECT"
        in _problem(client.post("/v1/query", json={"sql": "DROP TABLE silver.orders"}, headers=eng), 400, "bad-query")[
            "detail"
        ]
    )
    assert (
        "does not parse"
        in _problem(client.post("/v1/query", json={"sql": "SELEC 1"}, headers=eng), 400, "bad-query")["detail"]
    )
    slow = {"sql": "SELECT count(*) FROM range(10000000000) a, range(10) b", "timeout_s": 0.3}
    _problem(client.post("/v1/query", json=slow, headers=eng), 400, "query-timeout")
    _problem(client.post("/v1/query", content=b"{not json", headers=eng), 400, "malformed-request")
    _problem(client.post("/v1/query", json={"sql": "SELECT 1", "limit": 20_000}, headers=eng), 413, "too-large")
    _problem(client.post("/v1/query", json={"sql": "SELECT 1 --" + "x" * 300_000}, headers=eng), 413, "too-large")
    for bad in ({"sql": "SELECT 1", "format": "xml"}, {"sql": "SELECT 1", "offset": -1}, {"sql": ""}, {"query": "x"}):
        _problem(client.post("/v1/query", json=bad, headers=eng), 422, "invalid-parameters")


def test_a_query_waits_for_a_free_slot_then_answers_503(client: Any, keys: dict[str, str]) -> None:
    from lakestack.serve import routes_query

    for _ in range(routes_query.CONCURRENT):  # as if that many long queries were running
        assert routes_query._SLOTS.acquire(timeout=5)
    try:
        busy = client.post("/v1/query", json={"sql": "SELECT 1", "timeout_s": 0.2}, headers=_as(keys, "engineer"))
        assert _problem(busy, 503, "busy") and busy.headers["retry-after"] == "1"
    finally:
        for _ in range(routes_query.CONCURRENT):
            routes_query._SLOTS.release()
    assert client.post("/v1/query", json={"sql": "SELECT 1"}, headers=_as(keys, "engineer")).status_code == 200


def test_runs_listed_and_one_run_shown(client: Any, keys: dict[str, str]) -> None:
    eng = _as(keys, "engineer")
    runs = client.get("/v1/runs", headers=eng).json()["runs"]
    run = next(r for r in runs if r["job"] == "run")
    assert run["status"] == "BLOCKED" and run["parent_run_id"] is None and run["rows_written"] > 0
    assert run["started_at"].endswith("Z") and "daily_order_metrics" in run["error"]
    assert [r["run_id"] for r in client.get("/v1/runs?status=BLOCKED", headers=eng).json()["runs"]] == [run["run_id"]]
    jobs = client.get("/v1/runs?job=promote", headers=eng).json()["runs"]
    assert jobs and all(j["job_type"] == "promote" and j["parent_run_id"] == run["run_id"] for j in jobs)
    assert client.get("/v1/runs?since=1h", headers=eng).json()["runs"]
    assert client.get("/v1/runs?since=2000-01-01&limit=1", headers=eng).json()["runs"][0]["run_id"] == runs[0]["run_id"]
    _problem(client.get("/v1/runs?since=yesterday", headers=eng), 400, "bad-request")
    _problem(client.get("/v1/runs?status=MAYBE", headers=eng), 422, "invalid-parameters")
    _problem(client.get("/v1/runs?limit=-1", headers=eng), 422, "invalid-parameters")

    for ref in (run["run_id"], run["lake_run_id"], run["run_id"][:13]):
        shown = client.get(f"/v1/runs/{ref}", headers=eng).json()
        assert shown["run_id"] == run["run_id"]
    assert {c["job"] for c in shown["children"]} >= {"ingest.orders", "promote.orders", "build.fact_sales"}
    written = {d["dataset"] for d in shown["datasets"] if d["direction"] == "output"}
    assert {"bronze.orders", "silver.orders", "gold.fact_sales"} <= written
    out = next(d for d in shown["datasets"] if d["dataset"] == "gold.fact_sales" and d["direction"] == "output")
    assert isinstance(out["snapshot_out"], str) and out["rows_written"] > 0
    failing = [c for c in shown["checks"] if c["status"] == "fail"]
    assert failing and all(c["dataset"] == "gold.daily_order_metrics" and c["blocking"] for c in failing)
    assert shown["stages"] and all(s["duration_s"] >= 0 for s in shown["stages"])
    _problem(client.get("/v1/runs/no-such-run", headers=eng), 404, "unknown-run")
    business = client.get(f"/v1/runs/{run['run_id']}", headers=_as(keys, "business")).json()
    assert {d["dataset"].split(".")[0] for d in business["datasets"]} == {"gold"}


def test_checks_history_and_failing_rows(client: Any, keys: dict[str, str]) -> None:
    eng = _as(keys, "engineer")
    checks = client.get("/v1/checks", headers=eng).json()["checks"]
    assert checks[0]["status"] == "fail"  # failing first
    failed = client.get("/v1/checks?status=fail", headers=eng).json()["checks"]
    assert {c["dataset"] for c in failed} == {"gold.daily_order_metrics"} and all(c["failing_rows"] for c in failed)
    only = client.get("/v1/checks?dataset=silver.orders", headers=eng).json()["checks"]
    assert only and {c["dataset"] for c in only} == {"silver.orders"}
    _problem(client.get("/v1/checks?status=bad", headers=eng), 422, "invalid-parameters")
    name = failed[0]["name"]
    history = client.get(f"/v1/checks/{name}/history", headers=eng).json()
    assert history["name"] == name and history["history"][0]["status"] == "fail"
    samples = client.get(f"/v1/checks/{name}/failures", headers=eng).json()
    assert samples["run_id"] == failed[0]["run_id"] and samples["rows"] and samples["columns"]
    assert all(len(r) == len(samples["columns"]) for r in samples["rows"])
    # the gate stopped the model's first build: no table says which columns are PII, so only a
    # role that reads every class in clear sees the samples
    assert client.get(f"/v1/checks/{name}/failures", headers=_as(keys, "analyst")).json()["rows"] == []
    _problem(client.get("/v1/checks/no_such_check/history", headers=eng), 404, "unknown-check")
    hidden = client.get("/v1/checks?dataset=silver.orders", headers=_as(keys, "business")).json()["checks"]
    assert hidden == []


def test_lineage_graph_and_one_dataset(client: Any, keys: dict[str, str]) -> None:
    eng = _as(keys, "engineer")
    graph = client.get("/v1/lineage", headers=eng).json()
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds["source:orders"] == "source" and kinds["bronze.orders"] == "bronze"
    assert kinds["silver.orders"] == "silver" and kinds["gold.fact_sales"] == "gold"
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    assert {
        ("source:orders", "bronze.orders"),
        ("bronze.orders", "silver.orders"),
        ("silver.orders", "gold.fact_sales"),
        ("gold.fact_sales", "gold.daily_order_metrics"),
    } <= edges
    assert all(a in kinds and b in kinds for a, b in edges)
    columns = {(c["from"], c["to"]) for c in graph["columns"]}
    assert ("silver.orders.order_id", "gold.fact_sales.order_id") in columns
    published = next(n for n in graph["nodes"] if n["kind"] == "postgres" and n["dataset"] == "gold.fact_sales")
    assert published["name"] == "northwind.fact_sales" and ("gold.fact_sales", published["id"]) in edges

    up = client.get("/v1/lineage/gold.fact_sales?direction=upstream", headers=eng).json()
    assert {n["id"] for n in up["nodes"]} >= {"source:orders", "bronze.orders", "silver.orders", "gold.fact_sales"}
    assert "gold.daily_order_metrics" not in {n["id"] for n in up["nodes"]}
    down = client.get("/v1/lineage/silver.orders?direction=downstream", headers=eng).json()
    assert {n["id"] for n in down["nodes"]} >= {"silver.orders", "gold.fact_sales", "gold.daily_order_metrics"}
    assert "bronze.orders" not in {n["id"] for n in down["nodes"]}
    both = client.get("/v1/lineage/silver.orders", headers=eng).json()
    assert {"bronze.orders", "gold.fact_sales"} <= {n["id"] for n in both["nodes"]}
    _problem(client.get("/v1/lineage/silver.orders?direction=sideways", headers=eng), 422, "invalid-parameters")
    _problem(client.get("/v1/lineage/silver.nope", headers=eng), 404, "unknown-dataset")


def test_overview_shows_the_failed_gate_slas_quarantine_and_freshness(client: Any, keys: dict[str, str]) -> None:
    view = client.get("/v1/overview", headers=_as(keys, "engineer")).json()
    assert view["project"] == "northwind" and view["runs"][0]["job"] == "run"
    assert {c["dataset"] for c in view["failed_checks"] if c["status"] == "fail"} == {"gold.daily_order_metrics"}
    assert view["slas"] and all(s["status"] in ("ok", "breach", "unknown") for s in view["slas"])
    orders = next(q for q in view["quarantine"] if q["source"] == "orders")
    assert orders["quarantined"] > 0 and orders["received"] > orders["quarantined"]
    assert orders["rate"] == pytest.approx(orders["quarantined"] / orders["received"], abs=1e-6)
    fresh = {f["dataset"]: f for f in view["freshness"]}
    assert fresh["gold.fact_sales"]["age_s"] >= 0 and fresh["gold.fact_sales"]["last_commit"].endswith("Z")
    business = client.get("/v1/overview", headers=_as(keys, "business")).json()
    assert business["quarantine"] == [] and {f["dataset"] for f in business["freshness"]} <= {
        "gold.fact_sales",
        "gold.dim_customers",
    }


def test_quarantine_by_reason_and_paged(client: Any, keys: dict[str, str]) -> None:
    eng = _as(keys, "engineer")
    everything = client.get("/v1/quarantine/orders", headers=eng).json()
    assert everything["source"] == "orders" and everything["total"] == len(everything["rows"]) > 0
    assert sum(r["count"] for r in everything["by_reason"]) == everything["total"]
    record = next(r for r in everything["rows"] if r["raw"])
    assert record["file"] and record["line"] and record["reason"] and record["run_id"]
    rule = everything["by_reason"][0]["reason"]
    picked = client.get(f"/v1/quarantine/orders?reason={rule}", headers=eng).json()
    assert picked["total"] == everything["by_reason"][0]["count"] and all(r["rule"] == rule for r in picked["rows"])
    words = record["reason"].split(": ", 1)[-1][:14]  # words of a reason, not a rule: a substring match
    matched = client.get("/v1/quarantine/orders", params={"reason": words}, headers=eng).json()
    assert matched["total"] >= 1 and all(words in r["reason"] for r in matched["rows"])
    page = client.get("/v1/quarantine/orders?limit=2&offset=1", headers=eng).json()
    assert page["rows"] == everything["rows"][1:3] and page["total"] == everything["total"]
    _problem(client.get("/v1/quarantine/orders?limit=5000", headers=eng), 413, "too-large")
    _problem(client.get("/v1/quarantine/orders?offset=-3", headers=eng), 422, "invalid-parameters")
    _problem(client.get("/v1/quarantine/nope", headers=eng), 404, "unknown-dataset")


def test_every_call_is_audited(root: Path, keys: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    from lakestack.pipeline.audit import read_audit
    from lakestack.pipeline.lake import Lake
    from lakestack.serve.api import create_app

    lake = Lake.open(root)
    with TestClient(create_app(lake, schedules=[])) as c:
        assert c.get("/v1/datasets/gold.fact_sales", headers=_as(keys, "business")).status_code == 200
        assert c.get("/v1/datasets/silver.orders", headers=_as(keys, "business")).status_code == 404
        assert c.post("/v1/query", json={"sql": "SELECT 1 AS x"}, headers=_as(keys, "analyst")).status_code == 200
        assert c.get("/v1/runs").status_code == 401
    lake.close()
    rows = [r for r in read_audit(Lake.open(root).warehouse) if r["channel"] == "api"]
    seen = {(r["action"], r["status"], r["role"]) for r in rows}
    assert {
        ("api.dataset", 200, "business"),
        ("api.dataset", 404, "business"),
        ("api.query", 200, "analyst"),
        ("api.runs", 401, None),
    } <= seen
    assert any(r["action"] == "api.dataset" and "silver.orders" in (r["datasets"] or []) for r in rows)


def test_a_real_lakestack_serve_answers_on_loopback(root: Path) -> None:
    import httpx

    port = free_port()
    proc = start_serve(root, port, insecure_dev=True)
    try:
        assert wait_healthy(port, proc)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=30).json()["status"] == "ok"
        assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200
        names = {d["name"] for d in httpx.get(f"{base}/v1/datasets", timeout=30).json()["datasets"]}
        assert "gold.fact_sales" in names
        answer = httpx.post(
            f"{base}/v1/query", json={"sql": "SELECT count(*) AS n FROM gold.fact_sales", "format": "csv"}, timeout=30
        )
        assert answer.status_code == 200 and answer.text.splitlines()[0] == '"n"'
        missing = httpx.get(f"{base}/v1/datasets/gold.nope", timeout=30)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    finally:
        stop_serve(proc)

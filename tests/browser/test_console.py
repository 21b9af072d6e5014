"""The web console in a real browser: Debian's chromium driven by Playwright, over a real
`lakestack serve --insecure-dev` on a small Northwind whose Gold gate fails (`--break-gold`), run
once for the module (published to PostgreSQL when it answers). Every page renders the project's
data; a screenshot of each is saved under .run/screenshots/ (not committed).

chromium comes from apt (`scripts/install-chromium.sh`, run by `make venv` / `make test`); never
`playwright install`. Without /usr/bin/chromium the tests skip, or fail under
LAKESTACK_REQUIRE_SERVICES=1."""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lakestack import Lake
from lakestack.pipeline.apikeys import create_key
from serve_support import free_port, start_serve, stop_serve, wait_healthy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / ".run" / "screenshots"
POSTGRES = os.environ.get("LAKESTACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
GOLD = ("fact_sales", "daily_order_metrics", "dim_customers")
READY = (
    "() => { const m = document.getElementById('main');"
    " return m.dataset.ready === 'true' && m.dataset.route === location.hash; }"
)


def _missing(reason: str) -> None:
    if os.environ.get("LAKESTACK_REQUIRE_SERVICES"):
        pytest.fail(f"{reason}; LAKESTACK_REQUIRE_SERVICES is set")
    pytest.skip(reason)


def _postgres_answers() -> bool:
    from urllib.parse import urlparse

    url = urlparse(POSTGRES)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5432), timeout=2):
            return True
    except OSError:
        return False


def _northwind(root: Path, schema: str | None) -> Path:
    """small_northwind (lake_support) with the broken Gold day, publishing its three Gold tables to
    `schema` (or nowhere)."""
    from lakestack.examples.northwind import generate_northwind
    from lakestack.pipeline.scaffold import copy_example

    copy_example("northwind", root)
    generate_northwind(root, orders=600, seed=11, days=3, break_gold=True)
    config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
    del config["sources"]["clickstream"], config["datasets"]["clickstream"]
    if schema is None:
        config.pop("publish", None)
    for target in config.get("publish", {}).values():
        target["schema"] = schema
        target["datasets"] = {k: v for k, v in target["datasets"].items() if k.partition(".")[2] in GOLD}
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.rmtree(root / "landing" / "clickstream")
    (root / "contracts" / "clickstream.v1.json").unlink()
    for path in (root / "models" / "gold").iterdir():
        if path.name.partition(".")[0] not in GOLD:
            path.unlink()
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A run Northwind (gate failed), an analyst key, and `lakestack serve --insecure-dev` on it."""
    schema = f"console_{uuid.uuid4().hex[:8]}" if _postgres_answers() else None
    try:
        yield from _serve(tmp_path_factory.mktemp("console") / "nw", schema)
    finally:  # also when the setup failed after publishing
        if schema is not None:
            import psycopg

            with psycopg.connect(POSTGRES, autocommit=True) as con:
                con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _serve(root: Path, schema: str | None) -> Iterator[dict[str, Any]]:
    _northwind(root, schema)
    last_day = root / "landing" / "orders" / "orders_20260103.csv"  # the broken day (revenue 0)
    held = last_day.rename(root / "held.csv")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NORTHWIND_POSTGRES_URL", POSTGRES)
        with Lake.open(root) as lake:
            assert not lake.run().blocked  # two days: the gate passes
        held.rename(last_day)
        with Lake.open(root) as lake:
            assert lake.run().blocked  # the third day: the Gold gate fails, the rest runs
            lake.sla()  # evaluated once now, not left to the server's first scheduled round
            _, analyst = create_key(lake, "analyst", [], "console-test", "tests")
    port = free_port()
    proc = start_serve(root, port)
    try:
        assert wait_healthy(port, proc), proc.stderr.read().decode() if proc.stderr else ""
        yield {"base": f"http://127.0.0.1:{port}", "schema": schema, "analyst": analyst}
    finally:
        stop_serve(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing (scripts/install-chromium.sh installs it with apt-get)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (the dev extra)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served: dict[str, Any]) -> Iterator[Any]:
    """A fresh tab (its own sessionStorage) on a laptop-sized screen; fails the test on a JS error."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, errors


def show(page: Any, served: dict[str, Any], route: str) -> None:
    """Open a console route (`#/...`) and wait until that page has rendered."""
    url = f"{served['base']}/console/{route}"
    if page.url.startswith(f"{served['base']}/console/"):
        page.evaluate("r => { location.hash = r; }", route)
    else:
        page.goto(url)
    page.wait_for_function(READY)


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def api(served: dict[str, Any], path: str, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(served["base"] + path, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def texts(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_overview_shows_the_last_run_and_the_failed_gate(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/")
    assert "northwind" in page.inner_text("#project")
    runs = api(served, "/v1/runs")["runs"]
    first = page.locator("#overview-runs tbody tr").first
    assert "BLOCKED" in first.inner_text() and "run" in first.inner_text()
    assert len(runs) == page.locator("#overview-runs tbody tr").count()
    failed = page.inner_text("#overview-failed")
    assert "revenue is positive every day" in failed and "gold.daily_order_metrics" in failed
    assert "BLOCKED" in failed.upper()  # the gate it blocks
    assert "1 blocking a gate" in page.inner_text(".cards")
    slas = page.inner_text("#overview-slas")
    assert "silver_orders_fresh" in slas
    assert "silver.orders" in page.inner_text(".main")  # freshness bars name the datasets
    shoot(page, "overview")
    page.click("#overview-failed >> text=revenue is positive every day")  # → the check on the Quality page
    page.wait_for_function(READY)
    assert "revenue is positive every day" in page.inner_text("#check-detail h2")


def test_datasets_search_and_a_dataset_page(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/datasets")
    names = texts(page, "#datasets-table tbody tr td:first-child")
    assert {"bronze.orders", "silver.customers", "gold.fact_sales", "gold.dim_customers"} <= set(names)
    shoot(page, "datasets")
    page.fill("#dataset-search", "customers")
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#datasets-table tbody tr')];"
        " return rows.length > 0 && rows.every(r => r.innerText.includes('customers')); }"
    )
    page.click("#datasets-table >> text=silver.customers")
    page.wait_for_function(READY)
    assert page.inner_text("#dataset-name") == "silver.customers"
    schema = page.inner_text("#schema-table")
    assert "email" in schema and "phone" in schema and "name" in schema  # the PII tags
    detail = api(served, "/v1/datasets/silver.customers")
    assert f"v{detail['contract']['version']}" in page.inner_text(".cards")
    page.wait_for_selector("#rows-table tbody tr")
    emails = texts(page, "#rows-table tbody tr td:nth-child(4)")
    assert emails and all("@" in e for e in emails)  # the engineer (insecure dev) sees them in clear
    assert len(detail["snapshots"]) == 1  # one customers file: one point, said in words
    assert f"rows {detail['rows']}" in page.inner_text("#snapshot-chart")
    assert page.locator("#checks-table tbody tr").count() == len(detail["checks"])
    page.wait_for_selector("#check-history .status-strip")
    shoot(page, "dataset")
    show(page, served, "#/datasets/silver.orders")  # two runs, two snapshots: a chart
    page.wait_for_selector("#snapshot-chart canvas")
    assert page.get_attribute("#snapshot-chart", "data-points") == "2"
    page.wait_for_selector("#check-history canvas")  # two runs of its checks: a history chart
    page.wait_for_selector("#rows-table tbody tr")
    shoot(page, "dataset-orders")


def test_lineage_graph_has_the_layers_and_opens_a_dataset(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/lineage")
    nodes = set(page.eval_on_selector_all("#lineage-graph g.node", "els => els.map(e => e.dataset.id)"))
    pairs = "els => els.map(e => [e.dataset.from, e.dataset.to])"
    edges = set(map(tuple, page.eval_on_selector_all("#lineage-graph path.edge", pairs)))
    graph = api(served, "/v1/lineage")
    assert nodes == {n["id"] for n in graph["nodes"]}
    assert edges == {(e["from"], e["to"]) for e in graph["edges"]}
    for source in ("orders", "customers", "products", "fx_rates"):
        assert {(f"source:{source}", f"bronze.{source}"), (f"bronze.{source}", f"silver.{source}")} <= edges
    assert {("silver.orders", "gold.fact_sales"), ("silver.fx_rates", "gold.fact_sales")} <= edges
    assert {("gold.fact_sales", "gold.daily_order_metrics"), ("silver.customers", "gold.dim_customers")} <= edges
    if served["schema"]:  # published: Gold → PostgreSQL
        assert ("gold.fact_sales", f"postgres:analytics.{served['schema']}.fact_sales") in edges
    # the columns follow the layers left to right
    x = {n: page.locator(f'#lineage-graph g.node[data-id="{n}"]').bounding_box()["x"] for n in nodes}
    assert x["source:orders"] < x["bronze.orders"] < x["silver.orders"] < x["gold.fact_sales"]
    column = page.inner_text("#column-lineage-table")
    assert "amount" in column and "silver.orders.quantity" in column and "silver.orders.unit_price" in column
    page.hover('#lineage-graph g.node[data-id="silver.orders"]')
    lit = set(page.eval_on_selector_all("#lineage-graph g.node.lit", "els => els.map(e => e.dataset.id)"))
    assert {"source:orders", "bronze.orders", "gold.fact_sales", "gold.daily_order_metrics"} <= lit
    assert "silver.customers" not in lit
    page.mouse.move(0, 0)
    shoot(page, "lineage")
    page.click('#lineage-graph g.node[data-id="gold.fact_sales"]')
    page.wait_for_function(READY)
    assert page.url.endswith("#/datasets/gold.fact_sales")
    assert page.inner_text("#dataset-name") == "gold.fact_sales"


def test_runs_list_and_a_run_page_with_stages_and_rows(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/runs")
    assert "BLOCKED" in page.inner_text("#runs-table")
    page.wait_for_selector("#runs-chart canvas")  # rows per run over time
    shoot(page, "runs")
    page.locator("#runs-table tbody tr", has_text="BLOCKED").first.click()
    page.wait_for_function(READY)
    run = api(served, "/v1/runs/" + page.inner_text("#run-id"))
    assert run["job"] == "run" and run["status"] == "BLOCKED"
    assert page.locator("#run-stages .bar-row").count() == len(run["stages"]) >= 5
    written = {d["dataset"]: d["rows_written"] for d in run["datasets"] if d["direction"] == "output"}
    row = page.locator("#run-datasets tbody tr", has_text="silver.orders").filter(has_text="output").first
    assert f"{written['silver.orders']:,}" in row.inner_text()
    children = page.inner_text("#run-children-table")
    assert "ingest.orders" in children and "build.daily_order_metrics" in children
    assert "revenue is positive every day" in page.inner_text("#run-checks")
    shoot(page, "run")


def test_quality_lists_failing_checks_and_their_rows(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/quality")
    first = page.locator("#quality-checks tbody tr").first.inner_text()
    assert "revenue is positive every day" in first and "FAIL" in first.upper()
    page.wait_for_selector("#check-detail canvas")  # pass, then fail: its history as a chart
    history = page.eval_on_selector_all("#check-detail .status-strip .tick", "els => els.map(e => e.className)")
    assert history == ["tick pass", "tick fail"]
    page.locator("#quality-checks tbody tr", has_text="referential_integrity").click()
    page.wait_for_selector("#failing-rows tbody tr")
    name = "referential_integrity(customer_id → silver.customers.customer_id)"
    failures = api(served, f"/v1/checks/{name}/failures?dataset=silver.orders")
    shown = page.inner_text("#failing-rows")
    order_id = failures["columns"].index("order_id")
    assert failures["rows"] and all(row[order_id] in shown for row in failures["rows"])  # orders of unknown customers
    shoot(page, "quality")


def test_quarantine_shows_reasons_raw_record_and_the_replay_command(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/quarantine/orders")
    data = api(served, "/v1/quarantine/orders")
    assert page.locator("#quarantine-table tbody tr").count() == data["total"] > 0
    assert page.inner_text("#replay-command") == "lakestack quarantine replay orders"
    page.select_option("#quarantine-reason", "enum")
    page.wait_for_function("() => document.getElementById('replay-command').textContent.endsWith('--reason enum')")
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#quarantine-table tbody tr')];"
        " return rows.length > 0 && rows.every(r => r.innerText.includes('enum')); }"
    )
    enum_rows = [r for r in data["rows"] if r["rule"] == "enum"]
    assert page.locator("#quarantine-table tbody tr").count() == len(enum_rows)
    page.locator("#quarantine-table tbody tr").first.click()
    raw = page.inner_text("#quarantine-raw")
    assert raw.strip() and any(r["raw"] and r["raw"].split(",")[0] in raw for r in enum_rows)
    assert "is not one of" in page.inner_text("#quarantine-error")
    shoot(page, "quarantine")


def test_sql_runs_a_query_and_downloads_it_as_csv(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/sql")
    sql = "SELECT customer_id, email FROM silver.customers ORDER BY customer_id LIMIT 5"
    page.fill("#sql-editor", sql)
    page.click("#sql-run")
    page.wait_for_selector("#sql-table tbody tr")
    shown = [[c.strip() for c in row.split("\t")] for row in texts(page, "#sql-table tbody tr")]
    assert len(shown) == 5 and all("@" in email for _, email in shown)
    with page.expect_download() as caught:
        page.click("#sql-csv")
    download = caught.value
    assert download.suggested_filename == "query.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["customer_id", "email"] and rows[1:] == shown
    shoot(page, "sql")


def test_data_is_rendered_as_text_never_as_markup(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/sql")
    evil = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    page.fill("#sql-editor", f"SELECT '{evil.replace(chr(39), chr(39) * 2)}' AS \"<b>col</b>\"")
    page.click("#sql-run")
    page.wait_for_selector("#sql-table tbody td")
    assert page.inner_text("#sql-table tbody td") == evil
    assert page.inner_text("#sql-table thead th") == "<b>col</b>"
    assert page.locator("#sql-table img, #sql-table script, #sql-table b").count() == 0
    assert page.evaluate("() => window.__xss") is None
    page.fill("#sql-editor", "SELECT FROM WHERE")  # a bad query: its problem detail, as text
    page.click("#sql-run")
    alert = page.wait_for_selector("#sql-result [role=alert]")
    assert "400" in alert.inner_text() and "Bad query" in alert.inner_text()


def test_an_analyst_key_sees_pii_masked(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/datasets/silver.customers")
    page.wait_for_selector("#rows-table tbody tr")
    clear_emails = texts(page, "#rows-table tbody tr td:nth-child(4)")
    page.fill("#apikey", served["analyst"])
    page.click("#keyform button[type=submit]")
    page.wait_for_function(READY)
    page.wait_for_function("() => document.querySelector('#sample-rows .mask-note')")
    assert "email" in page.inner_text("#sample-rows .mask-note")
    masked = texts(page, "#rows-table tbody tr td:nth-child(4)")
    assert len(masked) == len(clear_emails) and not set(masked) & set(clear_emails)
    assert page.evaluate("() => sessionStorage.getItem('lakestack.apiKey')") == served["analyst"]
    assert "partial" in page.inner_text("#schema-table")  # the analyst role's masking for email
    shoot(page, "dataset-analyst")
    # the same key on the SQL page: the query is masked too, and Bronze is not the analyst's
    show(page, served, "#/sql")
    page.fill("#sql-editor", "SELECT email FROM silver.customers ORDER BY customer_id LIMIT 3")
    page.click("#sql-run")
    page.wait_for_selector("#sql-table tbody tr")
    assert not set(texts(page, "#sql-table tbody td")) & set(clear_emails)
    show(page, served, "#/datasets")
    names = texts(page, "#datasets-table tbody tr td:first-child")
    assert names and not [n for n in names if n.startswith("bronze.")]


def test_a_wrong_key_is_refused_with_a_hint(page: Any, served: dict[str, Any]) -> None:
    show(page, served, "#/")
    page.fill("#apikey", "lsk_nope_nope")
    page.click("#keyform button[type=submit]")
    page.wait_for_function(READY)
    alert = page.inner_text("[role=alert]")
    assert "401" in alert and "lakestack keys create" in alert

"""Alerts end to end: real jobs and checks, the state in a real warehouse, a real local webhook
server (generic JSON and Slack payloads), dedup, re-notification, resolution, restarts, racing
writers, and endpoints that are down, failing or slow."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_support import Webhook, wait_for, with_alerts
from lake_support import child_env
from lakestack import Lake, failpoints
from lakestack.errors import RunError
from lakestack.monitor.alerts import ALERTS
from lakestack.monitor.sla import SlaResult
from lakestack.pipeline.alerting import AlertListener, evaluate_alerts, find_listener, open_incidents

pytestmark = pytest.mark.integration

HEADER = "order_id,qty,price,currency,order_ts,email\n"


def orders(n: int, bad: int = 0, start: int = 0) -> str:
    """`n` order lines, the first `bad` of them with a quantity the contract refuses."""
    lines = [
        f"ORD-{start + i:04d},{0 if i < bad else 2},9.50,USD,2026-01-0{1 + i % 5}T10:00:00Z,a{i}@x.io\n"
        for i in range(n)
    ]
    return HEADER + "".join(lines)


@pytest.fixture
def hook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.stop()


def _alerts(hook: Webhook, **settings: Any) -> dict[str, Any]:
    webhook = {"url": hook.url, "timeout": 0.5, **settings.pop("webhook", {})}
    return {
        "renotify": "4h",
        "retries": 1,
        "quarantine": {"min_records": 10},
        "sinks": {"hook": {"webhook": webhook}},
        **settings,
    }


def _listener(lake: Lake) -> AlertListener:
    found = find_listener(lake)
    assert found is not None
    return found


def fail(lake: Lake, job: str = "ingest.orders", error: str = "disk on fire") -> None:
    """A job that raises, reported through the lake's run events like every job."""
    with pytest.raises(RunError), lake.events.job("ingest", job, lake_run_id=f"run-{time.monotonic_ns()}"):
        raise RunError(error)


def test_two_failures_alert_once_and_the_next_success_resolves(project: Path, hook: Webhook, land: Any) -> None:
    lake = Lake.open(with_alerts(project, _alerts(hook)))
    fail(lake)
    fail(lake, error="disk still on fire")
    assert _listener(lake).flush(60)
    assert hook.events() == [("open", "run:ingest.orders")]
    first = hook.received[0]
    assert first["status"] == "firing" and first["message"] == "disk on fire" and first["source"] == "run"
    assert first["project"] == "shop" and first["environment"] == "dev" and first["notification"] == 1
    assert [i["key"] for i in open_incidents(lake)] == ["run:ingest.orders"]

    land("orders", "orders_20260101.csv", orders(20))
    lake.ingest(["orders"])  # ingest.orders completes: the incident is over
    assert _listener(lake).flush(60)
    assert hook.events() == [("open", "run:ingest.orders"), ("resolve", "run:ingest.orders")]
    assert hook.received[1]["incident_id"] == first["incident_id"]
    assert open_incidents(lake) == []
    lake.close()


def test_an_open_incident_is_sent_again_after_the_interval(project: Path, hook: Webhook) -> None:
    lake = Lake.open(with_alerts(project, _alerts(hook, renotify="30m")))
    listener = _listener(lake)
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    listener.clock = lambda: t0
    fail(lake)
    assert listener.flush(60)
    listener.clock = lambda: t0 + timedelta(minutes=29)  # within the interval: nothing new
    fail(lake)
    assert listener.flush(60)
    assert hook.events() == [("open", "run:ingest.orders")]
    listener.clock = lambda: t0 + timedelta(minutes=31)
    fail(lake)
    assert listener.flush(60)
    assert hook.events() == [("open", "run:ingest.orders"), ("renotify", "run:ingest.orders")]
    assert hook.received[1]["notification"] == 2
    # a sweep (the serve scheduler, `lakestack sla`) reminds of it without a new failure
    evaluate_alerts(lake, results=[], now=t0 + timedelta(minutes=62))
    assert listener.flush(60)
    assert [e for e, _ in hook.events()] == ["open", "renotify", "renotify"]
    lake.close()


def test_a_restarted_process_does_not_alert_again(project: Path, hook: Webhook) -> None:
    lake = Lake.open(with_alerts(project, _alerts(hook)))
    fail(lake)
    lake.close()
    assert hook.events() == [("open", "run:ingest.orders")]
    again = Lake.open(project)  # a new lake over the same warehouse
    fail(again)
    again.close()
    code = (
        "from lakestack import Lake\nfrom lakestack.errors import RunError\n"
        f"lake = Lake.open({str(project)!r})\n"
        "try:\n    with lake.events.job('ingest', 'ingest.orders'):\n        raise RunError('boom')\n"
        "except RunError:\n    pass\nlake.close()\n"
    )
    child = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert hook.events() == [("open", "run:ingest.orders")]  # neither the new lake nor the new process re-alerted
    history = Lake.open(project).warehouse.load(ALERTS).scan().to_arrow().to_pylist()
    assert [(r["event"], r["key"]) for r in history] == [("open", "run:ingest.orders")]


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest, project: Path) -> Iterator[Path]:
    """The project's catalog on SQLite, or in a fresh database on the PostgreSQL test server."""
    if request.param == "sqlite":
        yield project
        return
    import yaml

    from lake_support import create_database, drop_database
    from tests_support import service_url

    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    path = project / "lakestack.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["environments"]["dev"]["catalog"] = {"type": "sql", "uri": url}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        yield project
    finally:
        drop_database(url)


def test_racing_writers_send_one_alert(catalog: Path, hook: Webhook) -> None:
    with_alerts(catalog, _alerts(hook))
    lakes = [Lake.open(catalog) for _ in range(3)]
    errors: list[BaseException] = []

    def run(lake: Lake) -> None:
        try:
            fail(lake)
        except BaseException as exc:
            errors.append(exc)

    # every writer reads the state, then waits before its commit: all decide "open" on the same
    # snapshot, one commit lands, the others conflict and decide again on the winner's state
    with failpoints.armed("alerts.before_commit=sleep(400)"):
        threads = [threading.Thread(target=run, args=(lake,)) for lake in lakes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for lake in lakes:
            assert _listener(lake).flush(90)
    assert not errors
    assert hook.events() == [("open", "run:ingest.orders")]
    assert sum(_listener(lake).errors for lake in lakes) == 0
    assert sum(_listener(lake).book.conflicts for lake in lakes) >= 1  # the race did happen
    for lake in lakes:
        lake.close()


def test_the_slack_format_and_a_token_from_a_secret(
    project: Path, hook: Webhook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = "xoxb-very-secret-token-1234"
    monkeypatch.setenv("HOOK_TOKEN", token)
    lake = Lake.open(with_alerts(project, _alerts(hook, webhook={"format": "slack", "token_secret": "HOOK_TOKEN"})))
    caplog.set_level(logging.DEBUG)
    fail(lake, job="build.fact_sales", error="Binder Error: column <x> & y not found")
    assert _listener(lake).flush(60)
    [payload] = hook.received
    assert payload["text"] == "[FIRING] job build.fact_sales failed"
    [attachment] = payload["attachments"]
    assert attachment["color"] == "#d62728"
    texts = [b["text"]["text"] for b in attachment["blocks"] if "text" in b]
    assert "Binder Error: column &lt;x&gt; &amp; y not found" in texts  # Slack's escaping
    fields = [f["text"] for b in attachment["blocks"] for f in b.get("fields", [])]
    assert "*incident*\nrun:build.fact_sales" in fields and "*job*\nbuild.fact_sales" in fields
    assert hook.headers[0]["Authorization"] == f"Bearer {token}"
    assert token not in str(payload) and token not in caplog.text
    lake.close()


def test_a_failed_gate_alerts_per_check_and_resolves_when_it_passes(project: Path, hook: Webhook, land: Any) -> None:
    (project / "checks").mkdir()
    checks = project / "checks" / "bronze_orders.yaml"
    checks.write_text("dataset: bronze.orders\nchecks:\n  - {name: enough_orders, type: row_count, min: 50}\n")
    lake = Lake.open(with_alerts(project, _alerts(hook)))
    land("orders", "orders_20260101.csv", orders(20))
    lake.ingest(["orders"])
    lake.check(["bronze.orders"])
    lake.check(["bronze.orders"])  # still failing: no second alert
    assert _listener(lake).flush(60)
    assert hook.events() == [("open", "gate:bronze.orders:enough_orders")]
    assert hook.received[0]["dataset"] == "bronze.orders" and hook.received[0]["severity"] == "error"
    lake.close()

    checks.write_text("dataset: bronze.orders\nchecks:\n  - {name: enough_orders, type: row_count, min: 10}\n")
    lake = Lake.open(project)
    lake.check(["bronze.orders"])
    assert _listener(lake).flush(60)
    assert hook.events()[-1] == ("resolve", "gate:bronze.orders:enough_orders")
    assert len(hook.events()) == 2
    lake.close()


def test_a_quarantine_share_above_the_limit_alerts_and_a_clean_ingest_resolves(
    project: Path, hook: Webhook, land: Any
) -> None:
    lake = Lake.open(with_alerts(project, _alerts(hook, quarantine={"max_share": 0.1, "min_records": 10})))
    land("orders", "orders_20260101.csv", orders(40, bad=8))  # 20 % refused
    lake.ingest(["orders"])
    assert _listener(lake).flush(60)
    assert hook.events() == [("open", "quarantine:orders")]
    assert "8 of 40 records (20.0%) quarantined" in hook.received[0]["message"]
    land("orders", "orders_20260102.csv", orders(40, start=100))
    lake.ingest(["orders"])
    assert _listener(lake).flush(60)
    assert hook.events()[-1] == ("resolve", "quarantine:orders")
    lake.close()


def test_a_quarantine_spike_against_the_sources_history(project: Path, hook: Webhook, land: Any) -> None:
    rule = {"max_share": 0.5, "spike_factor": 3, "min_share": 0.01, "min_history": 3, "min_records": 10}
    lake = Lake.open(with_alerts(project, _alerts(hook, quarantine=rule)))
    for day in range(1, 5):  # a steady 2.5 %: no incident
        land("orders", f"orders_2026010{day}.csv", orders(40, bad=1, start=day * 100))
        lake.ingest(["orders"])
    land("orders", "orders_20260105.csv", orders(40, bad=6, start=900))  # 15 %: 6x the median
    lake.ingest(["orders"])
    assert _listener(lake).flush(60)
    assert hook.events() == [("open", "quarantine:orders")]
    assert "6.0× the 7d median of 2.50% over 4 ingests" in hook.received[0]["message"]
    lake.close()


def test_sla_breach_then_recovery(project: Path, hook: Webhook) -> None:
    lake = Lake.open(with_alerts(project, _alerts(hook)))
    now = datetime.now(UTC)

    def result(status: str, observed: str) -> SlaResult:
        return SlaResult(
            "orders_fresh",
            "freshness",
            "silver.orders",
            status,  # type: ignore[arg-type]
            observed,
            "≤ 15 min behind",
            f"silver.orders is {observed}",
            now,
        )

    opened = evaluate_alerts(lake, [result("breach", "42 min behind")])
    assert [a.event for a in opened] == ["open"]
    evaluate_alerts(lake, [result("breach", "50 min behind")])  # still breached: no new alert
    evaluate_alerts(lake, [result("unknown", "no data")])  # cannot tell: says nothing
    evaluate_alerts(lake, [result("ok", "3 min behind")])
    assert _listener(lake).flush(60)
    assert hook.events() == [("open", "sla:orders_fresh"), ("resolve", "sla:orders_fresh")]
    assert hook.received[0]["message"] == "silver.orders is 42 min behind"
    assert hook.received[1]["message"] == "3 min behind (target ≤ 15 min behind)"
    lake.close()


def test_a_sink_limited_to_sources_gets_only_those(project: Path, hook: Webhook) -> None:
    other = Webhook()
    try:
        alerts = _alerts(hook)
        alerts["sinks"]["sla_only"] = {"webhook": {"url": other.url, "timeout": 0.5}, "sources": ["sla"]}
        lake = Lake.open(with_alerts(project, alerts))
        fail(lake)
        assert _listener(lake).flush(60)
        assert hook.events() == [("open", "run:ingest.orders")] and other.received == []
        lake.close()
    finally:
        other.stop()


@pytest.mark.parametrize("fault", ["down", "500", "slow"])
def test_an_endpoint_down_failing_or_slow_never_slows_the_run(
    project: Path, hook: Webhook, land: Any, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = hook.url
    if fault == "down":
        hook.stop()
    elif fault == "500":
        hook.status = 500
    else:
        hook.delay = 3.0  # far past the 0.5 s timeout
    lake = Lake.open(with_alerts(project, _alerts(hook, retries=2, webhook={"url": url})))
    land("orders", "orders_20260101.csv", orders(40, bad=20))  # a quarantine incident
    started = time.perf_counter()
    for _ in range(3):
        fail(lake)
    lake.ingest(["orders"])
    took = time.perf_counter() - started
    listener = _listener(lake)
    assert wait_for(lambda: listener.dispatcher.stats["hook"].failed == 2, 60)  # open run, open quarantine
    delivered_by = time.perf_counter() - started
    # each alert takes 3 attempts and 1.5 s of backoff: on the job's thread the jobs would have
    # ended after their alerts; queued, they end well before (and within a generous bound)
    assert took < 10.0, f"the jobs took {took:.1f} s with a {fault} endpoint"
    assert delivered_by - took > 1.0, f"jobs {took:.1f} s, alerts given up after {delivered_by:.1f} s"
    stats = listener.dispatcher.stats["hook"]
    assert stats.delivered == 0 and stats.retries == 4  # 2 retries each, with backoff
    assert listener.dropped == 2
    assert "alert sink hook (webhook): could not deliver open" in caplog.text
    assert url not in caplog.text  # the sink is named, its URL (maybe a secret) is not
    lake.close()


def test_a_full_queue_drops_and_counts(project: Path, hook: Webhook) -> None:
    hook.delay = 1.0
    lake = Lake.open(
        with_alerts(project, _alerts(hook, queue_max=1, retries=0, webhook={"url": hook.url, "timeout": 5}))
    )
    listener = _listener(lake)
    results = [
        SlaResult(f"sla_{n}", "freshness", None, "breach", "late", "on time", "late", datetime.now(UTC))
        for n in range(5)
    ]
    evaluate_alerts(lake, results)  # five incidents at once into a queue of one
    assert listener.flush(60)
    stats = listener.dispatcher.stats["hook"]
    assert stats.delivered + stats.dropped == 5 and stats.dropped >= 3
    assert listener.dropped == stats.dropped
    lake.close()


def test_closing_waits_at_most_the_drain_timeout(project: Path, hook: Webhook) -> None:
    hook.delay = 5.0
    lake = Lake.open(
        with_alerts(project, _alerts(hook, drain_timeout=1, retries=0, webhook={"url": hook.url, "timeout": 10}))
    )
    for n in range(3):
        fail(lake, job=f"ingest.s{n}")
    started = time.perf_counter()
    lake.close()
    took = time.perf_counter() - started
    assert took < 8.0, f"closing took {took:.1f} s"
    stats = _listener(lake).dispatcher.stats["hook"]
    assert stats.dropped >= 1  # what was still queued when the drain timeout passed


def test_a_lake_without_an_alerts_block_has_no_listener_and_evaluates_nothing(project: Path) -> None:
    lake = Lake.open(project)
    assert find_listener(lake) is None
    assert evaluate_alerts(lake, []) == []
    fail(lake)
    lake.close()
    assert not Lake.open(project).warehouse.exists(ALERTS)


def test_a_stream_session_is_judged_on_each_stretch_of_its_progress(project: Path, hook: Webhook) -> None:
    lake = Lake.open(with_alerts(project, _alerts(hook, quarantine={"max_share": 0.1, "min_records": 100})))
    listener = _listener(lake)
    with lake.events.job("stream", "stream.orders", lake_run_id="session-1") as job:
        job.progress(landed=95, quarantined=1)  # fewer than 100 records since the start: not judged yet
        job.progress(landed=190, quarantined=2)  # 192 records, 1 %: fine
        assert listener.flush(60) and hook.received == []
        job.progress(landed=240, quarantined=102)  # the last 150 records: 100 quarantined
        assert listener.flush(60)
        assert hook.events() == [("open", "quarantine:orders")]
        assert "100 of 150 records (66.7%) quarantined" in hook.received[0]["message"]
        job.progress(landed=400, quarantined=103)  # the next 161: 1 quarantined
        assert listener.flush(60)
        assert hook.events()[-1] == ("resolve", "quarantine:orders")
    lake.close()

"""`lakestack alerts` and `lakestack alerts test` in child processes, against a real local webhook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alert_support import Webhook, with_alerts
from lake_support import cli
from lakestack import Lake
from lakestack.errors import RunError
from serve_support import free_port

pytestmark = pytest.mark.integration


def test_open_incidents_history_and_json(project: Path) -> None:
    hook = Webhook()
    try:
        with_alerts(project, {"retries": 0, "sinks": {"hook": {"webhook": {"url": hook.url}}}})
        quiet = cli(project, "alerts")
        assert quiet.returncode == 0, quiet.stderr
        assert "no open incidents" in quiet.stdout
        lake = Lake.open(project)
        with pytest.raises(RunError), lake.events.job("build", "build.fact_sales"):
            raise RunError("Binder Error: no column qty")
        lake.close()

        shown = cli(project, "alerts", "--json")
        assert shown.returncode == 0, shown.stderr
        [incident] = json.loads(shown.stdout)
        assert incident["key"] == "run:build.fact_sales" and incident["notifications"] == 1
        assert incident["message"] == "Binder Error: no column qty" and incident["severity"] == "error"
        table = cli(project, "alerts")
        assert "run:build.fact_sales" in table.stdout and "open incidents · 1" in table.stdout
        history = cli(project, "alerts", "--all", "--json")
        assert [(r["event"], r["key"]) for r in json.loads(history.stdout)] == [("open", "run:build.fact_sales")]
        assert hook.events() == [("open", "run:build.fact_sales")]
    finally:
        hook.stop()


def test_alerts_test_reports_each_sink_and_exits_3_when_one_fails(project: Path) -> None:
    hook = Webhook()
    token = "tok-3f9a-very-secret"
    try:
        down = f"http://127.0.0.1:{free_port()}/hook"
        sinks = {
            "team": {"webhook": {"url": hook.url, "format": "slack", "token_secret": "HOOK_TOKEN"}},
            "dead": {"webhook": {"url": down, "timeout": 0.5}},
            "audit": {"log": {}},
        }
        with_alerts(project, {"retries": 1, "sinks": sinks})
        one = cli(project, "alerts", "test", "team", "--json", HOOK_TOKEN=token)
        assert one.returncode == 0, one.stderr
        assert [(r["sink"], r["delivered"]) for r in json.loads(one.stdout)] == [("team", True)]
        assert hook.received[0]["text"] == "[TEST] test alert from lakestack"
        assert hook.headers[0]["Authorization"] == f"Bearer {token}"

        every = cli(project, "alerts", "test", HOOK_TOKEN=token)
        assert every.returncode == 3, every.stderr
        for name in ("team", "dead", "audit"):
            assert name in every.stdout
        assert token not in every.stdout + every.stderr
        as_json = cli(project, "alerts", "test", "--json", HOOK_TOKEN=token)
        assert as_json.returncode == 3
        found = {r["sink"]: r for r in json.loads(as_json.stdout)}
        assert found["team"]["delivered"] and found["audit"]["delivered"]
        assert not found["dead"]["delivered"] and found["dead"]["attempts"] == 2
        assert "Connection refused" in found["dead"]["error"]

        unknown = cli(project, "alerts", "test", "nope")
        assert unknown.returncode == 2 and "unknown alert sink 'nope'" in unknown.stderr + unknown.stdout
    finally:
        hook.stop()


def test_no_sinks_and_a_malformed_block_exit_2(project: Path) -> None:
    none = cli(project, "alerts", "test")
    assert none.returncode == 2
    assert "has no alert sinks" in none.stderr + none.stdout
    with_alerts(project, {"sinks": {"ops": {"webhook": {"url": "http://x/h", "fromat": "slack"}}}})
    bad = cli(project, "alerts")
    assert bad.returncode == 2
    text = bad.stderr + bad.stdout
    assert "lakestack.yaml:" in text and "environments.dev.alerts.sinks.ops.webhook.fromat" in text
    assert "Traceback" not in text


def test_lakestack_sla_alerts_on_a_breach_and_the_serve_schedules_do_too(project: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from lakestack.serve.scheduler import alert_schedules, sla_hooks

    hook = Webhook()
    try:
        with_alerts(project, {"retries": 0, "renotify": "1h", "sinks": {"hook": {"webhook": {"url": hook.url}}}})
        (project / "slas.yaml").write_text(
            "slas:\n  orders_fresh: {kind: freshness, dataset: bronze.orders, max_age: 1m}\n", encoding="utf-8"
        )
        (project / "landing" / "orders" / "orders_20260101.csv").write_text(
            "order_id,qty,price,currency,order_ts,email\nORD-0001,2,9.50,USD,2026-01-01T10:00:00Z,a@x.io\n"
        )
        assert cli(project, "ingest").returncode == 0
        fresh = cli(project, "sla")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert hook.received == []  # met: nothing to say

        lake = Lake.open(project)
        later = datetime.now(UTC) + timedelta(minutes=5)  # the newest commit is 5 minutes old by then
        [alert_on_slas] = sla_hooks(lake)  # what `lakestack serve` calls after each evaluation
        alert_on_slas(lake.sla(later, store=False))
        [sweep] = alert_schedules(lake)
        assert sweep.name == "alerts" and sweep.every_s == 300
        sweep.fn()  # nothing due yet
        lake.close()
        assert hook.events() == [("open", "sla:orders_fresh")]
        assert "bronze.orders" in hook.received[0]["title"]

        again = cli(project, "sla")  # met again at the real clock: the CLI resolves it
        assert again.returncode == 0, again.stdout + again.stderr
        assert hook.events() == [("open", "sla:orders_fresh"), ("resolve", "sla:orders_fresh")]
    finally:
        hook.stop()


def test_a_failing_model_in_lakestack_run_alerts_once_for_its_job_and_a_refused_command_not_at_all(
    tmp_path: Path,
) -> None:
    from lake_support import small_northwind

    root = small_northwind(tmp_path / "nw", orders=200)
    hook = Webhook()
    try:
        with_alerts(root, {"retries": 0, "sinks": {"hook": {"webhook": {"url": hook.url}}}})
        model = root / "models" / "gold" / "broken.sql"
        model.write_text("SELECT CAST(order_id AS INTEGER) AS n FROM silver.orders\n")
        run = cli(root, "run")
        assert run.returncode != 0 and "Conversion Error" in run.stderr
        # the model's job is the cause: one incident for it, none for the run that holds it
        assert hook.events() == [("open", "run:build.broken")]
        assert "Conversion Error" in hook.received[0]["message"]

        refused = cli(root, "ingest", "nope")
        assert refused.returncode == 2
        assert len(hook.received) == 1  # refused before it touched data: no incident

        model.write_text("SELECT order_id FROM silver.orders\n")
        fixed = cli(root, "build", "broken")
        assert fixed.returncode == 0, fixed.stderr
        assert hook.events() == [("open", "run:build.broken"), ("resolve", "run:build.broken")]
    finally:
        hook.stop()

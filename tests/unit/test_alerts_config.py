"""The `alerts:` block: each mistake fails at load with the file, line and key; the decision rules
(open, dedup, re-notify, resolve) as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest

from lakestack.config import AlertsConfig, QuarantineAlertConfig
from lakestack.errors import ConfigError
from lakestack.monitor.alerts import Signal, decide
from lakestack.monitor.rules import QuarantineShare, judge_quarantine
from lakestack.pipeline.project import Project

HEAD = "name: shop\nenvironments:\n  dev:\n    alerts:\n"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "      sinks:\n        ops: {webhook: {url: 'http://x/h', fromat: slack}}\n",
            r"lakestack.yaml:6 \(environments.dev.alerts.sinks.ops.webhook.fromat\): unknown key 'fromat' "
            r"\(expected one of: url, format, token_secret, headers, timeout\)",
        ),
        (
            "      sinks:\n        ops: {webhook: {url: 'ftp://x/h'}}\n",
            r"lakestack.yaml:6 \(environments.dev.alerts.sinks.ops.webhook.url",
        ),
        (
            "      sinks:\n        ops: {webhook: {url: 'http://x', format: teams}}\n",
            r"lakestack.yaml:6 \(environments.dev.alerts.sinks.ops.webhook.format\): input should be 'json' or 'slack'",
        ),
        (
            "      sinks:\n        ops: {}\n",
            r"lakestack.yaml:6 \(environments.dev.alerts.sinks.ops\): "
            r"a sink is exactly one of: log, webhook, email, sns",
        ),
        (
            "      sinks:\n        ops:\n          email: {host: smtp, from: l@x.io, to: [a@x.io], password: pw}\n",
            r"lakestack.yaml:7 \(environments.dev.alerts.sinks.ops.email.password\): unknown key 'password' "
            r"\(expected one of: host, port, starttls, user, password_secret, from, to, timeout\)",
        ),
        (
            "      sinks:\n        ops: {email: {host: smtp, from: lake@x.io, to: []}}\n",
            r"lakestack.yaml:6 \(environments.dev.alerts.sinks.ops.email.to\)",
        ),
        (
            "      sinks:\n        pager: {sns: {topic_arn: 'arn:aws:sqs:us-east-1:1:q'}}\n",
            r"lakestack.yaml:6 \(environments.dev.alerts.sinks.pager.sns.topic_arn\)",
        ),
        (
            "      renotify: 4 hours\n",
            r"lakestack.yaml:5 \(environments.dev.alerts.renotify\): '4 hours' is not a duration",
        ),
        (
            "      sources: [run, lineage]\n",
            r"lakestack.yaml:5 \(environments.dev.alerts.sources.1\): input should be 'run', 'gate', 'sla' or",
        ),
        (
            "      quarantine: {max_share: 5}\n",
            r"lakestack.yaml:5 \(environments.dev.alerts.quarantine.max_share\): "
            r"Input should be less than or equal to 1",
        ),
        (
            "      sinks:\n        ops: {webhook: {url: 'http://x', token_secret: 'not a name'}}\n",
            r"lakestack.yaml:6 \(environments.dev.alerts.sinks.ops.webhook.token_secret\)",
        ),
    ],
)
def test_alert_block_mistakes_name_the_line_and_key(project: Path, block: str, message: str) -> None:
    (project / "lakestack.yaml").write_text(HEAD + block)
    with pytest.raises(ConfigError, match=message) as info:
        Project.load(project)
    assert info.value.exit_code == 2


def test_a_full_block_loads(project: Path) -> None:
    (project / "lakestack.yaml").write_text(
        HEAD
        + "      renotify: 30m\n      sources: [run, sla]\n      sinks:\n"
        + "        team: {webhook: {url: {secret: SLACK_HOOK}, format: slack, headers: {X-Key: {secret: K}}}}\n"
        + "        oncall:\n"
        + "          email: {host: smtp, user: u, password_secret: P, from: a@x.io, to: [b@x.io]}\n"
        + "          sources: [sla]\n"
        + "        pager: {sns: {topic_arn: 'arn:aws:sns:eu-west-1:123456789012:lake', endpoint_url: 'http://127.0.0.1:1'}}\n"
        + "        audit: {log: {}}\n"
    )
    alerts = Project.load(project).config.environments["dev"].alerts
    assert alerts is not None and alerts.renotify_s == 1800
    assert [s.kind for s in alerts.sinks.values()] == ["webhook", "email", "sns", "log"]
    assert alerts.sinks["oncall"].sources == ["sla"]
    assert "SLACK_HOOK" in str(alerts.sinks["team"].webhook)  # a reference, never a value


T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _ids() -> object:
    numbers = count(1)
    return lambda: f"i{next(numbers)}"


def test_decide_opens_once_renotifies_when_due_and_resolves() -> None:
    new_id = _ids()
    fire = Signal("run:x", "run", True, "job x failed", "boom")
    clear = Signal("run:x", "run", False, "job x succeeds again", "ok")
    alerts, state = decide({}, [fire, fire], T0, 3600, new_id=new_id)  # type: ignore[arg-type]
    assert [a.event for a in alerts] == ["open"] and state["run:x"].incident_id == "i1"
    alerts, state = decide(state, [fire], T0 + timedelta(minutes=59), 3600, new_id=new_id)  # type: ignore[arg-type]
    assert alerts == []
    alerts, state = decide(state, [fire], T0 + timedelta(minutes=60), 3600, new_id=new_id)  # type: ignore[arg-type]
    assert [(a.event, a.incident.notifications) for a in alerts] == [("renotify", 2)]
    alerts, state = decide(state, [clear, clear], T0 + timedelta(hours=2), 3600, new_id=new_id)  # type: ignore[arg-type]
    assert [(a.event, a.incident.incident_id, a.detail) for a in alerts] == [("resolve", "i1", "ok")]
    assert state == {}
    alerts, _ = decide(state, [fire], T0 + timedelta(hours=3), 0, new_id=new_id)  # type: ignore[arg-type]
    assert [(a.event, a.incident.incident_id) for a in alerts] == [("open", "i2")]  # a new incident


def test_renotify_off_and_the_sweep() -> None:
    fire = Signal("sla:f", "sla", True, "SLA f breached")
    _, state = decide({}, [fire], T0, 0, new_id=_ids())  # type: ignore[arg-type]
    alerts, _ = decide(state, [fire], T0 + timedelta(days=9), 0, new_id=_ids(), sweep=True)  # type: ignore[arg-type]
    assert alerts == []  # renotify: off
    alerts, _ = decide(state, [], T0 + timedelta(hours=5), 4 * 3600, new_id=_ids(), sweep=True)  # type: ignore[arg-type]
    assert [a.event for a in alerts] == ["renotify"]


@pytest.mark.parametrize(
    ("landed", "quarantined", "history", "firing"),
    [
        (95, 5, [], False),  # 5 %: at the limit, not above
        (90, 10, [], True),  # 10 % > 5 %
        (97, 3, [0.005, 0.006, 0.004], True),  # 3 % is more than 3 times 0.5 %
        (97, 3, [0.02, 0.02, 0.01], False),  # 3 % is less than 3 times 2 %
        (97, 3, [0.001, 0.001], False),  # too little history to call it a spike
        (100, 0, [0.001, 0.001, 0.001], False),
        (9, 5, [], None),  # too few records to tell
    ],
)
def test_quarantine_share_rules(landed: int, quarantined: int, history: list[float], firing: bool | None) -> None:
    rule = QuarantineAlertConfig(max_share=0.05, spike_factor=3, min_share=0.01, min_history=3, min_records=20)
    seen: list[datetime] = []

    def earlier(source: str, since: datetime, exclude: str | None) -> list[float]:
        seen.append(since)
        return history

    signal = judge_quarantine(QuarantineShare("orders", landed, quarantined, "r", "lr"), rule, earlier, T0)
    assert (signal.firing if signal else None) is firing
    if signal is not None:
        assert signal.key == "quarantine:orders" and signal.source == "quarantine"
    assert all(s == T0 - timedelta(days=7) for s in seen)


def test_defaults() -> None:
    config = AlertsConfig()
    assert config.renotify_s == 4 * 3600 and config.sources == ["run", "gate", "sla", "quarantine"]

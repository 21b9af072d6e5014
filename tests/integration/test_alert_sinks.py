"""Alert sinks against real servers: SMTP (aiosmtpd, with a login) and SNS (moto, read back through
an SQS queue subscribed to the topic); the log sink; secrets never in what is sent or logged."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alert_support import smtp_server, wait_for, with_alerts
from aws_support import moto_server  # noqa: F401  (fixture)
from lakestack import Lake
from lakestack.config import AlertSinkConfig, EmailSinkConfig
from lakestack.errors import RunError
from lakestack.monitor.alerts import Alert, Incident
from lakestack.monitor.sinks import EmailSink, create_sink, deliver
from lakestack.pipeline.alerting import find_listener

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]


def _alert(event: str = "open") -> Alert:
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    incident = Incident(
        "sla:orders_fresh", "5f1c", "sla", "SLA orders_fresh breached", "42 min behind", "silver.orders",
        None, "20260301T080000Z-ab12", now, now, 1,
    )  # fmt: skip
    return Alert(event, incident, now, "silver.orders is 42 min behind", "shop", "prod")  # type: ignore[arg-type]


def test_email_through_an_smtp_server_with_a_password_from_a_secret(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    password = "smtp-pass-Wh1sper-42"
    monkeypatch.setenv("SMTP_PASSWORD", password)
    caplog.set_level(logging.DEBUG)
    with smtp_server(user="lake", password=password) as (port, received):
        email = {"host": "127.0.0.1", "port": port, "starttls": False, "user": "lake"}
        email |= {"password_secret": "SMTP_PASSWORD", "from": "lake@shop.example"}
        email["to"] = ["oncall@shop.example", "b@shop.example"]
        lake = Lake.open(with_alerts(project, {"retries": 0, "sinks": {"oncall": {"email": email}}}))
        for _ in range(2):
            with pytest.raises(RunError), lake.events.job("build", "build.fact_sales"):
                raise RunError("Binder Error: no column qty")
        listener = find_listener(lake)
        assert listener is not None and listener.flush(60)
        lake.close()
        assert len(received) == 1  # one incident, one mail
        [mail] = received
        assert mail["Subject"] == "[lakestack shop/dev] [FIRING] job build.fact_sales failed"
        assert mail["From"] == "lake@shop.example" and mail["To"] == "oncall@shop.example, b@shop.example"
        assert mail["X-Lakestack-Incident"] == "run:build.fact_sales"
        body = mail.get_payload(decode=True).decode()
        assert "Binder Error: no column qty" in body and "incident:  run:build.fact_sales" in body
        assert password not in body and password not in caplog.text


def test_a_wrong_smtp_password_fails_for_good_without_retrying_or_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "not-the-password-77")
    with smtp_server(user="lake", password="the-password-99") as (port, received):
        config = EmailSinkConfig.model_validate(
            {
                "host": "127.0.0.1",
                "port": port,
                "starttls": False,
                "user": "lake",
                "password_secret": "SMTP_PASSWORD",
                "from": "lake@shop.example",
                "to": ["oncall@shop.example"],
            }
        )
        ok, error, retried = deliver(EmailSink("oncall", config), _alert(), retries=3)
    assert not ok and retried == 0 and received == []
    assert error == "SMTP 535" and "not-the-password" not in str(error)


def test_an_unset_secret_is_a_failed_delivery_not_an_error() -> None:
    sink = create_sink(
        "team", AlertSinkConfig.model_validate({"webhook": {"url": {"secret": "LAKESTACK_TEST_NO_SUCH_HOOK"}}})
    )
    ok, error, retried = deliver(sink, _alert(), retries=3)
    assert not ok and retried == 0
    assert "secret 'LAKESTACK_TEST_NO_SUCH_HOOK' is not set" in str(error)


def test_sns_publishes_to_the_topic(moto_server: str) -> None:  # noqa: F811
    import boto3

    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_server)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_server)
    topic = sns.create_topic(Name="lake-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="lake-alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    sink = create_sink(
        "pager", AlertSinkConfig.model_validate({"sns": {"topic_arn": topic, "endpoint_url": moto_server}})
    )
    assert deliver(sink, _alert(), retries=0) == (True, None, 0)
    assert deliver(sink, _alert("resolve"), retries=0) == (True, None, 0)

    messages: list[dict[str, object]] = []

    def drained() -> bool:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages.extend(json.loads(m["Body"]) for m in got.get("Messages", []))
        return len(messages) >= 2

    assert wait_for(drained, 30)
    subjects = sorted(str(m["Subject"]) for m in messages)
    assert subjects == [
        "[lakestack shop/prod] [FIRING] SLA orders_fresh breached",
        "[lakestack shop/prod] [RESOLVED] SLA orders_fresh breached",
    ]
    assert all("silver.orders is 42 min behind" in str(m["Message"]) for m in messages)
    attributes = [m["MessageAttributes"] for m in messages]
    assert all(a["incident"]["Value"] == "sla:orders_fresh" for a in attributes)  # type: ignore[index]


def test_sns_to_a_topic_that_does_not_exist_fails_for_good(moto_server: str) -> None:  # noqa: F811
    arn = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    sink = create_sink(
        "pager", AlertSinkConfig.model_validate({"sns": {"topic_arn": arn, "endpoint_url": moto_server}})
    )
    ok, error, retried = deliver(sink, _alert(), retries=3)
    assert not ok and retried == 0 and "NotFound" in str(error)


def test_the_log_sink_writes_one_line_per_alert(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lakestack.alerts")
    sink = create_sink("audit", AlertSinkConfig.model_validate({"log": {"level": "error"}}))
    assert deliver(sink, _alert(), retries=0)[0] and deliver(sink, _alert("resolve"), retries=0)[0]
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "lakestack.alerts"]
    assert records == [
        ("ERROR", "[FIRING] SLA orders_fresh breached — silver.orders is 42 min behind (sla:orders_fresh)"),
        ("INFO", "[RESOLVED] SLA orders_fresh breached — silver.orders is 42 min behind (sla:orders_fresh)"),
    ]

"""Where alerts go: `log`, `webhook` (lakestack's JSON or Slack's), `email` (SMTP), `sns` (boto3).

A :class:`Sink` makes one delivery attempt (:meth:`Sink.send`); :func:`deliver` retries it with
backoff; a :class:`Dispatcher` gives each sink a bounded queue and a sender thread of its own, so
the data job only queues, and a sink that is down or slow delays neither the job nor the other
sinks. What does not fit a queue, fails every attempt, or is still queued when the dispatcher
closes is counted per sink and logged.

Secrets (a Slack hook URL, a webhook token or header, the SMTP password) are named in the project
file and read at the first send; their values are redacted from every log line and never appear
in a payload. Log lines name the sink, never its URL.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lakestack._secrets import redact
from lakestack.config import (
    AlertsConfig,
    AlertSinkConfig,
    EmailSinkConfig,
    LogSinkConfig,
    SecretRef,
    SnsSinkConfig,
    WebhookSinkConfig,
    reveal,
)
from lakestack.monitor.alerts import Alert

log = logging.getLogger(__name__)
alert_log = logging.getLogger("lakestack.alerts")
USER_AGENT = "lakestack-alerts"
BACKOFF_S = 0.5  # the first retry waits this long; each next one twice as long (at most MAX_BACKOFF_S)
MAX_BACKOFF_S = 8.0
IDLE_S = 2.0  # a sender thread without work this long ends; the next alert starts another


class DeliveryError(Exception):
    """An attempt failed. `permanent`: retrying cannot help (refused, misconfigured)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(redact(message))
        self.permanent = permanent


class Sink(ABC):
    """One named destination; `send` makes one attempt and raises DeliveryError when it fails."""

    kind = "sink"

    def __init__(self, name: str, sources: Sequence[str] | None = None) -> None:
        self.name = name
        self.sources = frozenset(sources) if sources is not None else None

    def wants(self, alert: Alert) -> bool:
        return alert.event == "test" or self.sources is None or alert.incident.source in self.sources

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver once."""


# -- payloads ---------------------------------------------------------------------------------------


def json_payload(alert: Alert) -> dict[str, Any]:
    """lakestack's own webhook body (version 1)."""
    i = alert.incident
    return {
        "version": 1,
        "event": alert.event,
        "status": alert.status,
        "key": i.key,
        "incident_id": i.incident_id,
        "source": i.source,
        "severity": i.severity,
        "title": i.title,
        "message": alert.detail,
        "dataset": i.dataset,
        "job": i.job,
        "run_id": i.run_id,
        "project": alert.project,
        "environment": alert.environment,
        "opened_at": i.opened_at.isoformat(),
        "at": alert.at.isoformat(),
        "notification": i.notifications,
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_COLOURS = {"firing": "#d62728", "resolved": "#2ca02c", "test": "#1f77b4"}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook body: `text` (the notification line) and blocks with the details."""
    i = alert.incident
    head = _slack_escape(alert.summary())
    facts = [("project", f"{alert.project} · {alert.environment}"), ("incident", i.key)]
    facts += [(k, v) for k, v in (("dataset", i.dataset), ("job", i.job), ("run", i.run_id)) if v]
    since = f"open since {i.opened_at:%Y-%m-%d %H:%M} UTC" + (
        f" · notice {i.notifications}" if i.notifications > 1 else ""
    )
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{_slack_escape(str(v))}"} for k, v in facts]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*"}}]
    if alert.detail:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(alert.detail)}})
    blocks.append({"type": "section", "fields": fields[:10]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": since}]})
    return {"text": head, "attachments": [{"color": _COLOURS[alert.status], "blocks": blocks}]}


def text_body(alert: Alert) -> str:
    """The plain text of an email or SNS message."""
    i = alert.incident
    lines = [alert.summary(), ""]
    if alert.detail:
        lines += [alert.detail, ""]
    lines += [f"project:   {alert.project} ({alert.environment})", f"incident:  {i.key} ({i.incident_id})"]
    lines += [f"{k + ':':<10} {v}" for k, v in (("dataset", i.dataset), ("job", i.job), ("run", i.run_id)) if v]
    lines += [
        f"opened:    {i.opened_at:%Y-%m-%d %H:%M:%S} UTC",
        f"this:      {alert.event} at {alert.at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    return "\n".join(lines) + "\n"


def subject(alert: Alert) -> str:
    """One ASCII line under 100 characters (SNS's limit), for a mail subject and an SNS subject."""
    text = f"[lakestack {alert.project}/{alert.environment}] {alert.summary()}"
    text = text.encode("ascii", "replace").decode().replace("\n", " ")
    return text if len(text) < 100 else text[:96] + "..."


# -- sinks ------------------------------------------------------------------------------------------


class LogSink(Sink):
    kind = "log"

    def __init__(self, name: str, config: LogSinkConfig, sources: Sequence[str] | None = None) -> None:
        super().__init__(name, sources)
        self.level = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}[config.level]

    def send(self, alert: Alert) -> None:
        level = logging.INFO if alert.event in ("resolve", "test") else self.level
        alert_log.log(level, "%s — %s (%s)", alert.summary(), alert.detail or "-", alert.incident.key)


def _secret(name: str) -> str:
    try:
        return SecretRef(secret=name).resolve()
    except Exception as exc:  # an unset secret fails this sink's deliveries, never the job
        raise DeliveryError(str(exc), permanent=True) from None


class WebhookSink(Sink):
    kind = "webhook"

    def __init__(self, name: str, config: WebhookSinkConfig, sources: Sequence[str] | None = None) -> None:
        super().__init__(name, sources)
        self.config = config

    def _request(self, body: bytes) -> Any:
        import urllib.request

        try:
            url = reveal(self.config.url)
            headers = {k: reveal(v) or "" for k, v in self.config.headers.items()}
        except Exception as exc:
            raise DeliveryError(str(exc), permanent=True) from None
        request = urllib.request.Request(str(url), data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        for key, value in headers.items():
            request.add_header(key, value)
        if self.config.token_secret:
            request.add_header("Authorization", f"Bearer {_secret(self.config.token_secret)}")
        return request

    def send(self, alert: Alert) -> None:
        import urllib.error
        import urllib.request

        payload = slack_payload(alert) if self.config.format == "slack" else json_payload(alert)
        request = self._request(json.dumps(payload, ensure_ascii=False).encode())
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as answer:  # http(s) only (config)
                answer.read(65536)
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 425, 429)
            raise DeliveryError(f"HTTP {exc.code}", permanent=permanent) from None
        except (OSError, ValueError) as exc:  # refused, reset, timed out, unreachable
            raise DeliveryError(_reason(exc)) from None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason if reason is not None else exc}"


class EmailSink(Sink):
    kind = "email"

    def __init__(self, name: str, config: EmailSinkConfig, sources: Sequence[str] | None = None) -> None:
        super().__init__(name, sources)
        self.config = config

    def message(self, alert: Alert) -> Any:
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        msg = EmailMessage()
        msg["Subject"] = subject(alert)
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2])
        msg["X-Lakestack-Incident"] = alert.incident.key
        msg.set_content(text_body(alert))
        return msg

    def send(self, alert: Alert) -> None:
        import smtplib
        import ssl

        c = self.config
        password = _secret(c.password_secret) if c.password_secret else None
        try:
            with smtplib.SMTP(c.host, c.port, timeout=c.timeout) as smtp:
                smtp.ehlo()
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if c.user:
                    smtp.login(c.user, password or "")
                smtp.send_message(self.message(alert))
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("SMTP: every recipient was refused", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(_reason(exc)) from None


class SnsSink(Sink):
    kind = "sns"

    def __init__(self, name: str, config: SnsSinkConfig, sources: Sequence[str] | None = None) -> None:
        super().__init__(name, sources)
        self.config = config
        self._client: Any = None

    def _sns(self) -> Any:
        if self._client is None:
            try:
                import boto3  # type: ignore[import-untyped]
                from botocore.config import Config  # type: ignore[import-untyped]
            except ImportError:
                raise DeliveryError("the sns sink needs boto3: pip install 'lakestack[aws]'", permanent=True) from None
            region = self.config.region or self.config.topic_arn.split(":")[3]
            retries = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1})
            self._client = boto3.client(
                "sns", region_name=region, endpoint_url=self.config.endpoint_url, config=retries
            )
        return self._client

    def send(self, alert: Alert) -> None:
        client = self._sns()
        try:
            client.publish(
                TopicArn=self.config.topic_arn,
                Subject=subject(alert),
                Message=text_body(alert),
                MessageAttributes={
                    "incident": {"DataType": "String", "StringValue": alert.incident.key},
                    "status": {"DataType": "String", "StringValue": alert.status},
                },
            )
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            transient = (
                not code or "Throttl" in code or code in ("InternalError", "InternalFailure", "ServiceUnavailable")
            )
            raise DeliveryError(f"{type(exc).__name__}: {code or exc}", permanent=not transient) from None


_KINDS: dict[str, Any] = {"log": LogSink, "webhook": WebhookSink, "email": EmailSink, "sns": SnsSink}


def create_sink(name: str, config: AlertSinkConfig) -> Sink:
    sink: Sink = _KINDS[config.kind](name, getattr(config, config.kind), config.sources)
    return sink


def create_sinks(config: AlertsConfig) -> list[Sink]:
    """The sinks an alerts block names, in its order (nothing is resolved or connected yet)."""
    return [create_sink(name, sink) for name, sink in config.sinks.items()]


# -- delivery -----------------------------------------------------------------------------------


def deliver(
    sink: Sink, alert: Alert, *, retries: int, wait: Callable[[float], bool] | None = None
) -> tuple[bool, str | None, int]:
    """Send with `retries` retries and backoff: (delivered, last error, retries made).

    `wait(seconds)` sleeps between attempts and returns True to give up (a closing dispatcher).
    """
    error: str | None = None
    for attempt in range(retries + 1):
        try:
            sink.send(alert)
            return True, None, attempt
        except DeliveryError as exc:
            error = str(exc)
            if exc.permanent:
                return False, error, attempt
        except Exception as exc:  # a sink's own bug: counted like a failed delivery
            error = redact(f"{type(exc).__name__}: {exc}")
        if attempt < retries and (wait or _sleep)(min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt)):
            return False, error, attempt
    return False, error, retries


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


@dataclass(slots=True)
class SinkStats:
    delivered: int = 0
    failed: int = 0  # gave up after the retries (or refused for good)
    dropped: int = 0  # never attempted: the queue was full, or the dispatcher closed first
    retries: int = 0
    last_error: str | None = None


class _Sender:
    """One sink's bounded queue and its sender thread (started on demand, ended when idle)."""

    def __init__(self, sink: Sink, retries: int, queue_max: int, stop: threading.Event) -> None:
        self.sink, self.retries, self.stop = sink, retries, stop
        self.queue: queue.Queue[Alert] = queue.Queue(queue_max)
        self.stats = SinkStats()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, alert: Alert) -> None:
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            self.stats.dropped += 1
            log.warning(
                "alert sink %s: queue full (%d): dropped %s", self.sink.name, self.queue.maxsize, alert.incident.key
            )
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"alerts-{self.sink.name}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                alert = self.queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self.queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._send(alert)
            finally:
                self.queue.task_done()

    def _send(self, alert: Alert) -> None:
        ok, error, retried = deliver(self.sink, alert, retries=self.retries, wait=self.stop.wait)
        self.stats.retries += retried
        if ok:
            self.stats.delivered += 1
            return
        self.stats.failed += 1
        self.stats.last_error = error
        log.warning(
            "alert sink %s (%s): could not deliver %s %s: %s",
            self.sink.name,
            self.sink.kind,
            alert.event,
            alert.incident.key,
            error,
        )

    def pending(self) -> int:
        return self.queue.unfinished_tasks  # queued or being sent


class Dispatcher:
    """Hands alerts to every sink that wants them, without waiting for any."""

    def __init__(self, sinks: Sequence[Sink], *, retries: int = 3, queue_max: int = 1000) -> None:
        self._stop = threading.Event()
        self.senders = {s.name: _Sender(s, retries, queue_max, self._stop) for s in sinks}

    def submit(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            for sender in self.senders.values():
                if sender.sink.wants(alert):
                    sender.put(alert)

    @property
    def stats(self) -> dict[str, SinkStats]:
        return {name: s.stats for name, s in self.senders.items()}

    @property
    def dropped(self) -> int:
        """Alerts a sink did not get: dropped, or failed after every retry."""
        return sum(s.stats.dropped + s.stats.failed for s in self.senders.values())

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every queue is empty and no sender is busy."""
        deadline = time.monotonic() + timeout
        while any(s.pending() for s in self.senders.values()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, wait: float) -> None:
        """Deliver what is queued for up to `wait` seconds; count and log what is left as dropped."""
        self.flush(wait)
        self._stop.set()
        for sender in self.senders.values():
            left = 0  # an attempt in flight finishes and counts itself
            while True:
                try:
                    sender.queue.get_nowait()
                except queue.Empty:
                    break
                sender.queue.task_done()
                left += 1
            if left:
                sender.stats.dropped += left
                log.warning(
                    "alert sink %s: %d alert(s) not delivered within %.0f s of closing", sender.sink.name, left, wait
                )

"""Incidents and their state: one alert per incident, re-sent while it stays open, resolved once.

An observation becomes a :class:`Signal` about one incident key: `run:<job>` (a job failed),
`gate:<dataset>:<check>` (a fail-severity check failed), `sla:<name>` (an SLA is breached),
`quarantine:<source>` (an ingest quarantined an unusual share of its records). A signal is
*firing* (the problem is there) or *clear* (it is not, any more). :func:`decide` turns signals and
the open incidents into :class:`Alert` s: `open` for a new incident, `renotify` when one that
stays open was last sent `renotify` seconds ago or more, `resolve` when it clears; a repeated
firing signal within the interval says nothing new, so two failing runs make one alert.

:class:`AlertBook` keeps the state in the warehouse, in `_lakestack.alerts`: each change is a row
(the history `lakestack alerts --all` lists), and each commit carries the open incidents in its
snapshot summary (the checkpoint), so the state is one metadata read, and a restarted process or
another machine sees what was already sent. A commit is compare-and-swap: the table does not let
pyiceberg retry blindly, so a commit lands only on the snapshot its decision read; a writer that
loses the race decides again on the winner's state. Two processes that see the same failure
therefore send it once. Alerts are sent after their commit (at most once per change: a process
that dies in between sends nothing, and the next re-notification carries it).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from lakestack.errors import CommitConflictError

log = logging.getLogger(__name__)

ALERTS = "_lakestack.alerts"
STATE = "lakestack.alerts"  # snapshot summary key: the open incidents after the commit, as JSON
AlertEvent = Literal["open", "renotify", "resolve", "test"]
SEVERITY = {"run": "error", "gate": "error", "sla": "error", "quarantine": "warning", "test": "info"}
MAX_TEXT = 1000  # characters of a title or message kept in the state and sent


@dataclass(frozen=True, slots=True)
class Signal:
    """What one observation says about one incident: it is happening (`firing`) or it is not."""

    key: str  # run:<job> | gate:<dataset>:<check> | sla:<name> | quarantine:<source>
    source: str  # run | gate | sla | quarantine
    firing: bool
    title: str  # one line for people: "job ingest.orders failed"
    message: str = ""  # why: the error, the check's message, the SLA's observed value
    dataset: str | None = None
    job: str | None = None
    run_id: str | None = None  # the lakestack run id that observed it


@dataclass(frozen=True, slots=True)
class Incident:
    """An open problem, as the state keeps it."""

    key: str
    incident_id: str
    source: str
    title: str
    message: str
    dataset: str | None
    job: str | None
    run_id: str | None
    opened_at: datetime
    notified_at: datetime
    notifications: int  # alerts sent for it so far (the opening one included)

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.source, "error")

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["opened_at"], out["notified_at"] = self.opened_at.isoformat(), self.notified_at.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        values = dict(data)
        values["opened_at"] = datetime.fromisoformat(values["opened_at"])
        values["notified_at"] = datetime.fromisoformat(values["notified_at"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification: an incident opened, is still open, resolved; or a sink's test."""

    event: AlertEvent
    incident: Incident
    at: datetime
    detail: str  # this notification's own line: the newest message, or what resolved it
    project: str = ""
    environment: str = ""

    @property
    def status(self) -> str:
        return "resolved" if self.event == "resolve" else "test" if self.event == "test" else "firing"

    def summary(self) -> str:
        """One line: `[FIRING] job ingest.orders failed`."""
        return f"[{self.status.upper()}] {self.incident.title}"


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def decide(
    open_incidents: dict[str, Incident],
    signals: Iterable[Signal],
    now: datetime,
    renotify_s: float,
    *,
    new_id: Callable[[], str],
    sweep: bool = False,
) -> tuple[list[Alert], dict[str, Incident]]:
    """The alerts `signals` call for, and the open incidents after them (pure; `now` is the clock).

    With `sweep`, every open incident not sent for `renotify_s` is re-sent even without a signal
    (what a scheduler does, so a failed job that is not run again is still reminded of).
    """
    state = dict(open_incidents)
    alerts: list[Alert] = []
    for signal in signals:
        found = state.get(signal.key)
        if signal.firing and found is None:
            incident = Incident(
                signal.key,
                new_id(),
                signal.source,
                _clip(signal.title),
                _clip(signal.message),
                signal.dataset,
                signal.job,
                signal.run_id,
                now,
                now,
                1,
            )
            state[signal.key] = incident
            alerts.append(Alert("open", incident, now, incident.message))
        elif signal.firing and found is not None and _due(found, now, renotify_s):
            incident = replace(
                found,
                message=_clip(signal.message) or found.message,
                run_id=signal.run_id or found.run_id,
                notified_at=now,
                notifications=found.notifications + 1,
            )
            state[signal.key] = incident
            alerts.append(Alert("renotify", incident, now, incident.message))
        elif not signal.firing and found is not None:
            del state[signal.key]
            alerts.append(
                Alert("resolve", replace(found, run_id=signal.run_id or found.run_id), now, _clip(signal.message))
            )
    if sweep:
        for key, incident in sorted(state.items()):
            if _due(incident, now, renotify_s) and not any(a.incident.key == key for a in alerts):
                state[key] = replace(incident, notified_at=now, notifications=incident.notifications + 1)
                alerts.append(Alert("renotify", state[key], now, incident.message))
    return alerts, state


def _due(incident: Incident, now: datetime, renotify_s: float) -> bool:
    return renotify_s > 0 and (now - incident.notified_at).total_seconds() >= renotify_s


# -- the state in the warehouse -----------------------------------------------------------------


def alerts_schema() -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("key", pa.string()),
            ("incident_id", pa.string()),
            ("event", pa.string()),
            ("source", pa.string()),
            ("severity", pa.string()),
            ("title", pa.string()),
            ("message", pa.string()),
            ("dataset", pa.string()),
            ("job", pa.string()),
            ("run_id", pa.string()),
            ("opened_at", ts),
            ("at", ts),
            ("notifications", pa.int64()),
            ("writer", pa.string()),
        ]
    )


def _row(alert: Alert, writer: str) -> dict[str, Any]:
    i = alert.incident
    return {
        "key": i.key,
        "incident_id": i.incident_id,
        "event": alert.event,
        "source": i.source,
        "severity": i.severity,
        "title": i.title,
        "message": alert.detail,
        "dataset": i.dataset,
        "job": i.job,
        "run_id": i.run_id,
        "opened_at": i.opened_at,
        "at": alert.at,
        "notifications": i.notifications,
        "writer": writer,
    }


def _summary(snapshot: Any) -> dict[str, str]:
    return dict(snapshot.summary.additional_properties) if snapshot is not None and snapshot.summary else {}


def _state_json(state: dict[str, Incident]) -> str:
    return json.dumps({"open": {k: v.as_json() for k, v in sorted(state.items())}}, separators=(",", ":"))


def _has_batch(table: Any, batch_id: str) -> bool:
    from lakestack.storage.warehouse import BATCH_ID

    return any(_summary(s).get(BATCH_ID) == batch_id for s in table.metadata.snapshots[-20:])


def open_from(table: Any) -> dict[str, Incident]:
    """The open incidents a table's current snapshot carries."""
    raw = _summary(table.current_snapshot() if table is not None else None).get(STATE)
    if not raw:
        return {}
    return {k: Incident.from_json(v) for k, v in json.loads(raw).get("open", {}).items()}


class AlertBook:
    """The alert state of one lake in `_lakestack.alerts` (see the module docstring).

    `warehouse` is called when the state is first needed (opening a catalog is not free).
    """

    def __init__(
        self,
        warehouse: Callable[[], Any],
        *,
        renotify_s: float,
        project: str = "",
        environment: str = "",
        retries: int = 8,
    ) -> None:
        self._warehouse = warehouse
        self.renotify_s = renotify_s
        self.project, self.environment = project, environment
        self.retries = retries
        self.writer = f"{socket.gethostname()}:{os.getpid()}"
        self.conflicts = 0  # commits another writer's commit overtook (decided again)

    def _table(self, create: bool) -> Any:
        warehouse = self._warehouse()
        if not create and not warehouse.exists(ALERTS):
            return None
        return warehouse.system_table(ALERTS, alerts_schema())

    def open_incidents(self) -> dict[str, Incident]:
        """The incidents open now, by key."""
        return open_from(self._table(create=False))

    def record(self, signals: Sequence[Signal], now: datetime | None = None, *, sweep: bool = False) -> list[Alert]:
        """Decide and commit the alerts `signals` call for; returns them (to be sent) once committed.

        The decision is made again on a fresh read whenever another writer committed first, so an
        alert another process already sent is not sent twice.
        """
        when = now or datetime.now(UTC)
        if not signals and not sweep:
            return []
        if not any(s.firing for s in signals) and self._table(create=False) is None:
            return []  # nothing is open and nothing opens: a clean run creates no table
        table = self._table(create=True)
        run_id = next((s.run_id for s in signals if s.run_id), None) or "alerts"
        batch_id = f"alerts:{_new_id()}"
        for n in range(self.retries + 1):
            alerts, state = decide(open_from(table), signals, when, self.renotify_s, new_id=_new_id, sweep=sweep)
            if not alerts:
                return []
            alerts = [replace(a, project=self.project, environment=self.environment) for a in alerts]
            if self._commit(table, alerts, state, run_id, batch_id):
                return alerts
            self.conflicts += 1
            table = table.refresh()
            if _has_batch(table, batch_id):  # the outcome was unknown, and it did land
                return alerts
            if n < self.retries:
                time.sleep(min(1.0, 0.05 * 2**n) * random.uniform(0.5, 1.5))  # rivals fall out of step
        raise CommitConflictError(f"could not record alerts in {ALERTS} after {self.retries + 1} attempts")

    def _commit(self, table: Any, alerts: list[Alert], state: dict[str, Incident], run_id: str, batch_id: str) -> bool:
        """One compare-and-swap: True when it landed on the snapshot `table` is at."""
        import pyarrow as pa
        from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

        from lakestack.failpoints import failpoint
        from lakestack.storage.warehouse import BATCH_ID, RUN_ID

        rows = pa.Table.from_pylist([_row(a, self.writer) for a in alerts], schema=alerts_schema())
        props = {RUN_ID: run_id, BATCH_ID: batch_id, STATE: _state_json(state)}
        failpoint("alerts.before_commit")
        try:
            table.append(rows.cast(table.schema().as_arrow()), snapshot_properties=props)
        except (CommitFailedException, CommitStateUnknownException):
            return False
        failpoint("alerts.after_commit")
        return True

    def history(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Every recorded change, newest first."""
        table = self._table(create=False)
        if table is None:
            return []
        rows: list[dict[str, Any]] = table.scan().to_arrow().to_pylist()
        rows = [r for r in rows if since is None or r["at"] >= since]
        rows.sort(key=lambda r: (r["at"], r["notifications"], r["event"] == "resolve"), reverse=True)
        return rows[:limit] if limit else rows

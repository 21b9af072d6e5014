"""Run identities and the reports runs return."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakestack.ingest.base import SourceReport

# A run id given from outside (`lakestack --run-id`, LAKESTACK_RUN_ID: an orchestrator's DAG run
# passing one id to each step); a context variable, so threads a process starts make their own.
_GIVEN_RUN_ID: ContextVar[str | None] = ContextVar("lakestack_given_run_id", default=None)
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+~-]{0,249}$")  # Airflow's run ids fit


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: `20261122T113000Z-1a2b3c4d`, or the one given by `use_run_id`."""
    given = _GIVEN_RUN_ID.get()
    if given is not None:
        return given
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def use_run_id(run_id: str | None) -> None:
    """Make `new_run_id` return `run_id` in this context (None: new ids again)."""
    if run_id is not None and not RUN_ID_PATTERN.match(run_id):
        from lakestack.errors import UsageError

        raise UsageError(
            f"run id {run_id!r}: use letters, digits and _ . : + ~ - (at most 250, starting with a letter or digit)"
        )
    _GIVEN_RUN_ID.set(run_id)


@dataclass(frozen=True, slots=True)
class IngestReport:
    run_id: str
    started_at: datetime
    duration_s: float
    sources: tuple[SourceReport, ...]

    @property
    def rows_in(self) -> int:
        return sum(s.rows_in for s in self.sources)

    @property
    def landed(self) -> int:
        return sum(s.landed for s in self.sources)

    @property
    def quarantined(self) -> int:
        return sum(s.quarantined for s in self.sources)


@dataclass(frozen=True, slots=True)
class RunReport:
    """One `lakestack run`: what each stage did under one run id."""

    run_id: str
    started_at: datetime
    duration_s: float
    ingest: IngestReport | None
    promoted: tuple[Any, ...]
    built: tuple[Any, ...]
    checks: tuple[Any, ...] = ()
    blocked: tuple[str, ...] = ()
    published: tuple[Any, ...] = ()  # pipeline/publish.Published, after gate(gold)

    @property
    def failed_checks(self) -> list[Any]:
        return [c for c in self.checks if c.blocks]

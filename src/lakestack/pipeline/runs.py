"""Run identities and the reports runs return."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakestack.ingest.base import SourceReport


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: `20261122T113000Z-1a2b3c4d`."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


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

    @property
    def failed_checks(self) -> list[Any]:
        return [c for c in self.checks if c.blocks]

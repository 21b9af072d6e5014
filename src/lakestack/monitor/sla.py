"""Service-level agreements in `slas.yaml`: freshness, deadlines, completeness, availability.

:func:`evaluate` measures every SLA of a project now (`monitor/sla_measure.py`), adds the error
budget used over 7 and 30 days from the stored history (`monitor/sla_history.py`) and stores the
evaluation in `_lakestack.sla_results`, one commit for all of them. `Lake.sla()` is the façade.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

SlaStatus = Literal["ok", "breach", "unknown"]


@dataclass(frozen=True, slots=True)
class SlaResult:
    """One SLA evaluated at one moment: what `lakestack sla` prints and alerts read."""

    name: str  # unique within slas.yaml: "silver_orders_fresh"
    kind: str  # freshness | deadline | completeness | availability
    dataset: str | None  # "silver.orders"; None for a project-wide SLA
    status: SlaStatus
    observed: str  # what was measured, for people: "12 min behind", "29 of 30 partitions"
    target: str  # what was promised: "≤ 15 min behind"
    message: str  # one line saying why, for the breach alert
    evaluated_at: datetime
    time_left_s: float | None = None  # seconds until a breach, when the SLA is met and it can be told
    observed_value: float | None = None  # the measure as a number (seconds old, share of runs, days present)
    target_value: float | None = None  # the limit in the same unit, where there is one
    objective: float | None = None  # share of the time the SLA must be met (0.99): the error budget
    budget_7d: float | None = None  # error budget used over 7 days: 0.25 a quarter, 1.0 all, more: overspent
    budget_30d: float | None = None  # the same over 30 days


class LakeView(Protocol):
    """What evaluation needs of a lake (`pipeline.Lake` is one)."""

    @property
    def warehouse(self) -> Any: ...

    @property
    def project(self) -> Any: ...


def load_spec(root: Path, config: Any) -> Any:
    """The project's `slas.yaml` (a `SlaFile`), or None when it has none."""
    from lakestack.monitor.sla_spec import load_slas

    return load_slas(root, config)


def evaluate(
    lake: LakeView, now: datetime | None = None, *, names: Sequence[str] | None = None, store: bool = True
) -> list[SlaResult]:
    """Evaluate the SLAs of `slas.yaml` (those in `names`, or all) at `now` (default: the clock).

    Results come in file order, with their error budgets. With `store`, they are appended to
    `_lakestack.sla_results` in one commit (that history is what later budgets are computed from).
    """
    from lakestack.errors import UsageError
    from lakestack.monitor.sla_history import read_history, with_budgets
    from lakestack.monitor.sla_measure import Probe
    from lakestack.monitor.sla_spec import AvailabilitySla, parse_duration

    now = (now or datetime.now(UTC)).astimezone(UTC)
    spec = load_spec(lake.project.root, lake.project.config)
    slas = dict(spec.slas) if spec is not None else {}
    unknown = [n for n in names or [] if n not in slas]
    if unknown:
        raise UsageError(f"no SLA named {', '.join(unknown)} in slas.yaml (SLAs: {', '.join(slas) or 'none'})")
    chosen = {n: s for n, s in slas.items() if not names or n in names}
    if not chosen:
        return []
    windows = [parse_duration(s.window) for s in chosen.values() if isinstance(s, AvailabilitySla)]
    probe = Probe(lake.warehouse, now, now - max([timedelta(days=2), *windows]))
    results = [_measured(name, sla, probe) for name, sla in chosen.items()]
    past = read_history(lake.warehouse, list(chosen), now - timedelta(days=31))
    results = with_budgets(results, past, {n: spec.objective_of(s) for n, s in chosen.items()}, now)
    if store:
        from lakestack.monitor.sla_history import store as store_results

        store_results(lake.warehouse, results)
    return results


def _measured(name: str, sla: Any, probe: Any) -> SlaResult:
    """One SLA measured; a failure to measure (an SQL error, a broken table) is `unknown` with the reason."""
    from lakestack.errors import LakestackError
    from lakestack.monitor.sla_measure import measure

    try:
        return measure(name, sla, probe)
    except LakestackError as exc:
        log.warning("SLA %s could not be measured: %s", name, exc)
        return SlaResult(name, sla.kind, sla.dataset_name, "unknown", "not measured", "", str(exc), probe.now)

"""`_lakestack.sla_results`: every SLA evaluation, one append per evaluation, and the error budgets
computed from it.

Error budget: an SLA with objective 99 % may be in breach 1 % of a window (1.68 h of 7 days). The
time in breach is read from the stored evaluations: each evaluation's status holds until the next
one (the last known state persists; `unknown` counts neither way). Budget used is the time in
breach over the time allowed: 0.25 is a quarter of it, 1.0 all of it, above 1.0 overspent.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from lakestack.monitor.sla import SlaResult

log = logging.getLogger(__name__)

SLA_RESULTS = "_lakestack.sla_results"
BUDGET_WINDOWS = (timedelta(days=7), timedelta(days=30))  # budget_7d, budget_30d


def results_schema() -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("evaluation_id", pa.string()),
            ("evaluated_at", ts),
            ("name", pa.string()),
            ("kind", pa.string()),
            ("dataset", pa.string()),
            ("status", pa.string()),
            ("observed", pa.string()),
            ("target", pa.string()),
            ("message", pa.string()),
            ("time_left_s", pa.float64()),
            ("observed_value", pa.float64()),
            ("target_value", pa.float64()),
            ("objective", pa.float64()),
            ("budget_7d", pa.float64()),
            ("budget_30d", pa.float64()),
        ]
    )


def read_history(warehouse: Any, names: Sequence[str] | None, since: datetime) -> list[dict[str, Any]]:
    """Stored evaluations since `since` (of `names`, or all), oldest first."""
    from pyiceberg.expressions import GreaterThanOrEqual

    if not warehouse.exists(SLA_RESULTS):
        return []
    condition: Any = GreaterThanOrEqual("evaluated_at", since.isoformat())  # type: ignore[call-arg, arg-type]
    table = warehouse.load(SLA_RESULTS)
    rows: list[dict[str, Any]] = table.scan(row_filter=condition).to_arrow().to_pylist()
    wanted = set(names) if names is not None else None
    rows = [r for r in rows if wanted is None or r["name"] in wanted]
    return sorted(rows, key=lambda r: (r["evaluated_at"], r["name"]))


def budget_used(history: Sequence[tuple[datetime, str]], now: datetime, window: timedelta, objective: float) -> float:
    """The share of the error budget of `window` used by time in breach; `history` holds
    (evaluated_at, status) pairs, oldest first, the current evaluation last."""
    start = now - window
    breached = 0.0
    for (at, status), (until, _) in zip(history, [*history[1:], (now, "")], strict=True):
        if status == "breach" and until > start:
            breached += (min(until, now) - max(at, start)).total_seconds()
    allowed = (1 - objective) * window.total_seconds()
    return breached / allowed


def with_budgets(
    results: list[SlaResult], past: list[dict[str, Any]], objectives: dict[str, float], now: datetime
) -> list[SlaResult]:
    """The results with their objective and budget figures, from `past` (stored evaluations of the
    last 30 days and one before, oldest first) and the results themselves."""
    out = []
    for result in results:
        steps = [(r["evaluated_at"], r["status"]) for r in past if r["name"] == result.name]
        steps = [s for s in steps if s[0] < now] + [(now, result.status)]
        objective = objectives[result.name]
        used = [budget_used(steps, now, window, objective) for window in BUDGET_WINDOWS]
        out.append(dataclasses.replace(result, objective=objective, budget_7d=used[0], budget_30d=used[1]))
    return out


def store(warehouse: Any, results: list[SlaResult]) -> str | None:
    """Append one evaluation's results to `_lakestack.sla_results` in one commit; its id."""
    import pyarrow as pa

    from lakestack.failpoints import failpoint
    from lakestack.storage.warehouse import append

    if not results:
        return None
    evaluation = uuid.uuid4().hex
    schema = results_schema()
    rows = [{**_row(r), "evaluation_id": evaluation} for r in results]
    table = warehouse.system_table(SLA_RESULTS, schema)
    failpoint("sla.before_commit")
    append(table, pa.Table.from_pylist(rows, schema=schema), run_id=evaluation, batch_id=f"sla:{evaluation}")
    failpoint("sla.after_commit")
    return evaluation


def _row(result: SlaResult) -> dict[str, Any]:
    return {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name in _COLUMNS}


_COLUMNS = frozenset(
    {
        "evaluated_at",
        "name",
        "kind",
        "dataset",
        "status",
        "observed",
        "target",
        "message",
        "time_left_s",
        "observed_value",
        "target_value",
        "objective",
        "budget_7d",
        "budget_30d",
    }
)

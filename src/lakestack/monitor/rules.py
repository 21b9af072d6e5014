"""What observations mean for incidents: quarantine shares and SLA results as signals (pure)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lakestack.config import QuarantineAlertConfig, duration_seconds
from lakestack.monitor.alerts import Signal

if TYPE_CHECKING:
    from lakestack.monitor.sla import SlaResult

# (source, since, job run id to leave out) -> the source's earlier quarantine shares
History = Callable[[str, datetime, str | None], list[float]]


@dataclass(frozen=True, slots=True)
class QuarantineShare:
    """An ingest's (or a stream stretch's) counts, judged on the worker thread."""

    source: str
    landed: int
    quarantined: int
    run_id: str | None  # the job's uuid: its own record is left out of the history
    lake_run_id: str | None


def judge_quarantine(
    share: QuarantineShare,
    rule: QuarantineAlertConfig,
    history: History,
    now: datetime,
) -> Signal | None:
    """Firing when the share of quarantined records is above `max_share`, or above `min_share` and
    `spike_factor` times the median of the source's earlier shares over `history`; clear otherwise;
    None for a batch too small to tell (fewer than `min_records`)."""
    total = share.landed + share.quarantined
    if total < rule.min_records or total <= 0:
        return None
    rate = share.quarantined / total
    key, src = f"quarantine:{share.source}", share.source
    seen = f"{share.quarantined:,} of {total:,} records ({rate:.1%}) quarantined"
    if rate > rule.max_share:
        return Signal(
            key,
            "quarantine",
            True,
            f"{src}: {rate:.1%} of records quarantined",
            f"{seen}; above the {rule.max_share:.1%} limit",
            f"quarantine.{src}",
            f"ingest.{src}",
            share.lake_run_id,
        )
    if rule.spike_factor and rate >= rule.min_share:
        earlier = history(src, now - timedelta(seconds=duration_seconds(rule.history)), share.run_id)
        if len(earlier) >= rule.min_history:
            median = statistics.median(earlier)
            if rate > rule.spike_factor * median:
                return Signal(
                    key,
                    "quarantine",
                    True,
                    f"{src}: quarantine spike ({rate:.1%})",
                    f"{seen}; {rate / median if median else float('inf'):.1f}× the {rule.history} median "
                    f"of {median:.2%} over {len(earlier)} ingests",
                    f"quarantine.{src}",
                    f"ingest.{src}",
                    share.lake_run_id,
                )
    return Signal(
        key,
        "quarantine",
        False,
        f"{src}: quarantine share back to normal",
        seen,
        f"quarantine.{src}",
        f"ingest.{src}",
        share.lake_run_id,
    )


def sla_signals(results: Sequence[SlaResult]) -> list[Signal]:
    """An SLA breached is firing; met is clear; unknown (not measurable now) says nothing."""
    out = []
    for r in results:
        if r.status == "unknown":
            continue
        breached = r.status == "breach"
        title = f"SLA {r.name} breached" if breached else f"SLA {r.name} is met again"
        if r.dataset and breached:
            title += f" ({r.dataset})"
        message = r.message if breached else f"{r.observed} (target {r.target})"
        out.append(Signal(f"sla:{r.name}", "sla", breached, title, message, r.dataset, None, None))
    return out

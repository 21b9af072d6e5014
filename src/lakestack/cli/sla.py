"""`lakestack sla`: the SLAs in slas.yaml evaluated now, with their history (monitor/sla.py).

lakestack sla [NAME...] [--json]          evaluate now, store, print; exit 4 when one is breached
lakestack sla history NAME [--since 7d]   the stored evaluations of one SLA
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import GATE_FAILED, JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

SLA_BREACHED = GATE_FAILED  # exit 4: a gate, a check or an SLA failed
_STYLE = {"ok": "green", "breach": "bold red", "unknown": "yellow"}


def register(app: typer.Typer) -> None:
    app.command("sla")(sla)


def sla(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[NAME]... | history NAME",
            help="SLAs to evaluate (default: all); 'history NAME' shows one's stored evaluations.",
        ),
    ] = None,
    since: Annotated[
        str, typer.Option("--since", help="With history: evaluations since 30m, 12h, 7d or an ISO date.")
    ] = "7d",
    json_out: JsonOpt = False,
) -> None:
    """Evaluate the SLAs in slas.yaml now and store the results; exit 4 when any is breached."""
    if names and names[0] == "history":
        _history(ctx, names[1:], since, json_out)
        return
    from lakestack.cli.render import print_json

    lake = _state(ctx).lake()
    results = lake.sla(names=names or None)
    from lakestack.pipeline.alerting import evaluate_alerts

    evaluate_alerts(lake, results)  # an `alerts:` block hears of breaches and recoveries (sent as the command ends)
    from lakestack.pipeline.metrics import record_slas

    record_slas(lake, results)  # sla_breach to CloudWatch (metrics.cloudwatch), sent as the lake closes
    if json_out:
        print_json(_console(), results)
    elif not results:
        _console().print("no SLAs: write them in slas.yaml (see docs/architecture.md, SLAs)")
    else:
        _console().print(sla_table(results))
    if any(r.status == "breach" for r in results):
        raise typer.Exit(SLA_BREACHED)


def _history(ctx: typer.Context, names: list[str], since: str, json_out: bool) -> None:
    from datetime import UTC, datetime

    from lakestack.cli.render import print_json, rows_table
    from lakestack.errors import UsageError
    from lakestack.pipeline.records import parse_since

    if len(names) != 1:
        raise UsageError("usage: lakestack sla history NAME [--since 7d]")
    rows = _state(ctx).lake().sla_history(names, parse_since(since, datetime.now(UTC)))
    if json_out:
        print_json(_console(), rows)
        return
    shown = [{**r, "evaluated_at": r["evaluated_at"].strftime("%Y-%m-%d %H:%M:%S")} for r in rows]
    columns = ["evaluated_at", "status", "observed", "message"]
    _console().print(rows_table(f"SLA {names[0]} · {len(rows):,} evaluations since {since}", shown, columns))


def sla_table(results: list[Any]) -> Any:
    """name, kind, dataset, status, observed, target, time left, budget 7d/30d."""
    from rich.table import Table

    from lakestack.cli.render import duration, plain

    table = Table(title=plain(f"SLAs · {results[0].evaluated_at:%Y-%m-%d %H:%M UTC}"), title_justify="left")
    for column in ("name", "kind", "dataset", "status", "observed", "target", "time left", "budget 7d", "budget 30d"):
        numeric = column.startswith(("time", "budget"))
        table.add_column(plain(column), justify="right" if numeric else "left", no_wrap=numeric or column == "status")
    for r in results:
        left = duration(r.time_left_s) if r.time_left_s is not None else "-"
        table.add_row(
            plain(r.name),
            plain(r.kind),
            plain(r.dataset or "-"),
            plain(r.status, _STYLE.get(r.status, "")),
            plain(r.observed),
            plain(r.target),
            plain(left),
            _budget(r.budget_7d),
            _budget(r.budget_30d),
        )
    return table


def _budget(used: float | None) -> Any:
    from lakestack.cli.render import plain

    if used is None:
        return plain("-")
    return plain(f"{used:.0%}", "bold red" if used >= 1 else "yellow" if used >= 0.5 else "")

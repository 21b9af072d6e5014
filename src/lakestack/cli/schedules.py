"""`lakestack schedules`: the project's `schedules:` block, with next fire times and last firings."""

from __future__ import annotations

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    app.command("schedules")(schedules)


def schedules(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The jobs `lakestack serve` runs on a cron: next fire time, last firing (from the run records)."""
    from lakestack.cli.render import markup, print_json, rows_table
    from lakestack.orchestrate.scheduler import schedule_status

    lake = _state(ctx).lake()
    rows = schedule_status(lake)
    if json_out:
        print_json(_console(), rows)
        return
    console = _console()
    if not rows:
        console.print("no schedules: add a schedules: block to lakestack.yaml (see docs/orchestration.md)")
        return
    shown = [
        {
            **r,
            "next": f"{r['next']:%Y-%m-%d %H:%M:%S}Z",
            "last_started": f"{r['last_started']:%Y-%m-%d %H:%M:%S}Z" if r["last_started"] else "never",
            "last_status": r["last_status"] or "",
            "last_run_id": r["last_run_id"] or "",
        }
        for r in rows
    ]
    columns = ["job", "cron", "timezone", "missed", "next", "last_started", "last_status", "last_run_id"]
    console.print(rows_table("schedules (run by lakestack serve; times in UTC)", shown, columns))
    for r in rows:
        if r["last_error"] and r["last_status"] not in ("COMPLETE", None):
            console.print(markup("[yellow]{}[/]: {}", r["job"], r["last_error"]))

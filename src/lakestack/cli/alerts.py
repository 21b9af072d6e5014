"""`lakestack alerts`: open incidents, their history, and a test alert per sink (pipeline/alerting.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

alerts_app = typer.Typer(help="Alerts: open incidents, what was sent, and a test alert to each sink.")
DELIVERY_FAILED = 3


def register(app: typer.Typer) -> None:
    """Add `lakestack alerts` and `lakestack alerts test` to the CLI."""
    app.add_typer(alerts_app, name="alerts")


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Every alert sent (opened, re-sent, resolved), newest first.")
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="With --all: only alerts since 30m, 12h, 1d, 2w or an ISO date.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="With --all: at most this many (0: all).")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """The incidents open now (one alert each until they resolve); --all for the history."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime

    from lakestack.cli.render import print_json
    from lakestack.pipeline.alerting import alert_history, open_incidents
    from lakestack.pipeline.records import parse_since

    lake = _state(ctx).lake()
    if all_:
        after = parse_since(since, datetime.now(UTC)) if since else None
        rows = alert_history(lake, since=after, limit=limit or None)
        if json_out:
            print_json(_console(), rows)
            return
        _console().print(_history_table(rows))
        return
    incidents = open_incidents(lake)
    if json_out:
        print_json(_console(), incidents)
        return
    if not incidents:
        _console().print("no open incidents")
        return
    _console().print(_open_table(incidents))


@alerts_app.command("test")
def alerts_test(
    ctx: typer.Context,
    sinks: Annotated[list[str] | None, typer.Argument(help="Sinks to test (default: every configured sink).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a test alert to each sink now and report whether it was delivered (exit 3 if one was not)."""
    from lakestack.cli.render import plain, print_json
    from lakestack.pipeline.alerting import send_test_alerts

    results = send_test_alerts(_state(ctx).lake(), sinks or [])
    if json_out:
        print_json(_console(), results)
    else:
        from rich.table import Table

        table = Table(title=plain("test alert"), title_justify="left")
        for column in ("sink", "kind", "delivered", "attempts", "error"):
            table.add_column(column, overflow="fold")
        for r in results:
            status = plain("yes", "green") if r.delivered else plain("no", "red")
            table.add_row(plain(r.sink), plain(r.kind), status, plain(str(r.attempts)), plain(r.error or ""))
        _console().print(table)
    if not all(r.delivered for r in results):
        raise typer.Exit(DELIVERY_FAILED)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value or "")


def _open_table(incidents: list[dict[str, Any]]) -> Any:
    from datetime import datetime

    from rich.table import Table

    from lakestack.cli.render import plain

    table = Table(title=plain(f"open incidents · {len(incidents):,}"), title_justify="left")
    for column in ("since", "incident", "severity", "title", "last sent", "sent", "message"):
        table.add_column(column, overflow="fold", no_wrap=column in ("since", "last sent"))
    for i in incidents:
        table.add_row(
            plain(_when(datetime.fromisoformat(i["opened_at"]))),
            plain(i["key"]),
            plain(i["severity"], "red" if i["severity"] == "error" else "yellow"),
            plain(i["title"]),
            plain(_when(datetime.fromisoformat(i["notified_at"]))),
            plain(f"{i['notifications']:,}"),
            plain(i["message"]),
        )
    return table


def _history_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    from lakestack.cli.render import plain

    styles = {"open": "red", "renotify": "yellow", "resolve": "green"}
    table = Table(title=plain(f"alerts · {len(rows):,} shown, newest first"), title_justify="left")
    for column in ("at", "event", "incident", "title", "message"):
        table.add_column(column, overflow="fold", no_wrap=column == "at")
    for r in rows:
        table.add_row(
            plain(_when(r["at"])),
            plain(r["event"], styles.get(r["event"], "")),
            plain(r["key"]),
            plain(r["title"]),
            plain(r["message"] or ""),
        )
    return table

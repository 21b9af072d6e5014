"""`lakestack history / rollback`: a table's snapshots, and rolling Silver/Gold back to one."""

from __future__ import annotations

import sys
from datetime import UTC
from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    """Add `history` and `rollback` to the CLI."""
    app.command("history")(history)
    app.command("rollback")(rollback)


def history(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="A table such as silver.orders or gold.fact_sales.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many snapshots (0: all).")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """A table's snapshots, newest first: what each commit did, and the run and job that made it.

    The current snapshot is marked; snapshots a rollback left are marked 'rolled back' (time travel
    still reads them: 'lakestack query --as-of TABLE=SNAPSHOT')."""
    from lakestack.cli.render import print_json

    entries = _state(ctx).lake().history(table, limit=limit or None)
    if json_out:
        print_json(_console(), {"table": table, "snapshots": entries})
        return
    _console().print(_history_table(table, entries))


def _history_table(name: str, entries: list[Any]) -> Any:
    """Two lines a snapshot (its parent under its id, the run under the job), to fit 120 columns."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from lakestack.cli.render import number, plain

    title = f"{name} · {len(entries):,} snapshots shown, newest first · * current · ~ rolled back"
    table = Table(title=plain(title), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("", no_wrap=True)
    table.add_column("snapshot\nparent", no_wrap=True)
    table.add_column("committed (UTC)\noperation", no_wrap=True)
    table.add_column("job\nlakestack run", overflow="fold", min_width=25)
    for column in ("+rows", "-rows", "rows", "files"):
        table.add_column(column, justify="right", no_wrap=True)
    for e in entries:
        mark = plain("*", "bold green") if e.current else plain("" if e.in_lineage else "~", "dim")
        snapshot = Text(str(e.snapshot_id))
        snapshot.append(f"\n{e.parent_id if e.parent_id is not None else '-'}", "dim")
        committed = Text(e.committed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
        committed.append(f"\n{e.operation or '-'}", "dim")
        job = Text(e.job or "-")
        job.append(f"\n{e.run_id or '-'}", "dim")
        table.add_row(
            mark,
            snapshot,
            committed,
            job,
            number(e.added_rows),
            number(e.deleted_rows),
            number(e.total_rows),
            number(e.total_files),
        )
    return table


def rollback(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="A Silver or Gold table such as silver.orders.")],
    to: Annotated[int, typer.Option("--to", help="The snapshot id to make current (see 'lakestack history').")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Roll back without asking.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Make an earlier snapshot of a Silver or Gold table current again (one metadata commit, recorded as a run).

    The next 'lakestack promote' re-promotes what Bronze committed after that snapshot; the next
    'lakestack build' rebuilds what changed upstream since. Bronze and quarantine are never rolled
    back: reprocess forward instead."""
    from lakestack.cli.render import markup, print_json
    from lakestack.pipeline.timetravel import rollback_target

    lake = _state(ctx).lake()
    rollback_target(lake.warehouse, table, to)  # refuse before asking
    if not yes:
        _confirm(lake, table, to)
    result = lake.rollback(table, to)
    console = _console()
    if json_out:
        print_json(console, result)
        return
    if not result.changed:
        console.print(markup("{} already is at snapshot {}: nothing to roll back", table, str(to)))
        return
    console.print(
        markup(
            "rolled back [bold]{}[/] from snapshot {} ({} rows) to {} ({} rows) · run {}",
            table,
            str(result.from_snapshot),
            _rows(result.rows_before),
            str(to),
            _rows(result.rows_after),
            result.run_id,
        )
    )
    for line in _next_steps(table, result.downstream):
        console.print(markup("{}", line))


def _confirm(lake: Any, table: str, to: int) -> None:
    from lakestack.errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError(f"rollback changes {table}; pass --yes to roll back without a terminal to confirm on")
    target = next((e for e in lake.history(table) if e.snapshot_id == to), None)
    when = target.committed_at.astimezone(UTC).isoformat(timespec="seconds") if target else "?"
    job = f" by {target.job}" if target and target.job else ""
    if not typer.confirm(f"Make snapshot {to} of {table} (committed {when}{job}) current again?"):
        raise typer.Exit(1)


def _rows(value: int | None) -> str:
    return f"{value:,}" if value is not None else "?"


def _next_steps(table: str, downstream: tuple[str, ...]) -> list[str]:
    name = table.partition(".")[2]
    steps = []
    if table.startswith("silver."):
        steps.append(f"the next 'lakestack promote {name}' re-promotes what Bronze committed after it")
    else:
        steps.append("the next 'lakestack build' builds it again from what changed upstream since")
    if downstream:
        steps.append(f"Gold that reads it is rebuilt by the next 'lakestack build': {', '.join(downstream)}")
    return steps

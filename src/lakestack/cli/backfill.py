"""`lakestack backfill`: re-derive a Silver dataset (and Gold downstream) for a range from Bronze."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import GATE_FAILED, JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    """Add `backfill` to the CLI."""
    app.command("backfill")(backfill)


def backfill(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="A Silver dataset: orders or silver.orders.")],
    start: Annotated[str | None, typer.Option("--from", help="First event day (YYYY-MM-DD) to re-derive.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last event day (YYYY-MM-DD) to re-derive.")] = None,
    downstream: Annotated[
        bool, typer.Option("--downstream", help="Then build the Gold models that read it (the changed days).")
    ] = False,
    everything: Annotated[bool, typer.Option("--all", help="Rebuild the whole dataset from Bronze.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-derive a Silver dataset for an event-time range from Bronze with the promotion code, in one
    commit; partitions outside the range stay as they are. Exit 4 when a quality gate blocks."""
    from lakestack.cli.render import build_table, markup, print_json
    from lakestack.pipeline.backfill import parse_range

    first, last = parse_range(start, end, everything)
    console = _console()
    with console.status(f"backfilling {dataset} ..."):
        result = _state(ctx).lake().backfill(dataset, first, last, downstream=downstream)
    if json_out:
        print_json(console, result)
    else:
        console.print(markup("{}", _summary(result)))
        if result.built:
            console.print(build_table(list(result.built)))
    if result.blocked:
        if not json_out:
            console.print(markup("[red]quality gate failed[/]: blocked {}", ", ".join(result.blocked)))
        raise typer.Exit(GATE_FAILED)


def _summary(result: Any) -> str:
    span = "all event days" if result.start is None and result.end is None else _span(result.start, result.end)
    if not result.changed:
        return f"{result.dataset}: no Bronze rows and no Silver partitions in {span}: nothing rewritten"
    return (
        f"{result.dataset}, {span}: replaced {result.files_removed:,} files ({result.rows_removed:,} rows) with "
        f"{result.rows_written:,} rows in {result.partitions:,} partitions, snapshot {result.snapshot_id} "
        f"(from Bronze snapshot {result.bronze_snapshot}) in {result.duration_s:.2f}s"
    )


def _span(start: Any, end: Any) -> str:
    return f"{start or 'the first day'} to {end or 'the last day'}"

"""`lakestack runs`: the run records (pipeline/records.py), listed and shown."""

from __future__ import annotations

from typing import Annotated

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

runs_app = typer.Typer(help="Run records: every job lakestack ran, with counts, datasets and checks.")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs in this status: COMPLETE, FAIL, BLOCKED, ABORT.")
    ] = None,
    job: Annotated[
        str | None, typer.Option("--job", help="Only this job (promote.orders) or job type (ingest, build, run).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs started since: 30m, 12h, 1d, 2w or an ISO date.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many (0: all).")] = 50,
    all_jobs: Annotated[
        bool, typer.Option("--all", "-a", help="The jobs inside runs too (with --job, they always are).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run records, newest first; 'lakestack runs show RUN_ID' shows one with its jobs."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime

    from lakestack.cli.render import print_json, runs_table
    from lakestack.pipeline.records import list_runs, parse_since

    after = parse_since(since, datetime.now(UTC)) if since else None
    lake = _state(ctx).lake()
    top_only = not (all_jobs or job)
    rows = list_runs(
        lake.warehouse,
        status=status,
        job=job,
        since=after,
        limit=limit or None,
        top_only=top_only,
        inflight=lake.recorder.inflight,
    )
    if json_out:
        print_json(_console(), rows)
        return
    kind = "runs" if top_only else "runs and jobs"
    _console().print(runs_table(rows, f"{kind} · {len(rows):,} shown, newest first", ids=not top_only))


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run's uuid, its lakestack run id, or a unique prefix of either.")],
    json_out: JsonOpt = False,
) -> None:
    """One run with its jobs, datasets, checks and stage timings."""
    from lakestack.cli.render import print_json, run_view
    from lakestack.pipeline.records import find_run

    run, children = find_run(_state(ctx).lake().warehouse, run_id)
    if json_out:
        print_json(_console(), {"run": run, "jobs": children})
        return
    console = _console()
    for part in run_view(run, children):
        console.print(part)

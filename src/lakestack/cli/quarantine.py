"""`lakestack quarantine replay`: re-validate quarantined records against the current contract."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

quarantine_app = typer.Typer(help="Quarantined records: replay them after a contract fix.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `lakestack quarantine replay` to the CLI."""
    app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("replay")
def replay(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The source whose quarantine to replay (orders, clickstream).")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only rows that broke this rule (maximum, enum, file, ...).")
    ] = None,
    file: Annotated[str | None, typer.Option("--file", help="Only rows of this landing file.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only rows the run RUN_ID quarantined.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would land; change nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Validate quarantined records (and files rejected whole, read again from the landing folder)
    against the source's current contract; those that pass land in Bronze once, with their original
    file, line and position and `_replayed_from`; the others stay. Replaying again lands nothing twice."""
    from lakestack.cli.render import markup, print_json
    from lakestack.pipeline.replay import ReplayFilter

    console = _console()
    where = ReplayFilter(reason=reason, file=file, run=run)
    with console.status(f"replaying quarantine.{source} ..."):
        result = _state(ctx).lake().replay(source, where, dry_run=dry_run)
    if json_out:
        print_json(console, figures(result))
        return
    if not result.files:
        console.print(markup("quarantine.{}: no quarantined rows match: nothing to replay", source))
        return
    console.print(_table(result))
    console.print(markup("{}", _summary(result)))
    for why, n in result.failing[:10]:
        console.print(markup("  [yellow]still failing[/] {}: {}", f"{n:,}", why))


def figures(result: Any) -> dict[str, Any]:
    """A replay result as JSON: the totals, each file's share, and why records still fail."""
    return {
        "source": result.source,
        "contract": result.contract,
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        "quarantined_rows": result.quarantined,
        "rows_in": result.rows_in,
        "replayed": result.replayed,
        "still_failing": result.still_failing,
        "already_replayed": result.already,
        "snapshot_id": result.snapshot_id,
        "duration_s": round(result.duration_s, 3),
        "files": [asdict(f) for f in result.files],
        "failing": [{"reason": why, "rows": n} for why, n in result.failing],
    }


def _summary(result: Any) -> str:
    verb = "would land" if result.dry_run else "landed"
    where = "" if result.snapshot_id is None else f" (bronze.{result.source} snapshot {result.snapshot_id})"
    return (
        f"quarantine.{result.source} against {result.contract}: {result.rows_in:,} records in, "
        f"{result.replayed:,} {verb} in Bronze{where}, {result.still_failing:,} still failing, "
        f"{result.already:,} replayed before ({result.duration_s:.2f}s)"
    )


def _table(result: Any) -> Any:
    from rich.table import Table

    table = Table("file", "scope", "read from", "in", "replayed", "still failing", "replayed before")
    for f in result.files:
        table.add_row(
            f.file or "(stream)",
            f.scope,
            f.via,
            f"{f.rows_in:,}",
            f"{f.replayed:,}",
            f"{f.still_failing:,}",
            f"{f.already:,}",
        )
    return table

"""`lakestack plan` and `lakestack apply`: environments brought to the project, behind gates.

Exit codes: 0 no changes / applied; 2 a refused plan (a destructive change without
--allow-destructive, a breaking contract, invalid policies) or a project error; 3 the catalog or
warehouse cannot be reached; 4 a quality gate blocked part of the apply.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import GATE_FAILED, JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

EnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env", "-e", help="The environment to compare (default: the global --env, else the project's default)."
    ),
]
DestructiveOpt = Annotated[
    bool, typer.Option("--allow-destructive", help="Allow dropping tables the project no longer defines.")
]
REFUSED = 2


def register(app: typer.Typer) -> None:
    """Add `plan` and `apply` to the CLI."""
    app.command("plan")(plan)
    app.command("apply")(apply)


def _lake(ctx: typer.Context, env: str | None) -> Any:
    found = _state(ctx)
    if env is not None:
        found.env = env
    return found.lake()


def plan(
    ctx: typer.Context, env: EnvOpt = None, allow_destructive: DestructiveOpt = False, json_out: JsonOpt = False
) -> None:
    """What `lakestack apply` would change in the environment: new tables, schema evolution under the
    contracts' compatibility rules, changed models and the partitions they rebuild, checks, policies,
    dropped tables. Writes nothing. Exit 2 when apply would refuse the plan."""
    from lakestack.pipeline.plan import make_plan

    lake = _lake(ctx, env)
    found = make_plan(lake, allow_destructive=allow_destructive)
    console = _console()
    if json_out:
        from lakestack.cli.render import print_json

        print_json(console, plan_json(found))
    else:
        _show(console, found)
    if found.refused:
        raise typer.Exit(REFUSED)


def apply(
    ctx: typer.Context, env: EnvOpt = None, allow_destructive: DestructiveOpt = False, json_out: JsonOpt = False
) -> None:
    """Carry out the plan: create and evolve tables, run the checks that gate it, backfill changed
    Silver datasets, rebuild changed Gold models (gate(gold) before each commit), drop tables only
    with --allow-destructive, and record what was applied. The same plan twice: the second is a no-op."""
    from lakestack.cli.render import markup, print_json
    from lakestack.pipeline.apply import apply_plan
    from lakestack.pipeline.plan import PlanRefused

    lake = _lake(ctx, env)
    console = _console()
    try:
        with console.status(f"applying to {lake.environment} ..."):
            result = apply_plan(lake, allow_destructive=allow_destructive)
    except PlanRefused as refused:
        if json_out:
            print_json(console, {**plan_json(refused.plan), "applied": False, "error": str(refused)})
            raise typer.Exit(REFUSED) from None
        _show(console, refused.plan)
        raise
    if json_out:
        print_json(console, apply_json(result))
    elif result.noop:
        console.print(
            markup("environment [bold]{}[/] already matches the project: nothing to apply", result.plan.environment)
        )
    else:
        _show(console, result.plan)
        if result.built:
            from lakestack.cli.render import build_table

            console.print(build_table(list(result.built)))
        console.print(
            markup(
                "apply {} to [bold]{}[/]: {} of {} changes applied and recorded in _lakestack.applied",
                result.run_id,
                result.plan.environment,
                len(result.applied),
                len(result.plan.changes),
            )
        )
    if result.blocked:
        if not json_out:
            console.print(
                markup(
                    "[red]quality gate failed[/]: blocked {}; not applied: {} (see 'lakestack runs show {}')",
                    ", ".join(result.blocked),
                    ", ".join(result.skipped),
                    result.run_id,
                )
            )
        raise typer.Exit(GATE_FAILED)


def _show(console: Any, found: Any) -> None:
    from rich.table import Table

    from lakestack.cli.render import markup, plain

    if found.empty:
        console.print(markup("environment [bold]{}[/] matches the project: no changes", found.environment))
        return
    table = Table(title=plain(f"plan for {found.project} · environment {found.environment}"), title_justify="left")
    for column in ("change", "target", "detail", "what"):
        table.add_column(column, overflow="fold")
    styles = {"create": "green", "evolve": "cyan", "backfill": "yellow", "rebuild": "yellow", "drop": "red"}
    for change in found.changes:
        what = list(change.steps) + ([_span(change.partitions)] if change.partitions else [])
        if change.refused:
            what.append(f"REFUSED: {change.refused}")
        table.add_row(
            plain(change.kind, styles.get(change.kind, "")),
            plain(change.target),
            plain(change.detail),
            plain("\n".join(what), "red" if change.refused else ""),
        )
    console.print(table)
    counts = ", ".join(f"{n} {k}" for k, n in _counts(found).items())
    console.print(markup("{} changes: {}", len(found.changes), counts))
    if found.refused:
        console.print(markup("[red]apply would refuse this plan[/]: {}", "; ".join(c.target for c in found.refused)))


def _span(partitions: tuple[str, ...]) -> str:
    """Partitions to rebuild, shortened: `2026-01-01 … 2026-01-14 (14 partitions)`."""
    if len(partitions) <= 3:
        return "partitions: " + ", ".join(partitions)
    return f"partitions: {partitions[0]} … {partitions[-1]} ({len(partitions)} partitions)"


def _counts(found: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for change in found.changes:
        out[change.kind] = out.get(change.kind, 0) + 1
    return out


def plan_json(found: Any) -> dict[str, Any]:
    from lakestack.cli.render import to_jsonable

    return {
        "project": found.project,
        "environment": found.environment,
        "changes": [to_jsonable(c) for c in found.changes],
        "counts": _counts(found),
        "empty": found.empty,
        "refused": bool(found.refused),
    }


def apply_json(result: Any) -> dict[str, Any]:
    from lakestack.cli.render import to_jsonable

    return {
        **plan_json(result.plan),
        "run_id": result.run_id,
        "noop": result.noop,
        "applied": list(result.applied),
        "blocked": list(result.blocked),
        "skipped": list(result.skipped),
        "built": to_jsonable(list(result.built)),
        "record_snapshot": result.record_snapshot,
    }

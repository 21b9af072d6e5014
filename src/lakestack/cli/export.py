"""`lakestack export airflow`: the project's pipeline as an Airflow DAG file (orchestrate/airflow.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

export_app = typer.Typer(help="Export the project to other tools (an Airflow DAG).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@export_app.command("airflow")
def airflow(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--output", "-o", help="The folder to write the DAG file into (dags/).")],
    retries: Annotated[
        int, typer.Option(min=0, max=100, help="Retries of each step (never after exit 4: a failed gate).")
    ] = 2,
    retry_delay: Annotated[int, typer.Option("--retry-delay", min=0, help="Seconds between retries.")] = 300,
    timeout: Annotated[
        int, typer.Option("--timeout", min=1, help="A step's execution_timeout in seconds when no SLA sets one.")
    ] = 3600,
    lakestack_bin: Annotated[
        str, typer.Option("--lakestack-bin", help="The lakestack command on the Airflow workers.")
    ] = "lakestack",
    dag_id: Annotated[str | None, typer.Option("--dag-id", help="Default: lakestack_PROJECT_ENV.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write an Airflow (2.x/3.x) DAG: ingest per source → gate(bronze) → promote → gate(silver) →
    build → gate(gold) → publish, each a lakestack CLI step under the DAG run's run id."""
    import re

    from lakestack.errors import UsageError
    from lakestack.orchestrate.airflow import export_airflow

    if dag_id is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", dag_id):
        raise UsageError(f"--dag-id {dag_id!r}: use letters, digits, '_', '.' and '-' (Airflow's rule)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out}: not a folder")
    lake = _state(ctx).lake()
    options = dict(retries=retries, retry_delay_s=retry_delay, timeout_s=timeout, lakestack_bin=lakestack_bin)
    try:
        path, plan = export_airflow(lake, out, dag_id=dag_id, **options)
    except OSError as exc:
        raise UsageError(f"cannot write the DAG into {out}: {exc.strerror or exc}") from None
    tasks: list[dict[str, Any]] = [
        {"task_id": t.task_id, "command": " ".join((lakestack_bin, *t.args)), "upstream": list(t.upstream),
         "retries": plan.retries if t.retries is None else t.retries,
         "timeout_s": plan.timeout_s if t.timeout_s is None else t.timeout_s}
        for t in plan.tasks
    ]  # fmt: skip
    if json_out:
        from lakestack.cli.render import print_json

        print_json(
            _console(),
            {"dag_id": plan.dag_id, "path": str(path), "schedule": plan.schedule, "tasks": tasks,
             "skipped_sources": list(plan.skipped_sources)},
        )  # fmt: skip
        return
    from lakestack.cli.render import markup, rows_table

    console = _console()
    shown = [{**t, "upstream": ", ".join(t["upstream"])} for t in tasks]
    console.print(rows_table(f"DAG {plan.dag_id}", shown, ["task_id", "command", "upstream", "retries", "timeout_s"]))
    console.print(markup("wrote [bold]{}[/] (schedule: {})", path, plan.schedule or "none: triggered"))
    if plan.skipped_sources:
        skipped = ", ".join(plan.skipped_sources)
        console.print(markup("http sources ({}) are collected by lakestack serve, not by the DAG", skipped))

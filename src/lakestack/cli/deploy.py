"""`lakestack deploy aws` (plan, apply, destroy through boto3) and `lakestack deploy terraform` (HCL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

deploy_app = typer.Typer(help="Provision an environment's cloud resources (AWS through boto3, or Terraform HCL).")

EnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env", "-e", help="The environment to provision (default: the global --env, else the project's default)."
    ),
]


def register(app: typer.Typer) -> None:
    """Add `lakestack deploy` to the CLI."""
    app.add_typer(deploy_app, name="deploy", no_args_is_help=True)


def _project(ctx: typer.Context, env: str | None) -> tuple[Any, str, Path]:
    from lakestack.config import load_project_config

    state = _state(ctx)
    config = load_project_config(state.project)
    return config, env or state.env or config.default_environment, state.project


@deploy_app.command("aws")
def deploy_aws(
    ctx: typer.Context,
    env: EnvOpt = None,
    plan_only: Annotated[bool, typer.Option("--plan", help="Show what would change (the default).")] = False,
    do_apply: Annotated[bool, typer.Option("--apply", help="Create and update what the plan says.")] = False,
    destroy: Annotated[
        bool, typer.Option("--destroy", help="Delete every resource tagged as this project's and environment's.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan as JSON (for review: > plan.json) and change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm --destroy.")] = False,
    delete_data: Annotated[
        bool, typer.Option("--delete-data", help="--destroy also empties and removes buckets that hold files.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Plan, apply or destroy the environment's AWS resources: S3 buckets, Glue databases, Kinesis
    streams, Secrets Manager secrets (names only), CloudWatch alarms for SLAs and a scoped IAM role."""
    from lakestack.deploy.aws import apply, open_aws, plan
    from lakestack.errors import UsageError

    if sum((plan_only, do_apply, destroy)) > 1:
        raise UsageError("choose one of --plan, --apply, --destroy")
    config, environment, root = _project(ctx, env)
    aws = open_aws(config, environment)
    the_plan, state = plan(aws, config, environment, root, destroy=destroy)
    console = _console()
    if dry_run or not (do_apply or destroy):
        _show_plan(console, the_plan, json_out or dry_run)
        return
    if destroy and not yes and the_plan.pending:
        _show_plan(console, the_plan, json_out)
        raise UsageError("--destroy deletes the resources above: add --yes to go ahead")
    result = apply(aws, the_plan, state, delete_data=delete_data)
    if json_out:
        from lakestack.cli.render import print_json

        print_json(console, {**the_plan.as_json(), "applied": [c.as_json() for c in result.done]})
        return
    _show_plan(console, the_plan, False, title="applied" if not destroy else "destroyed")


def _show_plan(console: Any, the_plan: Any, as_json: bool, title: str = "plan") -> None:
    if as_json:
        from lakestack.cli.render import print_json

        print_json(console, the_plan.as_json())
        return
    from rich.table import Table

    from lakestack.cli.render import plain

    heading = (
        f"deploy aws · {the_plan.environment} · {title} · account {the_plan.target.account} · {the_plan.target.region}"
    )
    table = Table(title=plain(heading), title_justify="left")
    for column in ("action", "kind", "name", "changes"):
        table.add_column(column)
    colours = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}
    for change in the_plan.changes:
        table.add_row(
            plain(change.action, colours[change.action]),
            plain(change.resource.kind),
            plain(change.resource.name),
            plain(", ".join(change.fields)),
        )
    console.print(table)
    if title == "plan":
        counts = ", ".join(f"{the_plan.count(a)} to {a}" for a in ("create", "update", "delete"))
    else:
        counts = ", ".join(f"{a}d {the_plan.count(a)}" for a in ("create", "update", "delete"))
    console.print(plain(f"{counts}; {the_plan.count('unchanged')} unchanged"))


@deploy_app.command("terraform")
def deploy_terraform(
    ctx: typer.Context,
    env: EnvOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the .tf files (created).")] = Path("infra"),
    json_out: JsonOpt = False,
) -> None:
    """Write Terraform HCL for the same resources `deploy aws` manages (run `terraform validate` yourself)."""
    from lakestack.deploy.terraform import write

    config, environment, root = _project(ctx, env)
    written = write(config, environment, root, out)
    console = _console()
    if json_out:
        from lakestack.cli.render import print_json

        print_json(console, {"environment": environment, "files": [str(p) for p in written]})
        return
    from lakestack.cli.render import plain

    for path in written:
        console.print(plain(f"wrote {path}"))
    console.print(
        plain(f"next: cd {out} && terraform init && terraform validate && terraform plan -var account_id=...")
    )

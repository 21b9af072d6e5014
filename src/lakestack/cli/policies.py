"""`lakestack policies check`: `policies.yaml` validated against the project, and who sees what."""

from __future__ import annotations

from typing import Annotated

import typer

from lakestack.cli.common import JsonOpt, console, state
from lakestack.cli.reads import user_attrs

__all__ = ["register", "user_attrs"]


def register(app: typer.Typer) -> None:
    policies_app = typer.Typer(help="Roles, grants and masking (policies.yaml).", no_args_is_help=True)
    policies_app.command("check")(check)
    policies_app.command("vault")(vault)
    policies_app.command("detokenize")(detokenize)
    app.add_typer(policies_app, name="policies")


def check(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Validate policies.yaml against the project (exit 2 naming file:line) and print the access
    matrix: role x dataset x column -> clear, masked (how) or denied."""
    from lakestack.cli.render import markup, print_json, rows_table
    from lakestack.contracts.model import PII_CLASSES
    from lakestack.errors import ProjectError
    from lakestack.governance.check import access_matrix, check_policy
    from lakestack.pipeline.access import project_datasets

    lake = state(ctx).lake()
    policy = lake.policy
    datasets = project_datasets(lake)
    problems = check_policy(policy, datasets, PII_CLASSES)
    out = console()
    if problems:
        if json_out:
            print_json(out, {"ok": False, "problems": [str(p) for p in problems]})
            raise typer.Exit(2)
        for problem in problems[1:]:
            out.print(markup("[red]error[/]: {}", str(problem)))
        first = problems[0]
        raise ProjectError(first.message, first.location)
    matrix = access_matrix(policy, datasets)
    if json_out:
        print_json(out, {"ok": True, "source": policy.source, "default_role": policy.default_role, "access": matrix})
        return
    source = policy.source or "no policies.yaml: the default roles"
    out.print(
        markup(
            "[bold]policies[/]: {} · roles {} · default role {}",
            source,
            ", ".join(sorted(policy.roles)),
            policy.default_role,
        )
    )
    out.print(rows_table("access", matrix, ["role", "dataset", "column", "access"]))


def vault(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Add every tokenized value not in the token vault yet (_lakestack.token_vault)."""
    from lakestack.cli.render import markup, print_json
    from lakestack.pipeline.vault import refresh_vault

    added = refresh_vault(state(ctx).lake())
    if json_out:
        print_json(console(), {"added": added})
    else:
        console().print(markup("token vault: {} token(s) added", added))


def detokenize(
    ctx: typer.Context,
    tokens: Annotated[list[str], typer.Argument(help="Tokens (tok_...) to turn back into values.")],
    role: Annotated[str | None, typer.Option("--role", help="The role asking (policies.yaml detokenize:).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The values of tokens, for a role allowed to detokenize their class; exit 2 if any is not
    found or not allowed (the two are not told apart)."""
    from lakestack.cli.render import print_json, rows_table
    from lakestack.errors import UsageError
    from lakestack.pipeline.vault import detokenize as lookup

    found = lookup(state(ctx).lake(), tokens, role)
    rows = [{"token": d.token, "pii": d.pii, "value": d.value} for d in found]
    if json_out:
        print_json(console(), rows)
    else:
        console().print(rows_table("detokenized", rows, ["token", "pii", "value"]))
    missing = sum(d.value is None for d in found)
    if missing and json_out:  # the rows say which (value null)
        raise typer.Exit(2)
    if missing:
        raise UsageError(f"{missing} token(s) not found in the vault or not allowed for this role")

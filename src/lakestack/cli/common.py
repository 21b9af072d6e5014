"""What every command module shares: the global options' state, the console, `--json`, exit codes.

Command groups live in their own modules (`cli/runs.py`, `cli/sla.py`, …), each with a
`register(app)` that `cli/app.py` calls; they import this module, never `cli/app.py`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from lakestack.cli.state import State, console

__all__ = ["GATE_FAILED", "JsonOpt", "State", "console", "state"]

GATE_FAILED = 4  # exit code: the run finished what it could, and a quality gate blocked the rest

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def state(ctx: typer.Context) -> State:
    """The global options (`--project`, `--env`, `--wait`) of this invocation."""
    found: State = ctx.ensure_object(State)
    found.context = ctx
    return found

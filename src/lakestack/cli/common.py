"""What every command module shares: the global options' state, the console, `--json`, exit codes.

Command groups live in their own modules (`cli/runs.py`, `cli/sla.py`, …), each with a
`register(app)` that `cli/app.py` calls; they import this module, never `cli/app.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

GATE_FAILED = 4  # exit code: the run finished what it could, and a quality gate blocked the rest

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


@dataclass
class State:
    project: Path = Path(".")
    env: str | None = None
    wait: float = 0.0
    context: typer.Context | None = None  # the command's: lakes it opens close with the command line

    def lake(self) -> Any:
        """The project's lake, closed when the command ends however it ends (an error, an exit code,
        Ctrl-C): its listeners deliver what they buffer (run records, lineage events) before the
        process exits."""
        from lakestack.pipeline.lake import Lake

        lake = Lake.open(self.project, self.env, lock_wait=self.wait)
        if self.context is not None:
            self.context.find_root().call_on_close(lake.close)
        return lake


def state(ctx: typer.Context) -> State:
    """The global options (`--project`, `--env`, `--wait`) of this invocation."""
    found: State = ctx.ensure_object(State)
    found.context = ctx
    return found


def console() -> Console:
    """Markup off: data, file names and messages print as they are (styling: render.markup)."""
    from lakestack.cli.render import make_console

    return make_console()

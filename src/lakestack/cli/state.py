"""The global options' state and the console, without Typer: shared by the Typer app
(`cli/common.py` re-exports them) and the read commands' direct start (`cli/direct.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class State:
    project: Path = Path(".")
    env: str | None = None
    wait: float = 0.0
    context: Any = None  # the command's typer.Context: lakes it opens close with the command line
    closers: list[Callable[[], None]] = field(default_factory=list)  # without a context: run by cli/direct.py

    def lake(self) -> Any:
        """The project's lake, closed when the command ends however it ends (an error, an exit code,
        Ctrl-C): its listeners deliver what they buffer (run records, lineage events) before the
        process exits."""
        from lakestack.pipeline.lake import Lake

        lake = Lake.open(self.project, self.env, lock_wait=self.wait)
        if self.context is not None:
            self.context.find_root().call_on_close(lake.close)
        else:
            self.closers.append(lake.close)
        return lake

    def close(self) -> None:
        """Close what `lake` opened without a context, the last opened first (as click does)."""
        while self.closers:
            self.closers.pop()()


def console() -> Any:
    """Markup off: data, file names and messages print as they are (styling: render.markup)."""
    from lakestack.cli.render import make_console

    return make_console()

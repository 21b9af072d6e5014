"""`lakestack checkpoints`: how far each source has committed and each dataset has read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    app.command("checkpoints")(checkpoints)


def _held(view: dict[str, Any]) -> str:
    """What a checkpoint holds, in one cell."""
    if "positions" in view:
        parts = [f"{p}: {pos:,}" for p, pos in view["positions"].items()] or ["no positions"]
        if view.get("epoch") is not None:
            parts.append(f"owner epoch {view['epoch']}")
        return ", ".join(parts)
    if "files" in view:
        newest = f" (newest: {', '.join(view['newest_files'])})" if view["newest_files"] else ""
        return f"{view['files']:,} file(s){newest}"
    if "inputs" in view:
        return ", ".join(f"{i['table']} @ {i['read_up_to']}" for i in view["inputs"]) or "no inputs recorded"
    return ""


def checkpoints(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Sources or datasets (orders, silver.orders); default: all.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Each source's committed positions (stream partitions, landed files, pull cursors) and how far
    each Silver dataset and Gold model has read its inputs. Read only: checkpoints live in the
    tables' commits and move only with them."""
    from rich.table import Table

    from lakestack.cli.render import plain, print_json
    from lakestack.pipeline.checkpoint_view import checkpoint_views

    views = checkpoint_views(_state(ctx).lake(), names or None)
    if json_out:
        print_json(_console(), views)
        return
    table = Table(title="checkpoints", title_justify="left")
    for col in ("layer", "name", "kind", "last commit", "holds", "state"):
        table.add_column(col, overflow="fold")
    for view in views:
        when = view.get("committed_at")
        holds = _held(view)
        if view.get("cursors"):
            holds = (holds + "; " if holds else "") + "cursors " + json.dumps(view["cursors"], default=str)
        table.add_row(
            plain(view["layer"]),
            plain(view["name"]),
            plain(view["kind"]),
            plain(when.strftime("%Y-%m-%d %H:%M:%S") if isinstance(when, datetime) else ""),
            plain(holds),
            plain(view["state"], "yellow" if "unread" in view["state"] else ""),
        )
    _console().print(table)

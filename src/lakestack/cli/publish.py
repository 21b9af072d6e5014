"""`lakestack publish`: Gold (or Silver) datasets to the databases of the project's `publish:` blocks."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    """Add `lakestack publish` to the CLI."""
    app.command("publish")(publish)


def publish(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Argument(help="One dataset (gold.fact_sales or fact_sales); default: every one.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Publish datasets to PostgreSQL as their block's role: a staging table swapped in one
    transaction (replace), or the changed days / keys (incremental). The snapshot a table already
    holds is not published again."""
    from lakestack.cli.render import markup, print_json

    console = _console()
    result = _state(ctx).lake().publish([dataset] if dataset else None)
    if json_out:
        print_json(console, result)
        return
    if not result.tables:
        console.print("nothing to publish: the project has no publish: blocks (see docs/architecture.md, Publishing)")
        return
    console.print(publish_table(result.tables, f"publish · run {result.run_id}"))
    for line in notes(result.tables):
        console.print(markup("{}", line))


def publish_table(tables: Any, title: str) -> Any:
    """The datasets a publish did, one row each."""
    from rich.table import Table

    from lakestack.cli.render import number, plain

    out = Table(title=plain(title), title_justify="left")
    for column in ("target", "dataset", "table", "mode", "status", "rows", "s"):
        out.add_column(column, justify="right" if column in ("rows", "s") else "left")
    for p in tables:
        out.add_row(
            plain(p.target),
            plain(p.dataset),
            plain(p.table),
            plain(p.mode),
            plain(p.status, "green" if p.status == "published" else "yellow" if p.status == "skipped" else ""),
            plain(number(p.rows) if p.rows is not None else "–"),
            plain(f"{p.seconds:.1f}"),
        )
    return out


def notes(tables: Any) -> list[str]:
    """One line per distinct note (a skipped target says why once, not per dataset)."""
    seen: list[str] = []
    for p in tables:
        if p.note:
            line = f"{p.target}: {p.note}" if "optional target" in p.note else f"{p.dataset}: {p.note}"
            if line not in seen:
                seen.append(line)
    return seen

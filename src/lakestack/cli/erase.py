"""`lakestack erase`: GDPR/CCPA erasure of one data subject from every layer."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    """Add `lakestack erase` to the CLI."""
    app.command("erase")(erase)


def erase(
    ctx: typer.Context,
    subject: Annotated[
        str,
        typer.Option(
            "--subject", help="The data subject as COLUMN=VALUE: a PII column or a subject key (customer_id=C000042)."
        ),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be erased; change nothing.")] = False,
    retention: Annotated[
        str,
        typer.Option(
            "--retention",
            help="How long the old snapshots (and files) may stay before they are expired: 0s (default) "
            "removes them now; otherwise the first `lakestack erase` after it has passed does.",
        ),
    ] = "0s",
    json_out: JsonOpt = False,
) -> None:
    """Find every row of a data subject in Bronze (and its raw records), quarantine, Silver, Gold,
    check samples and the token vault; rewrite only the files that hold them; expire the snapshots
    that still hold the old files; write the erasure receipt to the audit log."""
    from lakestack.cli.render import print_json

    console = _console()
    lake = _state(ctx).lake()
    result = lake.erase(subject, dry_run=dry_run, retention=retention)
    if json_out:
        print_json(console, {**result.receipt(), "nothing_found": result.rows == 0, "linked": list(result.linked)})
        return
    console.print(erase_table(result))
    for line in _explain(result):
        console.print(line)


def erase_table(result: Any) -> Any:
    from rich.table import Table

    from lakestack.cli.render import number, plain

    title = "erase · dry run (nothing changed)" if result.dry_run else f"erase · run {result.run_id}"
    out = Table(title=plain(f"{title} · {result.column} {result.subject[:19]}…"), title_justify="left")
    for column in ("dataset", "found in", "rows", "files", "snapshot", "expired", "old files removed"):
        out.add_column(column, justify="left" if column in ("dataset", "found in") else "right")
    for f in result.datasets:
        snapshot = "–" if f.snapshot_after in (None, f.snapshot_before) else f"{f.snapshot_before} → {f.snapshot_after}"
        removed = f"{number(f.old_files_removed)} at {f.removed_at[:19]}" if f.removed_at else "–"
        if f.expire_at:
            removed = f"after {f.expire_at[:19]}"
        out.add_row(
            plain(f.dataset),
            plain(f"{f.kind}: {', '.join(f.matched_on)}" if f.matched_on else f.kind),
            plain(number(f.rows)),
            plain(_files(result, f)),
            plain(snapshot),
            plain(number(f.expired_snapshots) if f.expired_snapshots else "–"),
            plain(removed),
        )
    return out


def _explain(result: Any) -> list[Any]:
    from lakestack.cli.render import plain

    lines = []
    if result.rows == 0:
        lines.append(plain(f"nothing found for {result.column} = that value: nothing rewritten", "yellow"))
    for f in result.datasets:
        lines.extend(plain(f"{f.dataset}: kept {k}", "yellow") for k in f.kept)
    if result.linked:
        keys = ", ".join(result.linked)
        lines.append(plain(f"the rows found belong to {keys}: erase by it too to reach rows that hold only the key"))
    lines.append(plain("not erased by lakestack:"))
    lines.extend(plain(f"  {line}") for line in result.not_erased)
    return lines


def _files(result: Any, found: Any) -> str:
    from lakestack.cli.render import number

    if not found.files_rewritten:
        return "–"
    if result.dry_run:
        return number(found.files_rewritten)
    return f"{number(found.files_rewritten)} → {number(found.files_written)}"

"""`lakestack maintain`: compaction, manifest rewrite, snapshot expiry, orphan removal, history retention."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    """Add `lakestack maintain` to the CLI."""
    app.command("maintain")(maintain)


def maintain(
    ctx: typer.Context,
    table: Annotated[
        str | None, typer.Argument(help="One table (bronze.orders, gold.daily_order_metrics); default: all.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be done; change nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Compact small files, rewrite manifests, expire old snapshots (keeping what checkpoints and the
    time-travel window need), remove orphan files and old history rows; before and after per table."""
    from lakestack.cli.render import IngestProgress, print_json
    from lakestack.pipeline.maintain import figures

    console = _console()
    lake = _state(ctx).lake()
    if json_out:
        result = lake.maintain([table] if table else None, dry_run=dry_run)
        print_json(
            console,
            {"run_id": result.run_id, "dry_run": result.dry_run, "tables": [figures(r) for r in result.tables]},
        )
        return
    with IngestProgress(console) as progress:
        result = lake.maintain([table] if table else None, dry_run=dry_run, step=progress.step)
    console.print(maintain_table(result))
    for report in result.tables:
        for line in _explain(report):
            console.print(line)


def maintain_table(result: Any) -> Any:
    from rich.table import Table

    from lakestack.cli.render import number, plain

    title = "maintain · dry run (nothing changed)" if result.dry_run else f"maintain · run {result.run_id}"
    out = Table(title=plain(title), title_justify="left")
    for column in ("table", "files", "size", "snapshots", "manifests", "compacted", "expired", "orphans", "s"):
        out.add_column(column, justify="left" if column == "table" else "right")
    for r in result.tables:
        before, after = r.before, r.after
        out.add_row(
            plain(r.table),
            plain(f"{number(before.files)} → {number(after.files)}"),
            plain(f"{_size(before.bytes)} → {_size(after.bytes)}"),
            plain(f"{number(before.snapshots)} → {number(after.snapshots)}"),
            plain(f"{number(before.manifests)} → {number(after.manifests)}"),
            plain(f"{number(r.compacted_files)} → {number(r.written_files)}" if r.compacted_files else "–"),
            plain(number(r.expired) if not r.refused else "refused"),
            plain(f"{number(r.orphans)} ({_size(r.orphan_bytes)})" if r.orphans else "–"),
            plain(f"{r.seconds:.1f}"),
        )
    return out


def _explain(report: Any) -> list[Any]:
    from lakestack.cli.render import plain

    lines = []
    if report.refused:
        lines.append(plain(f"{report.table}: expiry refused: {report.refused}", "yellow"))
    for snapshot_id, why in report.kept:
        lines.append(plain(f"{report.table}: kept snapshot {snapshot_id}: {why}"))
    if report.history_rows:
        lines.append(plain(f"{report.table}: {report.history_rows:,} history rows older than the retention deleted"))
    lines.extend(plain(f"{report.table}: {note}") for note in report.notes)
    return lines


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"

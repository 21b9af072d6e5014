"""Turning results into what a person reads (rich) or a machine reads (JSON).

Nothing that comes from data, files or errors is ever read as rich markup: a value `[/x]` would
crash rendering, `[link=...]` would become a link, and `lakestack[postgres]` would lose its extra.
So the consoles the CLI makes have markup off (`make_console`), every value goes into a table as a
`Text` (`cell`), our own styling is written with `markup(template, *values)` whose holes are filled
with literal text, and `SafeConsole` falls back to plain text if rendering still fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.errors import ConsoleError, StyleError
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from lakestack.ingest.base import FileOutcome

STATUS_STYLE = {"landed": "green", "rejected": "red", "skipped": "yellow", "refused": "magenta"}
_HOLE = re.compile(r"\x00(\d+)\x00")


def markup(template: str, *values: Any) -> Text:
    """Our own rich markup, with `{}` holes filled by `values` as literal text (never parsed).

    >>> markup("[red]error:[/] {}", "pip install 'lakestack[postgres]'").plain
    "error: pip install 'lakestack[postgres]'"
    """
    from lakestack._secrets import redact

    marked = Text.from_markup(template.format(*(f"\x00{i}\x00" for i in range(len(values)))))
    out = Text(style=marked.style, end=marked.end)
    last = 0
    for hole in _HOLE.finditer(marked.plain):
        out.append_text(marked[last : hole.start()])
        at = len(out)
        out.append(redact(_text(values[int(hole.group(1))])))
        for span in marked.spans:  # the styles our markup put around the hole
            if span.start <= hole.start() < span.end:
                out.stylize(span.style, at, len(out))
        last = hole.end()
    out.append_text(marked[last:])
    return out


def plain(value: Any, style: str = "") -> Text:
    """Any value as literal text (secrets redacted)."""
    from lakestack._secrets import redact

    return Text(redact(_text(value)), style=style)


def _text(value: Any) -> str:
    return value.plain if isinstance(value, Text) else str(value)


class SafeConsole(Console):
    """A console that cannot turn a rendering problem into a traceback: what rich refuses to render
    is printed again as plain text."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        try:
            super().print(*objects, **kwargs)
        except (ConsoleError, StyleError):
            kwargs.pop("style", None)
            kwargs["markup"] = False
            try:
                flat = [Text(_text(o)) if isinstance(o, str | Text) else Text(repr(o)) for o in objects]
                super().print(*flat, **kwargs)
            except (ConsoleError, StyleError):
                self.file.write(" ".join(_text(o) for o in objects) + "\n")


def make_console(stderr: bool = False) -> Console:
    """The CLI's console: markup off (strings print as they are), no highlighting of data."""
    stream = sys.stderr if stderr else sys.stdout
    # Piped output (CI logs, files) has no terminal width; give tables room instead of rich's 80.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 120
    return SafeConsole(stderr=stderr, markup=False, highlight=False, soft_wrap=False, width=width)


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for prop in ("rows_in", "landed", "quarantined"):
            if hasattr(type(value), prop) and isinstance(getattr(type(value), prop), property):
                out[prop] = getattr(value, prop)
        return out
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


def print_json(console: Console, value: Any) -> None:
    from lakestack._secrets import redact_tree

    console.print_json(json.dumps(redact_tree(to_jsonable(value)), default=str), indent=2)


class _Bytes(DownloadColumn):
    """Bytes done/total for ingest bars; nothing for dataset steps (which have no size)."""

    def render(self, task: Any) -> Any:
        return super().render(task) if task.fields.get("bytes") else Text("")


class IngestProgress:
    """Progress of a run: a bar per source (bytes of landing files), a line per dataset step."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<34}", style="bold", markup=False),
            BarColumn(),
            _Bytes(),
            TextColumn("{task.fields[files]}", markup=False),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._counts: dict[str, list[int]] = {}

    def __enter__(self) -> IngestProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def step(self, stage: str, dataset: str) -> Any:
        """A spinner line for one dataset of a stage; call the returned function when it is done."""
        task = self.progress.add_task(f"{stage} {dataset}", total=1, files="", bytes=False)
        return lambda: self.progress.update(task, completed=1)

    def source_started(self, source: str, files: int, total_bytes: int) -> None:
        self._counts[source] = [0, files]
        self._tasks[source] = self.progress.add_task(
            f"ingest {source}", total=max(total_bytes, 1), files=f"0/{files} files", bytes=True
        )

    def file_finished(self, source: str, outcome: FileOutcome) -> None:
        task = self._tasks.get(source)
        if task is None or outcome.status == "refused":
            return
        self._counts[source][0] += 1
        done, total = self._counts[source]
        self.progress.update(task, advance=outcome.size, files=f"{done}/{total} files")


def ingest_table(report: Any) -> Table:
    table = Table(title=plain(f"ingest · run {report.run_id}"), title_justify="left")
    for col in (
        "source",
        "files",
        "landed files",
        "rejected",
        "skipped",
        "rows in",
        "rows landed",
        "rows quarantined",
        "duration",
    ):
        table.add_column(col, justify="left" if col == "source" else "right")
    for s in report.sources:
        table.add_row(
            plain(s.source),
            str(len([f for f in s.files if f.status != "refused"])),
            str(s.count("landed")),
            _red(s.count("rejected")),
            str(s.count("skipped")),
            f"{s.rows_in:,}",
            f"{s.landed:,}",
            _red(s.quarantined),
            f"{s.duration_s:.2f}s",
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        "",
        "",
        f"{report.rows_in:,}",
        f"{report.landed:,}",
        _red(report.quarantined),
        f"{report.duration_s:.2f}s",
        style="bold",
    )
    return table


def promote_table(results: list[Any]) -> Table:
    table = Table(title="promote · silver", title_justify="left")
    for col in ("dataset", "bronze rows", "inserted", "updated", "partitions", "snapshot", "duration"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for r in results:
        table.add_row(
            plain(r.dataset),
            f"{r.bronze_rows:,}",
            f"{r.inserted:,}",
            f"{r.updated:,}",
            str(r.partitions),
            str(r.snapshot_id or "unchanged"),
            f"{r.duration_s:.2f}s",
        )
    return table


def build_table(results: list[Any]) -> Table:
    table = Table(title="build · gold", title_justify="left")
    for col in ("model", "mode", "rows written", "partitions", "snapshot", "duration"):
        table.add_column(col, justify="left" if col in ("model", "mode") else "right")
    for r in results:
        table.add_row(
            plain(r.dataset),
            plain(r.mode),
            f"{r.rows_written:,}",
            str(r.partitions or ""),
            str(r.snapshot_id or "unchanged"),
            f"{r.duration_s:.2f}s",
        )
    return table


def checks_table(results: list[Any], only_problems: bool = False) -> Table:
    shown = [r for r in results if r.status != "pass"] if only_problems else results
    title = "quality checks" + (f" · {len(shown)} of {len(results)} not passing" if only_problems else "")
    table = Table(title=title, title_justify="left")
    for col in ("dataset", "check", "severity", "status", "observed", "threshold", "failing rows"):
        table.add_column(col, justify="right" if col in ("observed", "failing rows") else "left")
    style = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red", "skipped": "dim"}
    for r in shown:
        observed = "" if r.observed is None else f"{r.observed:,.4g}"
        table.add_row(
            plain(r.dataset),
            plain(r.check),
            plain(r.severity),
            plain(r.status, style.get(r.status, "")),
            observed,
            plain(r.threshold),
            f"{r.failing_rows:,}",
        )
    return table


def problem_files(report: Any) -> Table | None:
    rows = [(s.source, f) for s in report.sources for f in s.files if f.status in ("rejected", "refused", "skipped")]
    if not rows:
        return None
    table = Table(title="files not landed", title_justify="left")
    for col in ("source", "file", "status", "why"):
        table.add_column(col)
    for source, f in rows:
        where = f" (line {f.line})" if f.line else ""
        status = plain(f.status, STATUS_STYLE[f.status])
        table.add_row(plain(source), plain(f.name), status, plain(f"{f.reason}{where}"))
    return table


def _red(n: int) -> Text:
    return Text(f"{n:,}", style="red") if n else Text("0")


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=plain(title), title_justify="left")
    for c in columns:
        numeric = rows and all(_numeric(row.get(c)) for row in rows)
        table.add_column(plain(c), overflow="fold", max_width=40, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    return table


def records_view(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    """Rows shown one under another as column/value pairs (for tables too wide to read across)."""
    table = Table(title=plain(title), title_justify="left", show_header=False, show_lines=True)
    table.add_column("#", justify="right", style="dim")
    table.add_column("record", overflow="fold")
    for i, row in enumerate(rows, start=1):
        body = Text("\n").join(Text.assemble(plain(c, "bold"), ": ", _cell(row.get(c))) for c in columns)
        table.add_row(str(i), body)
    return table


_NUMBER = re.compile(r"-?[\d,]+(\.\d+)?")


def _numeric(value: Any) -> bool:
    """A number, or a number already formatted with separators (None counts: it is shown as null)."""
    if value is None or (isinstance(value, int | float | Decimal) and not isinstance(value, bool)):
        return True
    return isinstance(value, str) and _NUMBER.fullmatch(value) is not None


def _cell(value: Any) -> Text:
    """One value of a table: literal text, never markup."""
    if value is None:
        return Text("null", style="dim")
    if isinstance(value, Text):
        return value
    if isinstance(value, datetime):
        return plain(value.isoformat(sep=" ", timespec="seconds"))
    text = str(value)
    return plain(text if len(text) <= 120 else text[:117] + "...")


class StreamStatus:
    """A live status line while a stream runs: records/s, lag, commits, the last commit."""

    def __init__(self, console: Console, source: str) -> None:
        from rich.live import Live

        self.source = source
        self._live = Live(console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> StreamStatus:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def update(self, stats: Any) -> None:
        lag = "?" if stats.lag is None else f"{stats.lag:,}"
        last = stats.last_commit.strftime("%H:%M:%S") if stats.last_commit else "-"
        self._live.update(
            Text.assemble(
                plain(self.source, "bold"),
                f" {stats.rate():,.0f} rec/s · landed {stats.landed:,} · quarantined ",
                _red(stats.quarantined),
                f" · duplicates {stats.duplicates:,} · lag {lag} · commits {stats.commits:,} "
                f"(last {last}, {stats.last_commit_seconds * 1000:.0f} ms) · Ctrl-C stops after a final commit",
            )
        )


def stream_summary(source: str, stats: Any, table: bool = False) -> Any:
    row = {
        "source": source,
        "received": stats.received,
        "landed": stats.landed,
        "quarantined": stats.quarantined,
        "duplicates": stats.duplicates,
        "commits": stats.commits,
        "last_commit": stats.last_commit,
    }
    if not table:
        return row
    shown = {k: f"{v:,}" if isinstance(v, int) else v for k, v in row.items()}
    return rows_table(f"Stream {source}", [shown], list(row))

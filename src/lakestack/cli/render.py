"""Turning results into what a person reads (rich) or a machine reads (JSON).

Nothing that comes from data, files or errors is ever read as rich markup: a value `[/x]` would
crash rendering, `[link=...]` would become a link, and `lakestack[postgres]` would lose its extra.
So the consoles the CLI makes have markup off (`make_console`), every value goes into a table as a
`Text` (`cell`), our own styling is written with `markup(template, *values)` whose holes are filled
with literal text, and `SafeConsole` falls back to plain text if rendering still fails.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.errors import ConsoleError, StyleError
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from lakestack.cli.jsonable import to_jsonable as to_jsonable
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
    for col in ("model", "mode", "rows written", "partitions", "by", "snapshot", "duration"):
        table.add_column(col, justify="left" if col in ("model", "mode", "by") else "right")
    for r in results:
        table.add_row(
            plain(r.dataset),
            plain(r.mode),
            f"{r.rows_written:,}",
            str(r.partitions or ""),
            plain(r.granularity or ""),  # day, month or year partitions
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
        observed = number(r.observed)
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


def number(value: Any) -> str:
    """A count or measure for a person: `50,091` (not `5.009e+04` or `7602.0`), `0.25`, `1,234.57`."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    x = float(value)
    if x.is_integer() and abs(x) < 1e18:
        return f"{int(x):,}"
    return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.4g}"


def check_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recorded check evaluations with their counts as integers with separators."""
    return [
        {**r, "observed": number(r.get("observed")), "failing_rows": number(r.get("failing_rows"))} for r in results
    ]


def failure_rows(failures: list[dict[str, Any]], leading: dict[tuple[str, str], list[str]]) -> list[dict[str, Any]]:
    """Failing-row samples with the checked columns and the key first, lineage columns (`_run_id`,
    `_ingested_at`, ...) last; `leading` maps (dataset, check) to the columns to put first."""
    out = []
    for f in failures:
        try:
            row = json.loads(f["row"])
        except (TypeError, ValueError):
            out.append(f)
            continue
        if not isinstance(row, dict):
            out.append(f)
            continue
        first = [c for c in leading.get((f["dataset"], f["check"]), []) if c in row]
        rest = [c for c in row if c not in first]
        order = first + [c for c in rest if not c.startswith("_")] + [c for c in rest if c.startswith("_")]
        shown = ", ".join(f"{c}={json.dumps(row[c], ensure_ascii=False)}" for c in order)
        out.append({**f, "row": shown})
    return out


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


RUN_STYLE = {"COMPLETE": "green", "FAIL": "red", "ABORT": "yellow", "BLOCKED": "red", "RUNNING": "cyan"}


def runs_table(rows: list[dict[str, Any]], title: str = "runs", *, ids: bool | None = False) -> Table:
    """Run records, one line each: when, which run, job, status, duration and counts. With `ids`, a
    record's own uuid (what `runs show` takes for a job inside a run) instead of the lakestack run id;
    with `ids` None (the jobs of one run), neither."""
    table = Table(title=plain(title), title_justify="left")
    when = ids is not None
    if when:
        table.add_column("started", no_wrap=True)
        table.add_column("run id" if ids else "lakestack run", no_wrap=True)
    table.add_column("job", overflow="fold")
    table.add_column("status", no_wrap=True)
    for col in ("time", "read", "written", "quar.", "checks"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("error", overflow="fold")
    for r in rows:
        started = r["started_at"]
        cells: list[Any] = []
        if when:
            cells.append(plain(started.strftime("%m-%d %H:%M") if isinstance(started, datetime) else started))
            cells.append(plain(r["run_id"] if ids else r["lake_run_id"] or ""))
        cells += [
            plain(r["job"]),
            plain(r["status"], RUN_STYLE.get(r["status"], "")),
            duration(r["duration_s"]),
            number(r["rows_read"]),
            number(r["rows_written"]),
            _red(r["rows_quarantined"] or 0),
            Text(f"{r['checks_failed']:,}/{r['checks_total']:,}") if r["checks_total"] else Text(""),
            plain(r["error"] or ""),
        ]
        table.add_row(*cells)
    return table


def run_view(run: dict[str, Any], children: list[dict[str, Any]]) -> list[Any]:
    """One run: its header, its jobs, their datasets, the checks that did not pass, and stage timings."""
    out: list[Any] = [
        markup(
            "[bold]{}[/] {} · run {} · lakestack run {} · {} · started {} · {}",
            run["job"],
            run["job_type"],
            run["run_id"],
            run["lake_run_id"] or "-",
            Text(run["status"], style=RUN_STYLE.get(run["status"], "")),
            _cell(run["started_at"]),
            duration(run["duration_s"]),
        )
    ]
    if run["parent_run_id"]:
        out.append(markup("part of run {}", run["parent_run_id"]))
    if run["error"]:
        out.append(markup("[red]error[/]: {}", run["error"]))
    jobs = [run, *children]
    if children:
        title = f"jobs ({len(children)}) · checks: not passing/evaluated"
        out.append(runs_table(children, title, ids=None))
    datasets = [
        {"job": j["job"], **d, **{k: number(d[k]) for k in ("rows", "quarantined", "dropped")}}
        for j in jobs
        for d in j["datasets"] or []
    ]
    if datasets:
        columns = ["job", "name", "role", "snapshot_id", "rows", "quarantined", "dropped"]
        out.append(rows_table("datasets", datasets, columns))
    checks = [{"job": j["job"], **c} for j in jobs for c in j["checks"] or []]
    if checks:
        failing = [
            {**c, "failing_rows": number(c["failing_rows"]), "message": c["message"] or ""}
            for c in checks
            if not c["passed"]
        ]
        title = f"checks · {len(failing)} of {len(checks)} not passing"
        out.append(
            rows_table(title, failing, ["dataset", "name", "severity", "failing_rows", "message"])
            if failing
            else Text(title)
        )
    stages = [
        {"job": j["job"], "stage": s["name"], "seconds": f"{s['seconds']:,.3f}"}
        for j in jobs
        for s in j["stages"] or []
    ]
    if stages:
        out.append(rows_table("stage timings", stages, ["job", "stage", "seconds"]))
    if run.get("progress"):
        out.append(markup("last progress: {}", run["progress"]))
    return out


def unchanged(report: Any, f: Any) -> bool:
    """A file an earlier run already ingested (same content): news only with --verbose. A duplicate
    inside this drop, or one a concurrent run committed, is still listed."""
    reason = f.reason or ""
    return f.status == "skipped" and reason.startswith("same content as ") and f"(run {report.run_id})" not in reason


def problem_files(report: Any, *, verbose: bool = False) -> Table | None:
    """The files that did not land, one row each; with `verbose` False the files an earlier run
    already ingested are left out (`unchanged_line` counts them)."""
    rows = [
        (s.source, f)
        for s in report.sources
        for f in s.files
        if f.status in ("rejected", "refused", "skipped") and (verbose or not unchanged(report, f))
    ]
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


def unchanged_line(report: Any) -> Text | None:
    """`15 files unchanged (already ingested): orders 14, fx_rates 1`, or None when there are none."""
    per_source = {s.source: sum(unchanged(report, f) for f in s.files) for s in report.sources}
    total = sum(per_source.values())
    if not total:
        return None
    parts = ", ".join(f"{name} {n:,}" for name, n in per_source.items() if n)
    noun = "file" if total == 1 else "files"
    return plain(f"{total:,} {noun} unchanged (already ingested): {parts}; --verbose lists them", "dim")


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

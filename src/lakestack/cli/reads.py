"""The read commands (`query`, `show`, `tables`, `status`) as plain functions of their options.

The Typer commands in cli/app.py parse and call them; so does cli/direct.py, which starts these
commands without Typer when their arguments are plain (a person's interactive reads, issue 19
item 4). This module imports neither Typer nor pyarrow at import time. `audit_read` wraps a read in
its audit row (ADR 0019, spooled: ADR 0034).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakestack.cli.state import State, console


def query(
    state: State,
    sql: str,
    *,
    output: str = "table",
    out: Path | None = None,
    limit: int = 100,
    max_rows: int | None = None,
    max_bytes: str | None = None,
    timeout: float = 60.0,
    as_of: list[str] | None = None,
    role: str | None = None,
    user_attr: list[str] | None = None,
    json_out: bool = False,
) -> None:
    """`lakestack query`: read-only SQL in the sandbox, streamed within its limits, audited."""
    import time

    from lakestack.cli import results
    from lakestack.errors import UsageError

    if json_out and out is None and output not in ("table", "json"):
        raise UsageError("--json prints the rows as JSON; write csv or parquet with --output FILE")
    results.check_output(out, "json" if json_out and out is None else output)
    limits = results.query_limits(out is not None, max_rows, max_bytes, timeout)
    started = time.perf_counter()
    lake, user = state.lake(), user_attrs(user_attr)
    small = results.SMALL_RESULT_ROWS if out is None else 0  # printed: a small result without pyarrow
    with (
        audit_read(lake, "query", sql, role) as audited,
        lake.query_stream(sql, limits, as_of=as_of or None, role=role, user=user, small_rows=small) as stream,
    ):
        if json_out and out is None:
            results.to_stdout(lambda sink: results.json_document(stream, sink))
            written = results.Written(stream.rows, 0, None, stream.truncated)
        else:
            written = results.write_result(stream, output, out, show=limit, console=console())
        audited.rows = written.rows
    notice = results.truncation_notice(written)
    if notice:
        sys.stderr.write(notice + "\n")
    if json_out and out is not None:
        import json

        sys.stdout.write(json.dumps(results.summary(written, stream.columns, time.perf_counter() - started)))
        sys.stdout.write("\n")


def show(
    state: State,
    table: str,
    *,
    limit: int = 10,
    role: str | None = None,
    user_attr: list[str] | None = None,
    json_out: bool = False,
) -> None:
    """`lakestack show`: a table's schema and first rows, audited."""
    from lakestack.cli.render import markup, print_json, records_view, rows_table, to_jsonable

    lake = state.lake()
    with audit_read(lake, "show", table, role) as audited:
        # a denied table: as if missing
        names, rows = lake.read_rows(table, limit=limit, role=role, user=user_attrs(user_attr))
        audited.rows, audited.datasets = len(rows), (table,)
        audited.columns = tuple(f"{table}.{c}" for c in names)
    info = lake.table_info(table)
    if json_out:
        print_json(console(), {"table": info, "schema": lake.schema(table), "rows": rows})
        return
    out = console()
    out.print(
        markup(
            "[bold]{}[/] · {} rows in {} files · {} snapshots · {}",
            info.identifier,
            f"{info.rows:,}",
            info.files,
            info.snapshots,
            info.location,
        )
    )
    out.print(rows_table("schema", lake.schema(table), ["column", "type", "required", "pii"]))
    columns = [c for c in names if c != "_raw" or table.startswith("quarantine.")]
    shown = [to_jsonable(r) for r in rows]
    if len(columns) <= 8:
        out.print(rows_table(f"first {len(rows)} rows", shown, columns))
    else:  # too wide for a table: one block per row
        out.print(records_view(f"first {len(rows)} rows", shown, columns))


def tables(state: State, *, pii: bool = False, json_out: bool = False) -> None:
    """`lakestack tables`: every table with rows, files and last commit (or where PII lives)."""
    from lakestack.cli.render import print_json, rows_table, to_jsonable

    if pii:
        from lakestack.pipeline.access import pii_locations

        found = pii_locations(state.lake())
        if json_out:
            print_json(console(), found)
        else:
            console().print(rows_table("PII columns", found, ["pii", "dataset", "column"]))
        return
    infos = state.lake().tables()
    if json_out:
        print_json(console(), infos)
        return
    rows = [{**to_jsonable(t), "rows": f"{t.rows:,}", "last_commit": t.last_commit} for t in infos]
    console().print(rows_table("tables", rows, ["identifier", "rows", "files", "snapshots", "last_commit", "last_run"]))


STATUS_COLUMNS = [
    "source",
    "kind",
    "contract",
    "landing",
    "pending_files",
    "ingested_files",
    "bronze_rows",
    "quarantined_rows",
    "last_commit",
]


def status(state: State, *, json_out: bool = False) -> None:
    """`lakestack status`: each source's contract, files waiting and ingested, Bronze and quarantine rows."""
    from lakestack.cli.render import print_json, rows_table, to_jsonable

    lake = state.lake()
    states = lake.status()
    if json_out:
        print_json(console(), states)
        return
    rows = [to_jsonable(s) for s in states]
    title = f"project {lake.project.name} · environment {lake.environment}"
    console().print(rows_table(title, rows, STATUS_COLUMNS))


def user_attrs(values: list[str] | None) -> dict[str, str] | None:
    """`--user-attr region=EMEA` (repeatable) as a mapping; exit 2 for an item without `=`."""
    from lakestack.errors import UsageError

    if not values:
        return None
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--user-attr takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


@dataclass
class AuditedRead:
    """What a reading command tells its audit row: rows returned, and for `show` what it read."""

    rows: int | None = None
    datasets: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    result: str = "ok"
    detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def audit_read(lake: Any, action: str, text: str, role: str | None = None) -> Iterator[AuditedRead]:
    """Audit the read inside the `with` as one row, spooled (fsynced) before the block runs (as
    unfinished) and again when it ends, with its result and `rows` (set them on the yielded value);
    so a read killed while it shows rows is in the log too. An exception in the block is recorded
    as `denied` (a role's refusal) or `error`, and raised on."""
    from dataclasses import replace

    from lakestack.pipeline.audit import AuditEntry, os_user

    read = AuditedRead()
    # a query's datasets and columns are worked out with sqlglot when the row is committed or shown
    datasets: tuple[str, ...] = (text,) if action == "show" else ()
    start = AuditEntry(
        action,
        "error",
        "cli",
        role=role,
        os_user=os_user(),
        query=text,
        datasets=datasets,
        detail=UNFINISHED,
        resolve=action != "show",
    )
    lake.audit.write(start, final=False)
    try:
        yield read
    except BaseException as exc:
        read.result = "denied" if _denied(exc) else "error"
        read.detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise
    finally:
        datasets = read.datasets if read.datasets is not None else datasets
        columns = read.columns if read.columns is not None else ()
        if (
            read.result == "error"
            and role is not None
            and any(not _may_read(lake, role, d) for d in _named(action, text))
        ):
            read.result = "denied"
        lake.audit.write(
            replace(start, result=read.result, datasets=datasets, columns=columns, rows=read.rows, detail=read.detail)
        )


UNFINISHED = "ended before the read finished (the process was killed or is still running)"


def _denied(exc: BaseException) -> bool:
    return isinstance(exc, PermissionError) or type(exc).__name__.endswith(("DeniedError", "AccessError"))


def _named(action: str, text: str) -> list[str]:
    """The table `show` reads, or those a query names (DuckDB's parser)."""
    from lakestack.engine import tables_named

    return [text] if action == "show" else tables_named(text)


def _may_read(lake: Any, role: str, identifier: str) -> bool:
    try:
        return bool(lake.may_read(role, identifier))
    except Exception:  # an unknown role: the command failed on that, not on access
        return True

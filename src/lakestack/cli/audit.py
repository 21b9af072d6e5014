"""`lakestack audit`: the audit log (`_lakestack.audit`, pipeline/audit.py), and `audit_read`, which
the reading commands (`query`, `show`) wrap their read in so each is one audit row.

The row is spooled (`.lakestack/audit/<environment>/`, fsynced) before the read shows anything and
again when it ends; a later command that writes the lake, `lakestack audit` or `serve` commits it
to `_lakestack.audit` (ADR 0034). `lakestack audit` shows spooled rows too, as pending.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option("--since", help="Since: 30m, 12h, 1d, 2w or an ISO date.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="An action (query, show, api.stream.write, keys.create) or prefix.")
    ] = None,
    who: Annotated[str | None, typer.Option("--who", help="A key id, a role or an OS user.")] = None,
    result: Annotated[str | None, typer.Option("--result", help="ok, denied or error.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many (0: all).")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Who read or tried what, newest first: CLI reads, API calls (401/403/429 too), key changes."""
    from datetime import UTC, datetime

    from lakestack.cli.render import print_json, rows_table
    from lakestack.errors import UsageError
    from lakestack.pipeline.audit import RESULTS, read_audit
    from lakestack.pipeline.records import parse_since

    if result is not None and result not in RESULTS:
        raise UsageError(f"--result {result!r}: expected one of {', '.join(RESULTS)}")
    after = parse_since(since, datetime.now(UTC)) if since else None
    lake = _state(ctx).lake()
    lake.audit.flush()  # the reads spooled since the last commit (ADR 0034); live ones stay pending
    rows = read_audit(
        lake.warehouse, spool=lake.audit.spool, since=after, action=action, who=who, result=result, limit=limit or None
    )
    if json_out:
        print_json(_console(), rows)
        return
    shown = [_display(r) for r in rows]
    columns = ["at", "who", "action", "result", "datasets", "rows", "query"]
    pending = sum(1 for r in rows if r["pending"])
    title = f"audit · {len(rows):,} shown, newest first" + (
        f" · {pending:,} pending (spooled, not yet committed)" if pending else ""
    )
    _console().print(rows_table(title, shown, columns))


def _display(row: dict[str, Any]) -> dict[str, Any]:
    who = " · ".join(str(x) for x in (row["key_id"], row["role"], row["os_user"]) if x)
    status = f" {row['status']}" if row["status"] else ""
    return {
        "at": row["at"].strftime("%Y-%m-%d %H:%M:%S"),
        "who": who,
        "action": row["action"],
        "result": f"{row['result']}{status}" + (" (pending)" if row["pending"] else ""),
        "datasets": ", ".join(row["datasets"] or []),
        "rows": "" if row["rows"] is None else row["rows"],
        "query": (row["query"] or "")[:80],
    }


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

"""`lakestack audit`: the audit log (`_lakestack.audit`, pipeline/audit.py), and `audit_read`, which
the reading commands (`query`, `show`) wrap their read in so each is one audit row.

The row is recorded when the command ends (its rows counted by then) and committed with the lake's
close: one audit commit per command.
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
    rows = read_audit(lake.warehouse, since=after, action=action, who=who, result=result, limit=limit or None)
    if json_out:
        print_json(_console(), rows)
        return
    shown = [_display(r) for r in rows]
    columns = ["at", "who", "action", "result", "datasets", "rows", "query"]
    _console().print(rows_table(f"audit · {len(rows):,} shown, newest first", shown, columns))


def _display(row: dict[str, Any]) -> dict[str, Any]:
    who = " · ".join(str(x) for x in (row["key_id"], row["role"], row["os_user"]) if x)
    status = f" {row['status']}" if row["status"] else ""
    return {
        "at": row["at"].strftime("%Y-%m-%d %H:%M:%S"),
        "who": who,
        "action": row["action"],
        "result": f"{row['result']}{status}",
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
def audit_read(ctx: typer.Context, lake: Any, action: str, text: str, role: str | None = None) -> Iterator[AuditedRead]:
    """Audit the read inside the `with` as one row, recorded when the command ends (set `rows` on
    the yielded value before then); an exception in the block is recorded as `denied` (a role's
    refusal) or `error`, and raised on."""
    read = AuditedRead()
    try:
        yield read
    except BaseException as exc:
        read.result = "denied" if _denied(exc) else "error"
        read.detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise
    finally:
        ctx.find_root().call_on_close(lambda: _record(lake, action, text, role, read))


def _denied(exc: BaseException) -> bool:
    return isinstance(exc, PermissionError) or type(exc).__name__.endswith(("DeniedError", "AccessError"))


def _record(lake: Any, action: str, text: str, role: str | None, read: AuditedRead) -> None:
    from lakestack.pipeline.audit import AuditEntry, os_user, sql_reads, sql_tables

    datasets, columns = read.datasets, read.columns
    if datasets is None and action == "show":
        datasets = (text,)
    elif datasets is None:
        datasets, columns = sql_reads(text, lambda t: _columns(lake, t))
        if read.result != "ok":  # a table the role may not see reads as missing: name it anyway
            datasets = tuple(sorted(set(datasets) | set(sql_tables(text))))
    if read.result == "error" and role is not None and any(not _may_read(lake, role, d) for d in datasets):
        read.result = "denied"
    entry = AuditEntry(
        action,
        read.result,
        "cli",
        role=role,
        os_user=os_user(),
        query=text,
        datasets=datasets,
        columns=columns or (),
        rows=read.rows,
        detail=read.detail,
    )
    lake.audit.record(entry)
    lake.audit.flush()  # the lake may have closed already (its close callback ran first)


def _may_read(lake: Any, role: str, identifier: str) -> bool:
    try:
        return bool(lake.may_read(role, identifier))
    except Exception:  # an unknown role: the command failed on that, not on access
        return True


def _columns(lake: Any, identifier: str) -> list[str] | None:
    try:
        if not lake.warehouse.exists(identifier):
            return None
        return [f.name for f in lake.warehouse.load(identifier).schema().fields]
    except Exception:
        return None

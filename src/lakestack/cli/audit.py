"""`lakestack audit`: the audit log (`_lakestack.audit`, pipeline/audit.py). `audit_read`, which the
reading commands (`query`, `show`) wrap their read in so each is one audit row, is in cli/reads.py.

The row is spooled (`.lakestack/audit/<environment>/`, fsynced) before the read shows anything and
again when it ends; a later command that writes the lake, `lakestack audit` or `serve` commits it
to `_lakestack.audit` (ADR 0034). `lakestack audit` shows spooled rows too, as pending.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state
from lakestack.cli.reads import UNFINISHED, AuditedRead, audit_read

__all__ = ["UNFINISHED", "AuditedRead", "audit", "audit_read", "register"]


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

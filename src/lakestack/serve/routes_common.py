"""What the read API's routes share: the key check, running the read off the event loop, the
translation of errors into problem details, the audit row, and JSON that keeps its types
(datetimes as ISO-8601, decimals as strings)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from lakestack.errors import LakestackError, UsageError

log = logging.getLogger(__name__)

MAX_PAGE = 1000  # rows per page of GET .../rows and GET /v1/quarantine/...
PROBLEM_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such dataset, or one the key's role may not read (the same answer)"}
}


def encode(body: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(body, enc_hook=str)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(encode(body), status_code=status, media_type="application/json")


class PageTooLarge(UsageError):
    """A page (or a request body) over its limit: 413."""

    def __init__(self, message: str, maximum: int) -> None:
        super().__init__(message)
        self.maximum = maximum


class Busy(LakestackError):
    """Too many reads of one kind at once: 503, retry after a second."""


def check_page(limit: int, maximum: int = MAX_PAGE) -> None:
    """Raise :class:`PageTooLarge` (413) for a page over `maximum` rows."""
    if limit > maximum:
        raise PageTooLarge(f"limit {limit:,} is over {maximum:,} rows a page", maximum)


def failure(exc: BaseException) -> Response:
    """A read's error as problem details: not found 404, bad SQL 400, bad input 400, else 500 (one line)."""
    from lakestack.engine.base import SqlError, SqlOutOfMemory, SqlTimeout
    from lakestack.pipeline.checks import CheckNotFound
    from lakestack.pipeline.datasets import DatasetNotFound
    from lakestack.pipeline.run_views import RunNotFound
    from lakestack.serve.api import problem

    if isinstance(exc, Busy):
        return problem(503, "Busy", str(exc), retry_after=1)
    if isinstance(exc, PageTooLarge):
        return problem(413, "Too large", str(exc), max=exc.maximum)
    if isinstance(exc, DatasetNotFound):
        return problem(404, "Unknown dataset", str(exc))
    if isinstance(exc, RunNotFound):
        return problem(404, "Unknown run", str(exc))
    if isinstance(exc, CheckNotFound):
        return problem(404, "Unknown check", str(exc))
    if isinstance(exc, SqlTimeout):
        return problem(400, "Query timeout", str(exc))
    if isinstance(exc, SqlOutOfMemory):
        return problem(400, "Query out of memory", str(exc))
    if isinstance(exc, SqlError):
        extra = {"line": exc.line} if exc.line is not None else {}
        return problem(400, "Bad query", str(exc), **extra)
    if isinstance(exc, UsageError):
        return problem(400, "Bad request", str(exc))
    text = str(exc).strip().splitlines()
    return problem(500, "Internal error", text[0] if text else type(exc).__name__)


async def read(
    request: Request,
    action: str,
    work: Callable[..., Any],
    *,
    datasets: tuple[str, ...] = (),
    render: Callable[[Any], Response] = json_response,
    rows: bool = False,
) -> Response:
    """Check the caller's key, run `work(role)` in a worker thread (`rows`: `work(role, user)`,
    with the key's user attributes for row filters), answer with `render` of its result or the
    problem its error makes, and audit the call with its status and `datasets`."""
    access = request.app.state.access
    caller = await access.caller(request, action)
    if isinstance(caller, Response):
        return caller
    counted: int | None = None
    try:
        args = (caller.role, caller.user) if rows else (caller.role,)
        result = await asyncio.to_thread(work, *args)
        response = render(result)
        counted = _rows(result)
    except Exception as exc:  # answered as problem details, never a stack trace
        if not isinstance(exc, LakestackError):
            log.warning("%s failed: %s", action, exc, exc_info=True)
        response = failure(exc)
    extra: dict[str, Any] = {"datasets": datasets} if datasets else {}
    if counted is not None:
        extra["rows"] = counted
    access.done(request, caller, action, response.status_code, **extra)
    return response


def _rows(result: Any) -> int | None:
    if isinstance(result, dict) and isinstance(result.get("rows"), list):
        return len(result["rows"])
    table = getattr(result, "table", None)  # a query page
    return int(table.num_rows) if table is not None else None

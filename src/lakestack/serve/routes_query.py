"""POST /v1/query: read-only SQL through the locked-down sandbox `lakestack query` uses
(`Lake.query_stream`: one SELECT, the role's masked view of the tables it names, a time limit),
answered as JSON, CSV or an Arrow IPC stream, a page at a time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lakestack.serve.routes_common import Busy, PageTooLarge, encode, read

router = APIRouter(tags=["query"])
MAX_BODY = 256 * 1024  # bytes of the request body (the SQL text and its options)
MAX_ROWS = 10_000  # rows a page
MAX_BYTES = 64 * 1024 * 1024  # Arrow bytes a page may reach before the result is cut short
ARROW = "application/vnd.apache.arrow.stream"
CONCURRENT = 4  # queries running at once in one server (each may use 2 threads and 1 GB): others wait
_SLOTS = threading.BoundedSemaphore(CONCURRENT)


class QueryRequest(BaseModel):
    """One read-only SELECT over `bronze.*`, `silver.*`, `gold.*`, `quarantine.*` tables."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, description="one SELECT")
    format: Literal["json", "csv", "arrow"] = "json"
    limit: int = Field(1000, ge=1, description=f"rows a page (at most {MAX_ROWS:,})")
    offset: int = Field(0, ge=0, description="rows of the result to skip")
    timeout_s: float = Field(30.0, gt=0, le=300, description="seconds for running the query")


@dataclass(frozen=True, slots=True)
class QueryPage:
    """A page of a query's result: the Arrow table, whether the result goes on, the time it took."""

    table: Any
    truncated: bool
    elapsed_ms: float
    offset: int
    limit: int


_BODY = {
    "required": True,
    "content": {"application/json": {"schema": QueryRequest.model_json_schema()}},
}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "json: columns, rows, truncated; csv: text/csv; arrow: an Arrow IPC stream",
        "content": {"application/json": {}, "text/csv": {}, ARROW: {}},
    },
    400: {"description": "Not one SELECT, a missing table or column, a time limit reached: the engine's error"},
    413: {"description": f"A body over {MAX_BODY:,} bytes or a limit over {MAX_ROWS:,} rows"},
    422: {"description": "Bad parameters (an unknown format, a negative offset, ...)"},
    503: {"description": f"{CONCURRENT} queries ran for the whole time limit: retry after Retry-After"},
}


def query_page(
    lake: Any,
    sql: str,
    role: str | None,
    *,
    limit: int,
    offset: int,
    timeout_s: float,
    user: dict[str, str] | None = None,
) -> QueryPage:
    """Rows [offset, offset + limit) of `sql`'s result read as `role` may, within the time limit;
    `truncated` when the result has more rows (or stopped at the byte limit)."""
    from lakestack.engine.base import SqlLimits

    if limit > MAX_ROWS:
        raise PageTooLarge(f"limit {limit:,} is over {MAX_ROWS:,} rows a page", MAX_ROWS)
    started = time.perf_counter()
    if not _SLOTS.acquire(timeout=timeout_s):  # waited its whole time limit for a free slot
        raise Busy(f"{CONCURRENT} queries are running; none finished within {timeout_s:g} s: retry")
    try:
        limits = SqlLimits(timeout_s=timeout_s, max_rows=offset + limit + 1, max_bytes=MAX_BYTES)
        with lake.query_stream(sql, limits, role=role, user=user) as stream:
            table = stream.read_all()
            cut = stream.truncated
    finally:
        _SLOTS.release()
    page = table.slice(offset, limit)
    more = table.num_rows > offset + limit or (cut is not None and cut.limit != "max_rows")
    return QueryPage(page, more, round((time.perf_counter() - started) * 1000, 3), offset, limit)


def _render(fmt: str) -> Any:
    def render(page: QueryPage) -> Response:
        headers = {"Lakestack-Truncated": str(page.truncated).lower(), "Lakestack-Rows": str(page.table.num_rows)}
        if fmt == "csv":
            return Response(_csv(page.table), media_type="text/csv; charset=utf-8", headers=headers)
        if fmt == "arrow":
            return Response(_arrow(page.table), media_type=ARROW, headers=headers)
        body = {
            "columns": [{"name": f.name, "type": str(f.type)} for f in page.table.schema],
            "rows": [list(r.values()) for r in page.table.to_pylist()],
            "truncated": page.truncated,
            "elapsed_ms": page.elapsed_ms,
            "offset": page.offset,
            "limit": page.limit,
            "next_offset": page.offset + page.limit if page.truncated else None,
        }
        return Response(encode(body), media_type="application/json", headers=headers)

    return render


def _csv(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _arrow(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@router.post("/v1/query", summary="Read-only SQL, masked for the key's role", openapi_extra={"requestBody": _BODY},
             responses=_ANSWERS)  # fmt: skip
async def query(request: Request) -> Response:
    import json

    from lakestack.pipeline.audit import sql_tables
    from lakestack.serve.api import problem

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return problem(413, "Too large", f"the body is {int(declared):,} bytes; the limit is {MAX_BODY:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return problem(413, "Too large", f"the body is over {MAX_BODY:,} bytes")
    try:
        asked = QueryRequest.model_validate(json.loads(body or b"null"))
    except json.JSONDecodeError as exc:
        return problem(400, "Malformed request", f"the body is not JSON: {exc}")
    except ValidationError as exc:
        errors = [{"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['where'] or 'body'}: {e['message']}" for e in errors)
        return problem(422, "Invalid parameters", detail, errors=errors)
    lake = request.app.state.lake
    try:
        named = tuple(sorted(sql_tables(asked.sql)))
    except Exception:  # unparseable: the engine refuses it with its own message
        named = ()
    return await read(
        request,
        "api.query",
        lambda role, user: query_page(
            lake, asked.sql, role, limit=asked.limit, offset=asked.offset, timeout_s=asked.timeout_s, user=user
        ),
        datasets=named,
        render=_render(asked.format),
        rows=True,
    )

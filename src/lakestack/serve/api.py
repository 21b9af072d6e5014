"""`lakestack serve`: the FastAPI application. OpenAPI docs at /docs; errors are problem details
(RFC 9457, `application/problem+json`).

    POST /v1/streams/{source}/records   a JSON array or NDJSON of events → per-record results
    GET  /v1/streams/{source}           the collector's counters
    GET  /health                        liveness
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from lakestack.errors import LakestackError
from lakestack.ingest.http import Collector, CommitPending, LimitExceeded, Overloaded
from lakestack.ingest.wal import LogWriteError, SourceLock
from lakestack.pipeline.runs import new_run_id

PROBLEM = "application/problem+json"
_BODY_SCHEMA: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one JSON event per line"}},
    },
}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    retry = extra.pop("retry_after", None)
    headers = {"Retry-After": str(retry)} if retry is not None else None
    body: dict[str, Any] = {
        "type": f"https://lakestack.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def create_app(lake: Any, run_id: str | None = None) -> FastAPI:
    """The API over one opened project; one collector per `kind: http` source.

    Each source's log is locked here, before the server starts: a second `lakestack serve` on the
    same project fails at once with SourceBusy (exit 3) naming the process that collects it."""
    from lakestack._secrets import install_log_redaction

    install_log_redaction()  # secrets out of uvicorn's and our log lines, however the app is run
    run_id = run_id or new_run_id()
    sources = {n: c for n, c in lake.project.config.sources.items() if c.kind == "http"}
    collectors: dict[str, Collector] = {}
    locks = _lock_logs(lake, sources)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sessions = ExitStack()  # one run per collector session, with its progress (Lake.stream_session)
        try:
            for name, config in sources.items():
                wal = _log_folder(lake, name, config)
                contract = lake.project.contract(name)
                collector = Collector(lake.warehouse, name, contract, config, run_id, wal, locks.pop(name))
                collector.start()
                collectors[name] = collector
                sessions.enter_context(lake.stream_session(name, lambda c=collector: c.stats, run_id))
        except BaseException:
            for lock in locks.values():
                lock.release()
            sessions.close()
            raise
        try:
            yield
        finally:  # a final commit answers every waiting request before the server exits
            for collector in collectors.values():
                await asyncio.to_thread(collector.stop)
            await asyncio.to_thread(sessions.close)  # the sessions' totals, after the final commits

    app = FastAPI(
        title="lakestack",
        version="0.1.0",
        description=f"The lakestack API of project **{lake.project.name}** (run {run_id}).",
        lifespan=lifespan,
    )

    @app.exception_handler(LakestackError)
    async def _lakestack_error(_: Request, exc: LakestackError) -> JSONResponse:
        return problem(500, "Internal error", str(exc))

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "project": lake.project.name, "run_id": run_id}

    @app.post(
        "/v1/streams/{source}/records",
        tags=["streams"],
        summary="Send events to a stream source",
        openapi_extra={"requestBody": _BODY_SCHEMA},
        responses={
            200: {"description": "Committed: a result for each record (accepted, or rejected with its errors)"},
            400: {"description": "Malformed body, or nesting over http.max_depth", "content": {PROBLEM: {}}},
            404: {"description": "No such HTTP source", "content": {PROBLEM: {}}},
            413: {"description": "Over a size or count limit (named in `limit`)", "content": {PROBLEM: {}}},
            503: {
                "description": "Too many records wait for a commit, the log disk is full or failing, or a "
                "`committed` batch's commit is pending; nothing is acknowledged: retry after Retry-After",
                "content": {PROBLEM: {}},
            },
        },
    )
    async def post_records(
        source: str,
        request: Request,
        lakestack_batch_id: str | None = Header(None, description="a client batch id: a retry lands once"),
        idempotency_key: str | None = Header(None, description="same as Lakestack-Batch-Id"),
    ) -> Response:
        collector = collectors.get(source)
        if collector is None:
            known = ", ".join(sorted(collectors)) or "none"
            return problem(404, "Unknown source", f"no HTTP source '{source}' (HTTP sources: {known})")
        limit = collector.limits.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _limit(LimitExceeded("max_request_bytes", int(declared), limit, _too_big(int(declared), limit)))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _limit(LimitExceeded("max_request_bytes", len(body), limit, _too_big(len(body), limit)))
        try:
            future = collector.submit(
                bytes(body), request.headers.get("content-type"), lakestack_batch_id or idempotency_key
            )
        except LimitExceeded as exc:
            return _limit(exc)
        except Overloaded as exc:
            return problem(503, "Overloaded", str(exc), retry_after=1)
        try:
            result = await asyncio.wrap_future(future)
        except LimitExceeded as exc:
            return _limit(exc)
        except LogWriteError as exc:  # a full or failing log disk: nothing of the batch was acknowledged
            return problem(503, "Log unavailable", f"the batch was not accepted ({exc}); retry it", retry_after=5)
        except CommitPending as exc:
            return problem(503, "Commit pending", str(exc), retry_after=5)
        except Exception as exc:
            return problem(503, "Commit failed", f"the batch was not committed ({exc}); retry it", retry_after=1)
        import msgspec

        return Response(msgspec.json.encode(result.as_json()), media_type="application/json")

    @app.get("/v1/streams/{source}", tags=["streams"], summary="A collector's counters")
    async def stream_status(source: str) -> Response:
        collector = collectors.get(source)
        if collector is None:
            return problem(404, "Unknown source", f"no HTTP source '{source}'")
        s = collector.stats
        health = collector.health
        return JSONResponse(
            {
                "source": source,
                "received": s.received,
                "landed": s.landed,
                "quarantined": s.quarantined,
                "commits": s.commits,
                "pending": collector.pending,
                "last_commit": s.last_commit.isoformat() if s.last_commit else None,
                "last_commit_seconds": round(s.last_commit_seconds, 4),
                "wal_position": collector.log_position,
                "wal_committed_at_start": health.committed,
                "wal_lost_suspected": health.problem is not None,
                "wal_lost_entries": health.lost,
                "wal_problem": health.problem,
                "wal_incidents": health.incidents,
            }
        )

    return app


def _log_folder(lake: Any, name: str, config: Any) -> Any:
    return lake.project.root / config.http.wal_dir / name


def _lock_logs(lake: Any, sources: dict[str, Any]) -> dict[str, SourceLock]:
    locks: dict[str, SourceLock] = {}
    try:
        for name, config in sources.items():
            locks[name] = SourceLock(_log_folder(lake, name, config), name)
    except BaseException:
        for lock in locks.values():
            lock.release()
        raise
    return locks


def _too_big(size: int, limit: int) -> str:
    return f"the request is {size:,} bytes; the limit is {limit:,} (http.max_request_bytes)"


def _limit(exc: LimitExceeded) -> JSONResponse:
    title = "Malformed request" if exc.limit == "json" else "Over limit"
    extra: dict[str, Any] = {} if exc.limit == "json" else {"limit": exc.limit, "value": exc.value, "max": exc.maximum}
    return problem(exc.status, title, str(exc), **extra)

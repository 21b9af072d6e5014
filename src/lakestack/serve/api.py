"""`lakestack serve`: the FastAPI application. OpenAPI docs at /docs; errors are problem details
(RFC 9457, `application/problem+json`).

    POST /v1/streams/{source}/records   a JSON array or NDJSON of events → per-record results
    GET  /v1/streams/{source}           the collector's counters
    GET  /v1/overview                   last runs, failing checks, SLAs, quarantine rates, freshness
    GET  /v1/datasets[?q=&layer=]       the datasets the key's role may read (routes_datasets.py)
    GET  /v1/datasets/{name}            schema with PII and masking, snapshot history, checks
    GET  /v1/datasets/{name}/rows       a page of rows, masked for the role (limit ≤ 1,000)
    POST /v1/query                      read-only SQL, locked down: JSON, CSV or Arrow IPC (routes_query.py)
    GET  /v1/runs, /v1/runs/{run_id}    run records with jobs, datasets, checks, stages (routes_runs.py)
    GET  /v1/checks, /v1/checks/{name}/history, /v1/checks/{name}/failures
    GET  /v1/lineage, /v1/lineage/{dataset}   the graph, Gold column lineage (routes_lineage.py)
    GET  /v1/quarantine/{source}        quarantined records by reason
    GET  /healthz (alias /health)       liveness;  GET /readyz: the catalog opens, collectors started
    GET  /metrics                       Prometheus text: run, dataset and live stream metrics

Every route but /healthz, /readyz and the API description (/docs, /redoc, /openapi.json) needs an
API key (`serve/auth.py`: 401, 403, 429, each audited in `_lakestack.audit`), unless `insecure_dev`.
The key's role decides what the /v1 reads see: a dataset it may not read is a 404 exactly like an
unknown one, and rows are masked for it (pipeline/access.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from lakestack.errors import LakestackError
from lakestack.ingest.http import Collector, CommitPending, LimitExceeded, Overloaded
from lakestack.ingest.wal import LogWriteError, SourceLock
from lakestack.pipeline.runs import new_run_id
from lakestack.serve.scheduler import Schedule, Scheduler, default_schedules

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


def create_app(
    lake: Any,
    run_id: str | None = None,
    *,
    base_url: str | None = None,
    schedules: Sequence[Schedule] | None = None,
    insecure_dev: bool = False,
) -> FastAPI:
    """The API over one opened project; one collector per `kind: http` source. `base_url`
    (`http://host:port`, where it is served) names the collectors' input in lineage. `schedules`
    (default: `serve.scheduler.default_schedules`) run while it serves. Requests need an API key
    (`_lakestack.api_keys`); `insecure_dev` also lets requests without one through as `engineer`.

    Each source's log is locked here, before the server starts: a second `lakestack serve` on the
    same project fails at once with SourceBusy (exit 3) naming the process that collects it."""
    from lakestack._secrets import install_log_redaction

    install_log_redaction()  # secrets out of uvicorn's and our log lines, however the app is run
    run_id = run_id or new_run_id()
    sources = {n: c for n, c in lake.project.config.sources.items() if c.kind == "http"}
    if sources:  # a newer contract than a collector's Bronze table follows: refused (exit 2) or evolved first
        from lakestack.pipeline.evolution import evolve_bronze

        evolve_bronze(lake.project.contracts, lake.warehouse, [lake.project.contract(n) for n in sources])
    collectors: dict[str, Collector] = {}
    leadership = _leadership(lake) if schedules is None else None  # one serve process fires the schedules
    leader = leadership.held if leadership is not None else None
    scheduler = Scheduler(default_schedules(lake) if schedules is None else schedules, leader=leader)
    from lakestack.orchestrate.scheduler import cron_scheduler

    cron = cron_scheduler(lake, leader) if schedules is None else None  # the project's `schedules:` block
    locks = _lock_logs(lake, sources)
    from lakestack.pipeline.metrics import PrometheusScrape

    scrape = PrometheusScrape(lake)  # before the sessions start: the metrics listener hears them
    from lakestack.serve.auth import Access

    settings = lake.env.serve
    access = Access(lake, lake.audit, insecure_dev=insecure_dev, rate=settings.rate_limit, burst=settings.burst)

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
                session = lake.stream_session(name, lambda c=collector: c.stats, run_id, collector=base_url)
                sessions.enter_context(session)
        except BaseException:
            for lock in locks.values():
                lock.release()
            sessions.close()
            raise
        scheduler.start()
        if cron is not None:
            cron.start()
        lake.audit.start(settings.audit_flush_seconds)  # audit rows committed off the request path
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False  # a final commit answers every waiting request before the server exits
            await scheduler.stop()
            if cron is not None:
                await asyncio.to_thread(cron.stop)
            if leadership is not None:  # a standby takes over at its next due schedule
                await asyncio.to_thread(leadership.release)
            for collector in collectors.values():
                await asyncio.to_thread(collector.stop)
            await asyncio.to_thread(sessions.close)  # the sessions' totals, after the final commits
            await asyncio.to_thread(lake.audit.close)

    app = FastAPI(
        title="lakestack",
        version="0.1.0",
        description=f"The lakestack API of project **{lake.project.name}** (run {run_id}).",
        lifespan=lifespan,
    )
    app.state.scheduler = scheduler
    app.state.cron = cron
    app.state.leadership = leadership
    app.state.access = access
    app.state.lake = lake
    app.state.ready = False
    _problems(app)
    from lakestack.serve import console, routes_datasets, routes_lineage, routes_query, routes_runs

    app.include_router(routes_datasets.router)
    app.include_router(routes_runs.router)
    app.include_router(routes_query.router)
    app.include_router(routes_lineage.router)
    console.mount_console(app)  # the web console at /console/ (static files; its data comes from /v1 with a key)

    @app.get("/healthz", tags=["meta"], summary="Liveness")
    @app.get("/health", tags=["meta"], include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "project": lake.project.name, "run_id": run_id}

    @app.get("/readyz", tags=["meta"], summary="Readiness: the catalog opens and the collectors started")
    async def ready() -> Response:
        try:
            await asyncio.to_thread(lake.warehouse.tables)
        except Exception as exc:
            return problem(503, "Not ready", f"the catalog does not open: {str(exc).strip().splitlines()[0]}")
        if not app.state.ready:
            return problem(503, "Not ready", "the collectors are starting")
        return JSONResponse({"status": "ready", "collectors": sorted(collectors)})

    @app.get("/metrics", tags=["meta"], summary="Prometheus metrics (an engineer key)", response_class=Response)
    async def metrics(request: Request) -> Response:
        caller = await access.caller(request, "api.metrics", role="engineer")
        if isinstance(caller, Response):
            return caller
        streams = {name: c.stats for name, c in collectors.items()}
        body, content_type = await asyncio.to_thread(scrape, streams)  # reads the run records: off the loop
        access.done(request, caller, "api.metrics", 200)
        return Response(body, media_type=content_type)

    @app.post(
        "/v1/streams/{source}/records",
        tags=["streams"],
        summary="Send events to a stream source",
        openapi_extra={"requestBody": _BODY_SCHEMA},
        responses={
            200: {"description": "Committed: a result for each record (accepted, or rejected with its errors)"},
            400: {"description": "Malformed body, or nesting over http.max_depth", "content": {PROBLEM: {}}},
            401: {"description": "No API key, or a wrong, unknown or revoked one", "content": {PROBLEM: {}}},
            403: {
                "description": "The key may not write this source (whether it exists or not)",
                "content": {PROBLEM: {}},
            },
            429: {"description": "Over the key's rate limit: retry after Retry-After", "content": {PROBLEM: {}}},
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
        caller = await access.caller(request, "api.stream.write", writes=source)
        if isinstance(caller, Response):
            return caller
        response = await _post(source, request, lakestack_batch_id or idempotency_key, caller)
        access.done(request, caller, "api.stream.write", response.status_code, datasets=(f"bronze.{source}",))
        return response

    async def _post(source: str, request: Request, batch_id: str | None, caller: Any) -> Response:
        collector = collectors.get(source)
        if collector is None:  # only a key that may write this name gets here; it hears only of its own
            mine = [n for n in sorted(collectors) if caller.key is None or caller.key.may_write(n)]
            return problem(404, "Unknown source", f"no HTTP source '{source}' (yours: {', '.join(mine) or 'none'})")
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
            future = collector.submit(bytes(body), request.headers.get("content-type"), batch_id)
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
    async def stream_status(source: str, request: Request) -> Response:
        caller = await access.caller(request, "api.stream.status", reads=source)
        if isinstance(caller, Response):
            return caller
        access.done(request, caller, "api.stream.status", 200, datasets=(f"bronze.{source}",))
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


def _problems(app: FastAPI) -> None:
    """Errors as problem details: bad parameters 422, unknown routes 404, our errors 500 (one line)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(LakestackError)
    async def _lakestack_error(_: Request, exc: LakestackError) -> JSONResponse:
        return problem(500, "Internal error", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors)
        return problem(422, "Invalid parameters", detail, errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem(exc.status_code, title, str(exc.detail))


def _log_folder(lake: Any, name: str, config: Any) -> Any:
    return lake.project.root / config.http.wal_dir / name


def _leadership(lake: Any) -> Any:
    """Who of several serve processes of this project and environment fires its schedules."""
    from lakestack.orchestrate.leader import Leadership
    from lakestack.pipeline.lock import scheduler_lock

    return Leadership(scheduler_lock(lake.env, lake.project.root, lake.project.name))


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

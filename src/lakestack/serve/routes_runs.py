"""GET /v1/runs, /v1/runs/{run_id} (pipeline/run_views.py), /v1/checks and a check's history and
failing rows (pipeline/checks.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from lakestack.serve.routes_common import read

router = APIRouter(tags=["runs and checks"])
RunStatus = Literal["COMPLETE", "FAIL", "BLOCKED", "ABORT", "RUNNING"]
CheckStatus = Literal["pass", "fail", "warn", "error", "skipped"]


@router.get("/v1/runs", summary="Run records, newest first")
async def runs(
    request: Request,
    status: Annotated[RunStatus | None, Query()] = None,
    job: Annotated[str | None, Query(description="a job (promote.orders) or job type (ingest); jobs too")] = None,
    since: Annotated[str | None, Query(description="30m, 12h, 1d, 2w or an ISO date")] = None,
    limit: Annotated[int, Query(ge=0, le=1000, description="at most this many (0: all)")] = 50,
) -> Response:
    from datetime import UTC, datetime

    from lakestack.pipeline.records import parse_since
    from lakestack.pipeline.run_views import list_run_summaries

    lake = request.app.state.lake

    def work(_: str) -> dict[str, Any]:
        after = parse_since(since, datetime.now(UTC)) if since else None
        return {"runs": list_run_summaries(lake, status=status, job=job, since=after, limit=limit or None)}

    return await read(request, "api.runs", work)


@router.get("/v1/runs/{run_id}", summary="A run with its jobs, datasets, checks and stage timings")
async def run(request: Request, run_id: str) -> Response:
    from lakestack.pipeline.run_views import run_detail

    lake = request.app.state.lake
    return await read(request, "api.run", lambda role: run_detail(lake, run_id, role))


@router.get("/v1/checks", summary="The latest result of each check, failing first")
async def checks(
    request: Request,
    status: Annotated[CheckStatus | None, Query()] = None,
    dataset: Annotated[str | None, Query()] = None,
) -> Response:
    from lakestack.pipeline.checks import latest_checks

    lake = request.app.state.lake
    return await read(
        request, "api.checks", lambda role: {"checks": latest_checks(lake, role, dataset=dataset, status=status)}
    )


@router.get("/v1/checks/{name}/history", summary="Every evaluation of a check, newest first")
async def check_history(
    request: Request,
    name: str,
    dataset: Annotated[str | None, Query(description="the dataset, when checks of two share a name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    from lakestack.pipeline.checks import check_history as history

    lake = request.app.state.lake
    return await read(
        request,
        "api.check.history",
        lambda role: {"name": name, "history": history(lake, role, name, dataset=dataset, limit=limit)},
    )


@router.get("/v1/checks/{name}/failures", summary="A check's failing-row samples, masked for the key's role")
async def check_failures(
    request: Request,
    name: str,
    run_id: Annotated[str | None, Query(description="default: the latest run it failed in")] = None,
    dataset: Annotated[str | None, Query()] = None,
) -> Response:
    from lakestack.pipeline.checks import check_failures as failures

    lake = request.app.state.lake
    return await read(
        request, "api.check.failures", lambda role: failures(lake, role, name, run_id=run_id, dataset=dataset)
    )

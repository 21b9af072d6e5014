"""GET /v1/lineage, /v1/lineage/{dataset} (pipeline/lineage_graph.py), /v1/overview and
/v1/quarantine/{source} (pipeline/overview.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from lakestack.serve.routes_common import PROBLEM_404, check_page, read

router = APIRouter(tags=["lineage and overview"])


@router.get("/v1/lineage", summary="The whole lineage graph, with Gold column lineage")
async def lineage(request: Request) -> Response:
    from lakestack.pipeline.lineage_graph import lineage_graph

    lake = request.app.state.lake
    return await read(request, "api.lineage", lambda role: lineage_graph(lake, role))


@router.get("/v1/lineage/{dataset}", summary="What a dataset comes from and feeds", responses=PROBLEM_404)
async def dataset_lineage(
    request: Request,
    dataset: str,
    direction: Annotated[Literal["both", "upstream", "downstream"], Query()] = "both",
) -> Response:
    from lakestack.pipeline.lineage_graph import dataset_lineage as part

    lake = request.app.state.lake
    return await read(request, "api.lineage", lambda role: part(lake, role, dataset, direction), datasets=(dataset,))


@router.get("/v1/overview", summary="Last runs, failing checks, SLAs, quarantine rates, freshness")
async def overview(request: Request) -> Response:
    from lakestack.pipeline.overview import overview as view

    lake = request.app.state.lake
    return await read(request, "api.overview", lambda role: view(lake, role))


@router.get(
    "/v1/quarantine/{source}",
    summary="A source's quarantined records by reason (the raw record as the key's role may see it)",
    responses={**PROBLEM_404, 413: {"description": "limit over 1,000 rows"}},
)
async def quarantine(
    request: Request,
    source: str,
    reason: Annotated[str | None, Query(description="a rule (maximum, enum, file, ...) or words of the reason")] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    from lakestack.pipeline.overview import quarantine_rows

    lake = request.app.state.lake

    def work(role: str) -> dict[str, Any]:
        check_page(limit)
        return quarantine_rows(lake, source, role, reason=reason, limit=limit, offset=offset)

    return await read(request, "api.quarantine", work, datasets=(f"quarantine.{source}",))

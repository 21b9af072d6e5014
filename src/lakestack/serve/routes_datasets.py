"""GET /v1/datasets, /v1/datasets/{name}, /v1/datasets/{name}/rows (pipeline/datasets.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from lakestack.serve.routes_common import PROBLEM_404, check_page, read

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
Layer = Literal["bronze", "silver", "gold", "quarantine"]


@router.get("", summary="The datasets the key's role may read")
async def datasets(
    request: Request,
    q: Annotated[str | None, Query(description="words of the name, owner or description")] = None,
    layer: Annotated[Layer | None, Query(description="only this layer")] = None,
) -> Response:
    from lakestack.pipeline.datasets import list_datasets

    lake = request.app.state.lake
    return await read(request, "api.datasets", lambda role: {"datasets": list_datasets(lake, role, q=q, layer=layer)})


@router.get("/{name}", summary="A dataset: schema, PII and masking, snapshot history, checks", responses=PROBLEM_404)
async def dataset(request: Request, name: str) -> Response:
    from lakestack.pipeline.datasets import dataset_detail

    lake = request.app.state.lake
    return await read(request, "api.dataset", lambda role: dataset_detail(lake, name, role), datasets=(name,))


@router.get(
    "/{name}/rows",
    summary="A page of a dataset's rows, masked for the key's role",
    responses={**PROBLEM_404, 413: {"description": "limit over 1,000 rows"}},
)
async def rows(
    request: Request,
    name: str,
    limit: Annotated[int, Query(ge=1, description="rows a page (at most 1,000)")] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    from lakestack.pipeline.datasets import dataset_rows

    lake = request.app.state.lake

    def page(role: str, user: dict[str, str]) -> dict[str, object]:
        check_page(limit)
        return dataset_rows(lake, name, role, limit=limit, offset=offset, user=user)

    return await read(request, "api.dataset.rows", page, datasets=(name,), rows=True)

"""The web console: a single-page app in plain JS modules (no build step) over the JSON read API.

Served by `lakestack serve` itself under `/console/` (`/` redirects there); the assets ship in the
wheel (`static/`), with the one charting library vendored (`static/vendor/`, uPlot, MIT) so nothing
is fetched from a CDN at run time. The pages hold no secrets and no data: every number they show
comes from `/v1/...` with the API key the viewer enters (kept in sessionStorage), so the caller's
role masks what the console shows exactly as it masks the API. The console never writes: actions
that change the lake (quarantine replay) are shown as the CLI command to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount_console(app: FastAPI) -> None:
    """Serve the console at `/console/` on `app` and send `/` there."""

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/console", include_in_schema=False)
    async def _console() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", _Revalidated(directory=STATIC, html=True), name="console")


class _Revalidated(StaticFiles):
    """Answers the browser revalidates each time: an upgraded server never runs yesterday's JS."""

    def file_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response

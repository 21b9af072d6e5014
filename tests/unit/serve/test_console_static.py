"""The console's static files: served at /console/ with the right types, everything it loads comes
from this server (no CDN), the vendored library carries its licence, and no page module renders
data through innerHTML."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lakestack.serve.console import STATIC, mount_console


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    mount_console(app)
    return TestClient(app)


def _files(*suffixes: str) -> list[Path]:
    return sorted(p for p in STATIC.rglob("*") if p.suffix in suffixes)


def test_the_console_is_served_at_console_and_the_root_redirects_there(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    index = client.get("/console/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    for asset in re.findall(r'(?:src|href)="([^"#:/][^"#:]*)"', index.text):  # relative: the console's own
        response = client.get(f"/console/{asset}")
        assert response.status_code == 200, asset
    module = client.get("/console/js/app.js")
    assert "javascript" in module.headers["content-type"]  # a module script needs a JS type


def test_every_import_resolves_to_a_shipped_file() -> None:
    for path in _files(".js"):
        if "vendor" in path.parts:
            continue
        for target in re.findall(r'from "(\.[^"]+)"', path.read_text(encoding="utf-8")):
            assert (path.parent / target).resolve().is_file(), f"{path.relative_to(STATIC)} imports {target}"


def test_nothing_is_loaded_from_another_origin() -> None:
    for path in _files(".html", ".js", ".css"):
        if "vendor" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text), path
        assert not re.findall(r"""(?:import|fetch)\s*\(?\s*["'`](?:https?:)?//""", text), path
        assert "@import" not in text, path


def test_the_vendored_library_ships_with_its_licence() -> None:
    vendor = STATIC / "vendor"
    assert (vendor / "uPlot.iife.min.js").stat().st_size > 10_000
    assert "MIT License" in (vendor / "uPlot.LICENSE").read_text(encoding="utf-8")


def test_no_page_writes_html_from_strings() -> None:
    for path in _files(".js"):
        if "vendor" in path.parts:
            continue
        text = re.sub(r"//.*", "", path.read_text(encoding="utf-8"))  # not the comments that name them
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.relative_to(STATIC)} uses {sink}"

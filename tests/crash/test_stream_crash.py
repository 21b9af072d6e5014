"""Crash matrix, stream rows: `lakestack stream` on NATS crashed at each stream-writer and append
failpoint, restarted at the same point several times, then run clean; on a SQLite and a PostgreSQL
catalog, and on Delta tables. After each crash and at the end: every valid event once in Bronze, every reject once in
quarantine, both tables readable by pyiceberg and by DuckDB, and the next run is not blocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake_support import create_database, drop_database
from lakestack import failpoints
from nats_support import publish
from stream_support import assert_exactly_once, bronze_ids, event, quarantine_rows, stream_project
from tests_support import service_url

pytestmark = [pytest.mark.crash, pytest.mark.integration]

LAKESTACK = str(Path(sys.executable).parent / "lakestack")
EVENTS = 400  # four commits of 100 (max_records) per clean run
BATCH = 100

# failpoint → actions: `kill` everywhere; `raise` (an I/O error) where an error can surface there
POINTS = {
    "stream.fence": ["kill"],
    "stream.before_quarantine_commit": ["kill"],
    "stream.after_quarantine_commit": ["kill", "raise"],
    "stream.after_bronze_commit": ["kill"],
    "stream.before_ack": ["kill", "raise"],
    "storage.append.after_write": ["kill", "raise"],
    "storage.append.after_commit": ["kill"],
}
# every point killed on both catalogs and on Delta tables (ADR 35); the injected I/O errors
# (catalog-independent) on SQLite only
CASES = [
    (catalog, point, action)
    for point, actions in POINTS.items()
    for action in actions
    for catalog in ("sqlite", "postgres", "delta")
    if action == "kill" or catalog == "sqlite"
]


def _payloads(start: int, stop: int) -> tuple[list[bytes], set[str]]:
    """Events start..stop-1; every 13th breaks the contract (so every batch has rejects)."""
    out, invalid = [], set()
    for i in range(start, stop):
        if i % 13 == 5:
            out.append(json.dumps(event(i, amount=-1)).encode())
            invalid.add(f"e{i}")
        else:
            out.append(json.dumps(event(i)).encode())
    return out, invalid


@pytest.fixture
def catalog_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Environment for the child processes: none for SQLite; a fresh PostgreSQL database per test;
    for Delta, the format `_project` writes into the project."""
    if request.param == "sqlite":
        yield {}
        return
    if request.param == "delta":
        pytest.importorskip("deltalake")
        yield {"STREAM_TABLE_FORMAT": "delta"}
        return
    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    try:
        yield {"STREAM_CATALOG_URL": url}
    finally:
        drop_database(url)


def _project(tmp_path: Path, url: str, name: str, env: dict[str, str]) -> Path:
    root = stream_project(
        tmp_path / "p", "nats", {"url": url, "stream": name, "lease_seconds": 1}, max_seconds=5, max_records=BATCH
    )
    config = root / "lakestack.yaml"
    if "STREAM_CATALOG_URL" in env:
        text = config.read_text().replace("uri: sqlite:///.lakestack/catalog.db", "uri: {secret: STREAM_CATALOG_URL}")
        config.write_text(text)
    if "STREAM_TABLE_FORMAT" in env:
        warehouse = "    warehouse: ./warehouse\n"
        text = config.read_text()
        assert warehouse in text
        config.write_text(text.replace(warehouse, f"{warehouse}    format: {env['STREAM_TABLE_FORMAT']}\n", 1))
    return root


def _run(root: Path, env: dict[str, str], arm: str | None, log: Path) -> subprocess.CompletedProcess[bytes]:
    child = {**os.environ, **env, failpoints.LOG_ENV: str(log)}
    child.pop(failpoints.ENV, None)
    if arm:
        child[failpoints.ENV] = arm
    return subprocess.run(
        [LAKESTACK, "-p", str(root), "stream", "events", "--until-idle", "0.6", "--json"],
        capture_output=True,
        env=child,
        timeout=120,
    )


def _assert_readable(root: Path) -> None:
    """Both tables scan in pyiceberg and in DuckDB (over the planned files) with the same rows."""
    from lakestack.pipeline.lake import Lake

    lake = Lake.open(root)
    for identifier in ("bronze.events", "quarantine.events"):
        scanned = lake.warehouse.load(identifier).scan().to_arrow().num_rows
        assert lake.read(identifier).num_rows == scanned, identifier


def _with_env(env: dict[str, str], fn: object, *args: object) -> object:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn(*args)  # type: ignore[operator]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.parametrize(
    ("catalog_env", "point", "action"), CASES, ids=[f"{c}-{p}={a}" for c, p, a in CASES], indirect=["catalog_env"]
)
def test_stream_crashed_at_a_failpoint_lands_every_event_once(
    tmp_path: Path, nats_stream: tuple[str, str, str], catalog_env: dict[str, str], point: str, action: str
) -> None:
    url, name, subject = nats_stream
    root = _project(tmp_path, url, name, catalog_env)
    payloads, invalid = _payloads(0, EVENTS)
    publish(url, subject, payloads)
    log = tmp_path / "failpoints.log"
    # the first hit, the first again (the same commit after the restart), then a later one
    fired = 0
    for arm in [f"{point}={action}", f"{point}={action}", f"{point}={action}@2"]:
        result = _run(root, catalog_env, arm, log)
        detail = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
        # (an injected error may fire again when the failed run records itself in _lakestack.runs)
        assert failpoints.hits(str(log)).count(point) > fired, f"{arm} did not fire: {detail}"
        fired = failpoints.hits(str(log)).count(point)
        if action == "kill":
            assert result.returncode == -9, detail
        else:
            assert result.returncode == 3, detail
            assert "Traceback" not in detail, detail
            assert "injected I/O error" in detail, detail
        ids = _with_env(catalog_env, bronze_ids, root)
        assert isinstance(ids, list) and len(ids) == len(set(ids)), f"a record landed twice after {arm}"
        rejects = _with_env(catalog_env, quarantine_rows, root)
        assert isinstance(rejects, list)
        positions = [r["_source_position"] for r in rejects]
        assert len(positions) == len(set(positions)), f"a reject was quarantined twice after {arm}"
    # not blocked: a clean run lands what the crashed runs left and new events on top
    more, more_invalid = _payloads(EVENTS, EVENTS + 150)
    publish(url, subject, more)
    clean = _run(root, catalog_env, None, log)
    assert clean.returncode == 0, clean.stderr.decode(errors="replace")[-2000:]
    _with_env(catalog_env, assert_exactly_once, root, EVENTS + 150, invalid | more_invalid)
    _with_env(catalog_env, _assert_readable, root)

"""Enrichment lookups (`lakestack enrich`, pipeline/enrich.py) against a real vehicle-valuation API
on 127.0.0.1 (tests/rest_support.py `/vmv`): cache hits make no second call, failed keys are asked
again, the call budget and TTL, the audit table, a Gold model joining the cache, and the API key
never written anywhere."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestack.pipeline.enrich import enrich
from lakestack.pipeline.lake import Lake
from lakestack.pipeline.runs import new_run_id
from rest_support import API_KEY, Api, serve_api

ASSETS = """\
source: assets
version: 1
file: {pattern: "assets_{date:%Y%m%d}.csv", format: csv}
key: [asset_id]
event_time: seen_at
columns:
  - {name: asset_id, type: string, nullable: false}
  - {name: license_plate, type: string}
  - {name: state_code, type: string}
  - {name: seen_at, type: timestamp, nullable: false}
"""

CSV = """asset_id,license_plate,state_code,seen_at
a1,7ABC123,CA,2026-11-01T10:00:00Z
a2,8XYZ999,TX,2026-11-01T11:00:00Z
a3,7ABC123,CA,2026-11-01T12:00:00Z
a4,0NOPE00,NV,2026-11-01T13:00:00Z
a5,,CA,2026-11-01T14:00:00Z
"""

GOLD = """\
SELECT a.asset_id, a.license_plate, CAST(v.value_usd AS BIGINT) AS value_usd
FROM silver.assets AS a
LEFT JOIN _lakestack.lookup_vmv AS v ON a.license_plate = v.license_plate AND a.state_code = v.state_code
"""

VALUES = {("7ABC123", "CA"): 18500, ("8XYZ999", "TX"): 7200}


def _project(root: Path, api: Api, **lookup: Any) -> Path:
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "assets.v1.yaml").write_text(ASSETS)
    (root / "landing" / "assets").mkdir(parents=True)
    (root / "landing" / "assets" / "assets_20261101.csv").write_text(CSV)
    (root / "models" / "gold").mkdir(parents=True)
    (root / "models" / "gold" / "asset_values.sql").write_text(GOLD)
    settings = {
        "name": "vmv",
        "url": f"{api.base}/vmv",
        "keys": ["license_plate", "state_code"],
        "fields": {"value_usd": "valuation.amount"},
        "auth": {"type": "api_key", "key": {"secret": "VMV_API_KEY"}, "name": "X-API-Key"},
        "cost_per_call": 0.25,
        "rate_limit": 1000,
        "burst": 1000,
        **lookup,
    }
    config = {
        "name": "fleet",
        "environments": {
            "dev": {"warehouse": "./warehouse", "catalog": {"type": "sql", "uri": "sqlite:///.lakestack/catalog.db"}}
        },
        "sources": {"assets": {"kind": "files", "contract": "assets"}},
        "datasets": {"assets": {"layer": "silver", "source": "assets", "lookup": settings}},
    }
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    lake = Lake.open(root)
    lake.ingest()
    lake.promote()
    return root


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("VMV_API_KEY", API_KEY)
    with serve_api(Api(auth="api_key_header", valuations=dict(VALUES))) as served:
        yield served


def _rows(root: Path, table: str) -> list[dict[str, Any]]:
    lake = Lake.open(root)
    return lake.read(table).to_pylist() if lake.warehouse.exists(table) else []


def test_calls_only_uncached_keys_and_retries_failed_ones(tmp_path: Path, api: Api) -> None:
    root = _project(tmp_path / "p", api)
    first = enrich(Lake.open(root), "assets", new_run_id())
    assert (first.keys, first.fetched, first.failed, first.cached) == (3, 2, 1, 0)  # a5 has no plate: no key
    assert api.count("/vmv") == 3
    assert first.cost_units == pytest.approx(0.75)
    cache = {(r["license_plate"], r["state_code"]): r for r in _rows(root, "_lakestack.lookup_vmv")}
    assert {k: int(r["value_usd"]) for k, r in cache.items()} == VALUES  # the 404 is not cached
    assert all(r["fetched_at"] is not None and r["expires_at"] > r["fetched_at"] for r in cache.values())

    second = enrich(Lake.open(root), "assets", new_run_id())
    assert (second.cached, second.fetched, second.failed) == (2, 0, 1)
    asked = [(r["query"]["license_plate"], r["query"]["state_code"]) for r in api.requests if r["path"] == "/vmv"]
    assert asked.count(("7ABC123", "CA")) == 1 and asked.count(("0NOPE00", "NV")) == 2  # a cache hit: no 2nd call

    api.valuations[("0NOPE00", "NV")] = 3100  # the failed key is found on a later run
    third = enrich(Lake.open(root), "assets", new_run_id())
    assert (third.cached, third.fetched, third.failed) == (2, 1, 0)
    calls = _rows(root, "_lakestack.lookup_calls")
    assert len(calls) == 5
    assert sorted(c["status"] for c in calls) == [200, 200, 200, 404, 404]
    assert all(c["latency_ms"] > 0 and c["cost_units"] == 0.25 and c["lookup"] == "vmv" for c in calls)
    assert {json.loads(c["key"])["license_plate"] for c in calls} == {"7ABC123", "8XYZ999", "0NOPE00"}

    lake = Lake.open(root)
    lake.build()
    gold = {r["asset_id"]: r["value_usd"] for r in lake.read("gold.asset_values").to_pylist()}
    assert gold == {"a1": 18500, "a2": 7200, "a3": 18500, "a4": 3100, "a5": None}


def test_call_budget_stops_and_the_next_run_goes_on(tmp_path: Path, api: Api) -> None:
    root = _project(tmp_path / "p", api, max_calls=2)
    first = enrich(Lake.open(root), "assets", new_run_id())
    assert (first.calls, first.left) == (2, 1) and "budget" in (first.note or "")
    second = enrich(Lake.open(root), "assets", new_run_id())  # the failed key (0NOPE00) and the one left
    assert (second.calls, second.left, second.cached, second.fetched) == (2, 0, 1, 1)
    assert api.count("/vmv") == 4


def test_ttl_expiry_asks_again(tmp_path: Path, api: Api) -> None:
    root = _project(tmp_path / "p", api, ttl="1s")
    enrich(Lake.open(root), "assets", new_run_id())
    time.sleep(1.2)
    again = enrich(Lake.open(root), "assets", new_run_id())
    assert again.fetched == 2 and again.cached == 0
    assert len(_rows(root, "_lakestack.lookup_vmv")) == 2  # replaced, one row per key


def test_429_and_5xx_are_waited_out(tmp_path: Path, api: Api) -> None:
    root = _project(tmp_path / "p", api, retries=3)
    api.faults["/vmv"] = [(429, 1), 503]
    t0 = time.monotonic()
    report = enrich(Lake.open(root), "assets", new_run_id())
    assert time.monotonic() - t0 >= 1.0
    assert report.fetched == 2 and report.calls == 5  # 3 keys, 2 retried requests
    assert report.cost_units == pytest.approx(5 * 0.25)  # each request sent costs


def test_the_api_key_is_never_written_and_a_bad_key_is_one_line_exit_3(
    tmp_path: Path, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    root = _project(tmp_path / "p", api)
    caplog.set_level(logging.DEBUG)
    enrich(Lake.open(root), "assets", new_run_id())
    assert all(r["headers"].get("X-API-Key") == API_KEY for r in api.requests if r["path"] == "/vmv")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert API_KEY not in logged
    for table in ("_lakestack.lookup_vmv", "_lakestack.lookup_calls"):
        assert API_KEY not in json.dumps(_rows(root, table), default=str)
    for path in (root / "warehouse").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path

    before = api.count("/vmv")
    env = {**os.environ, "VMV_API_KEY": "bad-key-SECRET-0001"}
    proc = subprocess.run(
        [sys.executable, "-m", "lakestack", "--project", str(root), "enrich", "assets"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 3, proc.stderr
    assert "401" in proc.stderr and "VMV_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert "bad-key-SECRET-0001" not in proc.stderr + proc.stdout
    assert api.count("/vmv") == before + 1  # one refused call, no retry storm (the failed key only)
    refused = [c for c in _rows(root, "_lakestack.lookup_calls") if c["outcome"] == "refused"]
    assert len(refused) == 1 and "bad-key" not in (refused[0]["error"] or "")


def test_cli_json_and_unknown_dataset(tmp_path: Path, api: Api) -> None:
    root = _project(tmp_path / "p", api)
    run = [sys.executable, "-m", "lakestack", "--project", str(root), "enrich"]
    proc = subprocess.run([*run, "assets", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fetched"] == 2
    proc = subprocess.run([*run, "nope"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown silver dataset 'nope'" in proc.stderr


def test_run_enriches_between_promote_and_build(tmp_path: Path, api: Api) -> None:
    root = _project(tmp_path / "p", api)
    report = Lake.open(root).run()
    assert not report.blocked
    gold = {r["asset_id"]: r["value_usd"] for r in Lake.open(root).read("gold.asset_values").to_pylist()}
    assert gold == {"a1": 18500, "a2": 7200, "a3": 18500, "a4": None, "a5": None}
    assert api.count("/vmv") == 3
    Lake.open(root).run()  # nothing new in Silver: only the key that failed is asked again
    assert api.count("/vmv") == 4


def test_enrich_is_recorded_as_a_run_alone_and_inside_run(tmp_path: Path, api: Api) -> None:
    from lakestack.pipeline.records import read_runs

    root = _project(tmp_path / "p", api)
    with Lake.open(root) as lake:
        lake.promote()
        report = lake.enrich("assets")
    with Lake.open(root) as lake:
        rows = read_runs(lake.warehouse)
    job = next(r for r in rows if r["job"] == "enrich.assets")
    top = next(r for r in rows if r["run_id"] == job["parent_run_id"])
    assert (top["job"], top["job_type"], top["status"]) == ("enrich", "run", "COMPLETE")
    assert (job["job_type"], job["status"], job["lake_run_id"]) == ("enrich", "COMPLETE", report.run_id)
    figures = json.loads(job["progress"])
    assert (figures["keys"], figures["fetched"], figures["failed"], figures["calls"]) == (3, 2, 1, 3)
    with Lake.open(root) as lake:  # inside `run`: a job of the run, between promote and build
        run_report = lake.run()
    with Lake.open(root) as lake:
        rows = read_runs(lake.warehouse)
    inside = next(r for r in rows if r["job"] == "enrich.assets" and r["run_id"] != job["run_id"])
    parent = next(r for r in rows if r["run_id"] == inside["parent_run_id"])
    assert (inside["status"], parent["job"], parent["lake_run_id"]) == ("COMPLETE", "run", run_report.run_id)
    assert json.loads(inside["progress"])["cached"] == 2  # only the key that failed is asked again


def test_calls_are_audited_and_cached_in_batches(tmp_path: Path, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakestack.pipeline import enrich as module

    monkeypatch.setattr(module, "COMMIT_CALLS", 1)  # a commit after every call: a crash loses at most one
    root = _project(tmp_path / "p", api)
    report = enrich(Lake.open(root), "assets", new_run_id())
    assert (report.fetched, report.failed, report.calls) == (2, 1, 3)
    lake = Lake.open(root)
    assert len(_rows(root, "_lakestack.lookup_calls")) == 3
    assert len(_rows(root, "_lakestack.lookup_vmv")) == 2
    assert len(list(lake.warehouse.load("_lakestack.lookup_calls").snapshots())) == 3

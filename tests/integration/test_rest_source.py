"""The REST pull source against a real HTTP API on 127.0.0.1 (tests/rest_support.py): each
pagination and auth style, 429/Retry-After, 5xx retries, the request budget, the incremental cursor,
bad pages, credentials never shown, and a kill -9 mid-pull that resumes exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lakestack.errors import RunError
from lakestack.pipeline.lake import Lake
from rest_support import API_KEY, CLIENT_ID, CLIENT_SECRET, TOKEN, Api, rest_project, serve_api

FAST = {"rate_limit": 1000, "burst": 1000, "backoff_seconds": 0.01, "max_backoff_seconds": 0.05}

RESOURCES: dict[str, dict[str, Any]] = {
    "cursor": {
        "path": "/cursor/items",
        "data_selector": "data.items",
        "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
    },
    "page": {
        "path": "/page/items",
        "data_selector": "items",
        "paginator": {"type": "page_number", "page_param": "page"},
    },
    "offset": {
        "path": "/offset/items",
        "data_selector": "items",
        "paginator": {"type": "offset", "limit": 10, "total_path": "total"},
    },
    "link": {"path": "/link/items", "paginator": {"type": "header_link"}},
    "json": {
        "path": "/json/items",
        "data_selector": "results",
        "paginator": {"type": "json_link", "next_url_path": "next"},
    },
}


def _project(tmp_path: Path, api: Api, style: str = "cursor", **rest: Any) -> Path:
    resource = dict(RESOURCES[style])
    resource.update(rest.pop("resource", {}))
    return rest_project(tmp_path / "p", {"base_url": api.base, "resources": {style: resource}, **FAST, **rest})


def _ids(root: Path) -> list[str]:
    lake = Lake.open(root)
    if not lake.warehouse.exists("bronze.items"):
        return []
    return sorted(lake.read("bronze.items", columns=["id"]).column("id").to_pylist())


def _all(n: int) -> list[str]:
    return sorted(f"i{i}" for i in range(n))


@pytest.mark.parametrize("style", sorted(RESOURCES))
def test_each_pagination_style_lands_every_record_once(tmp_path: Path, style: str) -> None:
    with serve_api(Api(total=35)) as api:
        root = _project(tmp_path, api, style)
        report = Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(35)
        assert report.sources[0].landed == 35
        pages = api.count(RESOURCES[style]["path"])
        assert pages in (4, 5), pages  # 4 pages of 10; page and offset paging stop at an empty page
        again = Lake.open(root).ingest(["items"])  # a finished pull without an incremental cursor re-reads
        assert again.sources[0].landed == 35


@pytest.mark.parametrize(
    ("mode", "auth", "env"),
    [
        (
            "api_key_header",
            {"type": "api_key", "key": {"secret": "T_API_KEY"}, "name": "X-API-Key"},
            {"T_API_KEY": API_KEY},
        ),
        (
            "api_key_query",
            {"type": "api_key", "key": {"secret": "T_API_KEY"}, "name": "api_key", "location": "query"},
            {"T_API_KEY": API_KEY},
        ),
        ("bearer", {"type": "bearer", "token": {"secret": "T_TOKEN"}}, {"T_TOKEN": TOKEN}),
    ],
)
def test_auth_styles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, auth: dict[str, Any], env: dict[str, str]
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with serve_api(Api(total=15, auth=mode)) as api:
        root = _project(tmp_path, api, "cursor", auth=auth)
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(15)
        lake = Lake.open(root)
        positions = lake.read("bronze.items", columns=["_source_position"]).column("_source_position").to_pylist()
        assert all(API_KEY not in p and TOKEN not in p for p in positions)
        assert all("cursor page" in p for p in positions), positions[:2]


def test_oauth2_client_credentials_refresh_on_expiry_and_401(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_CLIENT_SECRET", CLIENT_SECRET)
    with serve_api(Api(total=35, auth="oauth2", token_ttl=0)) as api:
        auth = {
            "type": "oauth2",
            "token_url": f"{api.base}/token",
            "client_id": CLIENT_ID,
            "client_secret": {"secret": "T_CLIENT_SECRET"},
        }
        root = _project(tmp_path, api, "cursor", auth=auth)
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(35)
        assert api.tokens_issued >= 4  # expires_in 0: a fresh token for every page
    with serve_api(Api(total=35, auth="oauth2", faults={"/cursor/items": [None, 401]})) as api:
        auth["token_url"] = f"{api.base}/token"
        root = _project(tmp_path / "again", api, "cursor", auth=auth)
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(35)
        assert api.tokens_issued == 2  # the 401 on page 2: one fresh token, then on
        assert all(CLIENT_SECRET not in json.dumps(r["query"]) for r in api.requests)


def test_401_fails_once_with_one_line_and_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_API_KEY", "wrong-key-SECRET-zz")
    with serve_api(Api(total=15, auth="api_key_header")) as api:
        root = _project(tmp_path, api, "cursor", auth={"type": "api_key", "key": {"secret": "T_API_KEY"}})
        proc = subprocess.run(
            [sys.executable, "-m", "lakestack", "--project", str(root), "ingest", "items"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "T_API_KEY": "wrong-key-SECRET-zz"},
        )
        assert proc.returncode == 3, proc.stderr
        assert "401" in proc.stderr and "T_API_KEY" in proc.stderr
        assert "Traceback" not in proc.stderr and "wrong-key-SECRET-zz" not in proc.stderr + proc.stdout
        assert api.count("/cursor/items") == 1  # no retry storm


def test_429_retry_after_and_5xx_are_retried(tmp_path: Path) -> None:
    with serve_api(Api(total=25, faults={"/cursor/items": [(429, 1), 503, 500, 502]})) as api:
        root = _project(tmp_path, api, "cursor")
        import time

        t0 = time.monotonic()
        Lake.open(root).ingest(["items"])
        assert time.monotonic() - t0 >= 1.0  # the Retry-After was honoured
        assert _ids(root) == _all(25)
        assert api.count("/cursor/items") == 3 + 4


def test_5xx_beyond_retries_keeps_committed_pages_and_resumes(tmp_path: Path) -> None:
    with serve_api(Api(total=35, faults={"/cursor/items": [None, 503, 503, 503]})) as api:
        root = _project(tmp_path, api, "cursor", retries=2, commit_pages=1)
        with pytest.raises(RunError, match=r"failed 3 times .*503.*the next run resumes"):
            Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(10)  # page 1 was committed before the API went down
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(35)


def test_budget_stops_cleanly_and_the_next_run_resumes(tmp_path: Path) -> None:
    with serve_api(Api(total=55)) as api:
        root = _project(tmp_path, api, "cursor", max_requests=2, commit_pages=10)
        first = Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(20)
        assert "budget" in (first.sources[0].files[0].reason or "")
        Lake.open(root).ingest(["items"])
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(55)
        assert api.count("/cursor/items") == 6


def test_incremental_cursor_asks_only_for_newer_records(tmp_path: Path) -> None:
    incremental = {"cursor_path": "updated_at", "start_param": "updated_after", "initial_value": "2000-01-01T00:00:00Z"}
    with serve_api(Api(total=25)) as api:
        root = _project(tmp_path, api, "cursor", resource={"incremental": incremental})
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(25)
        first = api.requests[0]["query"]
        assert first["updated_after"] == "2000-01-01T00:00:00Z"
        api.total = 32
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(32)  # the 7 new ones, none twice
        last = [r for r in api.requests if r["path"] == "/cursor/items"][-1]["query"]
        assert last["updated_after"] == "2026-11-02T00:00:00Z"  # i24's updated_at, the newest of run 1


def test_records_breaking_the_contract_are_quarantined_with_their_page(tmp_path: Path) -> None:
    with serve_api(Api(total=25, bad_ids={3, 17})) as api:
        root = _project(tmp_path, api, "json")
        report = Lake.open(root).ingest(["items"])
        assert report.sources[0].quarantined == 2
        rows = Lake.open(root).read("quarantine.items").to_pylist()
        assert sorted(json.loads(r["_raw"])["id"] for r in rows) == ["i17", "i3"]
        assert any("json page 2" in r["_source_position"] and "#7" in r["_source_position"] for r in rows)
        assert _ids(root) == sorted(set(_all(25)) - {"i3", "i17"})


def test_truncated_page_is_a_clear_error_and_nothing_committed_is_lost(tmp_path: Path) -> None:
    with serve_api(Api(total=35, faults={"/cursor/items": [None, "garbage"]})) as api:
        root = _project(tmp_path, api, "cursor", commit_pages=1)
        with pytest.raises(RunError, match=r"is not JSON .*truncated"):
            Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(10)
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(35)


def test_a_repeating_cursor_is_endless_pagination(tmp_path: Path) -> None:
    with serve_api(Api(total=35, repeat_cursor=True)) as api:
        root = _project(tmp_path, api, "cursor")
        for _ in range(2):
            with pytest.raises(RunError, match="endless pagination"):
                Lake.open(root).ingest(["items"])
        # page 1 (cursor 0 → 5) lands once; page 2 (cursor 5 → 5 again) is never committed
        assert _ids(root) == _all(10)
        assert api.count("/cursor/items") == 2 + 1  # the second run resumes at cursor 5


def test_a_changed_body_shape_names_the_missing_key(tmp_path: Path) -> None:
    with serve_api(Api(total=5)) as api:
        root = _project(tmp_path, api, "json", resource={"data_selector": "data.rows"})
        with pytest.raises(RunError, match=r"has no 'data' .*keys: next, results.*did the API change"):
            Lake.open(root).ingest(["items"])


KILL = """
import sys
from lakestack.pipeline.lake import Lake
Lake.open(sys.argv[1]).ingest(["items"])
"""


def test_kill_9_mid_pull_resumes_exactly_once(tmp_path: Path) -> None:
    with serve_api(Api(total=55)) as api:
        root = _project(tmp_path, api, "cursor", commit_pages=2)
        env = {**os.environ, "LAKESTACK_FAILPOINTS": "storage.append.after_write=kill@2"}  # the 2nd commit: pages 3-4
        proc = subprocess.run([sys.executable, "-c", KILL, str(root)], env=env, capture_output=True, timeout=120)
        assert proc.returncode == -9, proc.stderr
        assert _ids(root) == _all(20)  # pages 1-2 committed; 3-4 fetched, written, never committed
        Lake.open(root).ingest(["items"])
        ids = Lake.open(root).read("bronze.items", columns=["id"]).column("id").to_pylist()
        assert sorted(ids) == _all(55)  # exactly once: no id twice, none missing
        assert api.count("/cursor/items") == 4 + 4  # pages 3 and 4 were fetched again


def test_secrets_never_reach_logs_tables_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    monkeypatch.setenv("T_API_KEY", API_KEY)
    auth = {"type": "api_key", "key": {"secret": "T_API_KEY"}, "name": "api_key", "location": "query"}
    faults = {"/cursor/items": [None, (429, 0), 503, "garbage"]}
    with serve_api(Api(total=35, auth="api_key_query", faults=faults, bad_ids={2})) as api:
        root = _project(tmp_path, api, "cursor", auth=auth, commit_pages=1)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(RunError) as failed:
            Lake.open(root).ingest(["items"])
        Lake.open(root).ingest(["items"])
        assert any(r["query"].get("api_key") == API_KEY for r in api.requests)  # it was sent
    assert _ids(root) == sorted(set(_all(35)) - {"i2"})
    assert API_KEY not in str(failed.value)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in logged and API_KEY not in logged  # httpx's request lines, redacted
    lake = Lake.open(root)
    for table in lake.warehouse.tables():
        text = json.dumps(lake.read(table).to_pylist(), default=str)
        assert API_KEY not in text, table
    for path in (root / "warehouse").rglob("*.json"):
        assert API_KEY not in path.read_text(errors="replace"), path


def test_a_field_the_api_added_quarantines_those_records_naming_it(tmp_path: Path) -> None:
    with serve_api(Api(total=25, new_field_from=20)) as api:
        root = _project(tmp_path, api, "cursor")
        report = Lake.open(root).ingest(["items"])
        assert (report.sources[0].landed, report.sources[0].quarantined) == (20, 5)
        reasons = {r["_reason"] for r in Lake.open(root).read("quarantine.items").to_pylist()}
        assert len(reasons) == 1 and "currency" in reasons.pop()


def test_an_html_page_and_an_offsite_next_link_are_refused(tmp_path: Path) -> None:
    with serve_api(Api(total=25, faults={"/json/items": ["html"]})) as api:
        root = _project(tmp_path, api, "json")
        with pytest.raises(RunError, match=r"page .*/json/items is not JSON .*text/html"):
            Lake.open(root).ingest(["items"])
        api.faults["/json/items"] = ["offsite"]
        with pytest.raises(RunError, match=r"another host \(http://203\.0\.113\.9\)"):
            Lake.open(root).ingest(["items"])
        Lake.open(root).ingest(["items"])  # the page that pointed away was not committed: asked again
        assert _ids(root) == _all(25)


def test_a_page_larger_than_max_response_mb_is_refused_before_it_is_held(tmp_path: Path) -> None:
    """A declared 3 MiB page and a 40 KiB gzip body that decodes to 40 MiB, with a 2 MiB bound: each
    ends the run with one line naming the page and the setting; what was committed stays, and the
    next run (the API well again) lands every record once."""
    with serve_api(Api(total=25, faults={"/json/items": [None, "huge"]})) as api:
        root = _project(tmp_path, api, "json", max_response_mb=2, commit_pages=1)
        with pytest.raises(RunError, match=r"GET .*/json/items.* is larger than max_response_mb \(2 MiB; it declares"):
            Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(10)
        api.faults["/json/items"] = ["bomb"]
        with pytest.raises(RunError, match=r"larger than max_response_mb \(2 MiB; more than 2,097,152 bytes were read"):
            Lake.open(root).ingest(["items"])
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(25)


def test_429s_are_waited_out_without_spending_the_retries(tmp_path: Path) -> None:
    with serve_api(Api(total=15, faults={"/cursor/items": [(429, 0)] * 6})) as api:
        root = _project(tmp_path, api, "cursor", retries=1)
        Lake.open(root).ingest(["items"])
        assert _ids(root) == _all(15)
        assert api.count("/cursor/items") == 6 + 2


def test_quarantined_records_replay_from_their_raw_bytes_without_calling_the_api(tmp_path: Path) -> None:
    from lake_support import cli
    from rest_support import ITEMS_CONTRACT

    with serve_api(Api(total=25, bad_ids={3, 17})) as api:
        root = _project(tmp_path, api, "cursor")
        Lake.open(root).ingest(["items"])
        calls = len(api.requests)
    loosened = {**ITEMS_CONTRACT, "properties": {**ITEMS_CONTRACT["properties"]}}
    loosened["properties"]["amount"] = {"type": "integer", "minimum": -10}
    (root / "contracts" / "items.v2.json").write_text(json.dumps(loosened))
    done = cli(root, "quarantine", "replay", "items", "--json")  # the API server is gone
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["rows_in"], result["replayed"], result["still_failing"]) == (2, 2, 0)
    assert _ids(root) == _all(25) and calls == len(api.requests)


def test_status_and_checkpoints_show_the_api_and_the_cursor(tmp_path: Path) -> None:
    from lake_support import cli

    with serve_api(Api(total=35)) as api:
        root = _project(tmp_path, api, "cursor", commit_pages=2)
        Lake.open(root).ingest(["items"])
    (status,) = Lake.open(root).status()
    assert (status.kind, status.landing, status.bronze_rows) == ("rest", api.base, 35)
    from lakestack.storage.readpath import CheckpointView

    lake = Lake.open(root)  # status reads the cursor from the metadata file, as the catalog has it
    pointers = lake.read_path.pointers() if lake.read_path is not None else None
    assert pointers is not None
    through_view = lake.source("items").pending(CheckpointView(pointers))
    assert through_view == lake.source("items").pending(lake.warehouse) == ([], status.ingested_files)
    assert status.ingested_files > 0
    done = cli(root, "checkpoints", "items", "--json")
    assert done.returncode == 0, done.stderr
    assert '"rest:cursor"' in done.stdout and '"finished": true' in done.stdout


def test_the_rate_limit_spaces_requests(tmp_path: Path) -> None:
    import itertools
    import time

    with serve_api(Api(total=35)) as api:
        root = _project(tmp_path, api, "cursor", rate_limit=10, burst=1)
        lake = Lake.open(root)
        assert lake.warehouse is not None  # the catalog opened before the clock starts
        t0 = time.monotonic()
        lake.ingest(["items"])
        assert time.monotonic() - t0 >= 0.3  # 4 pages at 10/s after a burst of 1: 3 waits of 0.1 s
        stamps = [r["at"] for r in api.requests]
        # stamped by the server on arrival: a loaded host delays one request's handling more than the
        # next's, so a single gap may shrink by that jitter; unlimited, the gaps are a few milliseconds
        assert stamps[-1] - stamps[0] >= 0.09 * (len(stamps) - 1)
        assert all(b - a >= 0.05 for a, b in itertools.pairwise(stamps)), stamps


def test_keep_pages_stores_each_page_body_once(tmp_path: Path) -> None:
    with serve_api(Api(total=35)) as api:
        root = _project(tmp_path, api, "json", keep_pages=True, commit_pages=3)
        Lake.open(root).ingest(["items"])
    pages = Lake.open(root).read("_lakestack.pages_items").to_pylist()
    assert [p["seq"] for p in sorted(pages, key=lambda p: p["seq"])] == [1, 2, 3, 4]
    records = [r for p in pages for r in json.loads(p["body"])["results"]]
    assert sorted(r["id"] for r in records) == _all(35)  # the whole answer, to parse again
    assert all(p["status"] == 200 and p["content_type"] == "application/json" for p in pages)


def test_two_resources_share_the_budget_and_keep_their_own_cursors(tmp_path: Path) -> None:
    with serve_api(Api(total=25)) as api:
        rest = {"base_url": api.base, "resources": {"cursor": RESOURCES["cursor"], "link": RESOURCES["link"]}}
        root = rest_project(tmp_path / "p", {**rest, **FAST, "max_requests": 4, "commit_pages": 1})
        first = Lake.open(root).ingest(["items"])
        assert [f.name for f in first.sources[0].files] == ["cursor", "link"]
        assert first.sources[0].landed == 25 + 10  # cursor: 3 pages; link: the 4th request, then spent
        assert "budget (4) spent" in (first.sources[0].files[1].reason or "")
        second = Lake.open(root).ingest(["items"])
        assert second.sources[0].landed == 25 + 10  # cursor starts over (finished, not incremental); link goes on
        link = [r for r in api.requests if r["path"] == "/link/items"]
        assert [r["query"].get("start") for r in link] == [None, "10"]
        ids = Lake.open(root).read("bronze.items", columns=["id"]).column("id").to_pylist()
        assert len(ids) == 70 and set(ids) == set(_all(25))

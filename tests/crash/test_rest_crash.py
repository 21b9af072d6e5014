"""A REST pull killed (SIGKILL) at each of its failpoints, twice, then run clean: every record the
API serves is in Bronze exactly once and quarantine holds each bad record exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakestack import failpoints
from lakestack.pipeline.lake import Lake
from rest_support import Api, rest_project, serve_api

pytestmark = [pytest.mark.crash, pytest.mark.integration]

RUN = "import sys\nfrom lakestack.pipeline.lake import Lake\nLake.open(sys.argv[1]).ingest(['items'])\n"
BAD = {3, 27, 41}  # on pages 1, 3 and 5


@pytest.mark.parametrize(
    "arm",
    [
        "rest.after_fetch=kill@3",  # pages 1-2 committed, page 3 fetched
        "rest.after_quarantine_commit=kill",  # a batch's rejects committed, its Bronze part not
        "rest.after_bronze_commit=kill",
        "storage.append.after_write=kill@3",  # Bronze's data files written, its catalog commit not
        "storage.append.after_commit=kill@2",
    ],
)
def test_rest_pull_killed_at_a_failpoint_lands_every_record_once(tmp_path: Path, arm: str) -> None:
    with serve_api(Api(total=55, bad_ids=set(BAD))) as api:
        rest = {
            "base_url": api.base,
            "rate_limit": 1000,
            "burst": 1000,
            "commit_pages": 2,
            "keep_pages": True,
            "resources": {
                "cursor": {
                    "path": "/cursor/items",
                    "data_selector": "data.items",
                    "paginator": {"type": "cursor", "cursor_path": "next_cursor"},
                    # a finished pull asks only for newer records: the clean run after a kill that
                    # hit the last commit reads nothing again
                    "incremental": {"cursor_path": "updated_at", "start_param": "updated_after"},
                }
            },
        }
        root = rest_project(tmp_path / "p", rest)
        log = tmp_path / "hits.log"
        env = {**os.environ, "LAKESTACK_FAILPOINTS": arm, "LAKESTACK_FAILPOINTS_LOG": str(log)}
        for _ in range(2):  # killed twice at the same point (the second run resumes, then dies again)
            proc = subprocess.run([sys.executable, "-c", RUN, str(root)], env=env, capture_output=True, timeout=120)
            assert proc.returncode == -9, proc.stderr.decode()[-2000:]
        assert failpoints.hits(str(log)) == [arm.split("=")[0]] * 2
        clean = subprocess.run([sys.executable, "-c", RUN, str(root)], capture_output=True, timeout=120)
        assert clean.returncode == 0, clean.stderr.decode()[-2000:]
    lake = Lake.open(root)
    ids = lake.read("bronze.items", columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == sorted(f"i{i}" for i in range(55) if i not in BAD)  # each once
    bad = [json.loads(r)["id"] for r in lake.read("quarantine.items", columns=["_raw"]).column("_raw").to_pylist()]
    assert sorted(bad) == sorted(f"i{i}" for i in BAD)  # each once
    seqs = sorted(lake.read("_lakestack.pages_items", columns=["seq"]).column("seq").to_pylist())
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 6  # every page kept once

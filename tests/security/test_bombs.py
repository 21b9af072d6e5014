"""Compressed bombs and endless lines in landing files: each is quarantined whole (scope `file`) with
the cap it broke and where, in bounded memory, and the run goes on with the other files (exit 0,
counts reconcile). Bombs are generated small: one gzip member of 64 MiB repeated (a gzip file may
hold many members), so a 2 MB file inflates to 2 GiB in well under a second of the test's time."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ORDERS_HEADER, PROJECT_FILE
from lakestack import Lake
from security_support import run_capped

Land = Callable[[str, str, "str | bytes"], Path]
MEMBER = 64 << 20
MEMORY_MB = 1024  # address space of the whole CLI; the old reader needed 5 GB for the first bomb
GOOD_CLICK = {"event_id": "abc", "ts": "2026-01-01T00:00:00Z", "kind": "view"}
GOOD_ORDER = "ORD-0001,2,9.99,USD,2026-01-01 10:00:00,ada@example.com\n"


@cache
def _member(content: bytes) -> bytes:
    """One gzip member inflating to MEMBER bytes of `content` repeated."""
    return gzip.compress(content * (MEMBER // len(content)), 9)


def _bomb(head: bytes, content: bytes, members: int) -> bytes:
    return gzip.compress(head) + _member(content) * members


def _ingest(project: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    out = run_capped("ingest", "--json", cwd=project, memory_mb=MEMORY_MB, timeout=240, env=env)
    assert out.code == 0, out.output
    report = json.loads(out.stdout)
    assert report["rows_in"] == report["landed"] + report["quarantined"]
    return {f["name"]: f for s in report["sources"] for f in s["files"]}


def _quarantined_file(project: Path, source: str, name: str) -> dict[str, object]:
    rows = [r for r in Lake.open(project).read(f"quarantine.{source}").to_pylist() if r["_source_file"] == name]
    assert len(rows) == 1 and rows[0]["_scope"] == "file" and rows[0]["_raw"] is None
    return rows[0]


def _good_click(land: Land) -> None:
    land("clicks", "clicks_20260201.ndjson", json.dumps(GOOD_CLICK) + "\n")


def test_one_2_gib_line_in_a_2_mb_gzip_is_quarantined_not_a_failed_run(project: Path, land: Land) -> None:
    bomb = _bomb(b'{"event_id": "', b"a", 32)
    assert len(bomb) < 3_000_000
    land("clicks", "clicks_20260101.ndjson.gz", bomb)
    _good_click(land)
    files = _ingest(project)
    bad = files["clicks_20260101.ndjson.gz"]
    assert bad["status"] == "rejected" and bad["line"] == 1
    assert "line 1 is longer than max_line_bytes (67,108,864)" in str(bad["reason"])
    assert files["clicks_20260201.ndjson"]["landed"] == 1
    row = _quarantined_file(project, "clicks", "clicks_20260101.ndjson.gz")
    assert row["_source_line"] == 1 and "max_line_bytes" in str(row["_reason"])


@pytest.mark.parametrize(
    ("env", "cap", "stops_at"),
    [
        ({}, "more than max_decompressed_bytes (536,870,912)", lambda bomb: 512 << 20),
        ({"LAKESTACK_MAX_DECOMPRESSED_BYTES": str(8 << 30)}, "more than max_ratio (100) times", lambda b: 100 * b),
    ],
)
def test_2_gib_of_valid_rows_in_a_small_gzip_is_refused_before_parsing(
    project: Path, land: Land, env: dict[str, str], cap: str, stops_at: Callable[[int], int]
) -> None:
    rows = (json.dumps(GOOD_CLICK) + "\n").encode()
    bomb = _bomb(b"", rows, 32)
    land("clicks", "clicks_20260101.ndjson.gz", bomb)
    _good_click(land)
    files = _ingest(project, env)
    bad = files["clicks_20260101.ndjson.gz"]
    assert bad["status"] == "rejected"
    reason = str(bad["reason"])
    assert cap in reason, reason
    # reading stopped just past the cap, on the line that byte is in
    stopped = re.search(r"reading stopped at byte ([\d,]+), line ([\d,]+)", reason)
    assert stopped is not None, reason
    at, line = (int(g.replace(",", "")) for g in stopped.groups())
    assert stops_at(len(bomb)) < at <= stops_at(len(bomb)) + (1 << 20)
    assert line == bad["line"] == at // len(rows) + 1
    assert files["clicks_20260201.ndjson"]["landed"] == 1


@pytest.mark.parametrize(
    ("source", "name", "head"),
    [("clicks", "clicks_20260101.ndjson.gz", b""), ("orders", "orders_20260101.csv.gz", ORDERS_HEADER.encode())],
)
def test_a_small_gzip_of_blank_lines_is_refused_fast(
    project: Path, land: Land, source: str, name: str, head: bytes
) -> None:
    bomb = _bomb(head, b"\n", 3)
    assert len(bomb) < 250_000
    land(source, name, bomb)
    _good_click(land)
    files = _ingest(project)
    assert files[name]["status"] == "rejected" and "max_ratio" in str(files[name]["reason"])
    assert files["clicks_20260201.ndjson"]["landed"] == 1


@pytest.mark.parametrize(
    ("source", "name", "head", "record"),
    [
        ("clicks", "clicks_20260101.ndjson.gz", b"", json.dumps(GOOD_CLICK).encode() + b"\n"),
        ("orders", "orders_20260101.csv.gz", ORDERS_HEADER.encode(), GOOD_ORDER.encode()),
    ],
)
def test_blank_lines_under_the_caps_cost_no_memory(
    project: Path, land: Land, source: str, name: str, head: bytes, record: bytes
) -> None:
    # 15 M blank lines (under the 16 MiB ratio floor), then one record: it lands at its exact line
    blanks = 15_000_000
    land(source, name, gzip.compress(head + b"\n" * blanks + record, 9))
    files = _ingest(project)
    assert (files[name]["status"], files[name]["rows_in"], files[name]["landed"]) == ("landed", 1, 1)
    line = Lake.open(project).read(f"bronze.{source}").column("_source_line").to_pylist()
    assert line == [blanks + (2 if head else 1)]


def _with_limits(project: Path, source: str, limits: str) -> None:
    text = PROJECT_FILE.replace(f"contract: {source}}}", f"contract: {source}, limits: {limits}}}")
    assert text != PROJECT_FILE
    (project / "lakestack.yaml").write_text(text)


def test_limits_per_source_in_the_project_file(project: Path, land: Land) -> None:
    _with_limits(project, "orders", "{max_line_bytes: 1000}")
    long_row = GOOD_ORDER.replace("ada@example.com", "a" * 2000)
    land("orders", "orders_20260101.csv", ORDERS_HEADER + GOOD_ORDER + long_row)
    land("orders", "orders_20260102.csv", ORDERS_HEADER + GOOD_ORDER)
    land("clicks", "clicks_20260101.ndjson", json.dumps({**GOOD_CLICK, "event_id": "e" * 2000}) + "\n")
    files = _ingest(project)
    assert files["orders_20260101.csv"]["status"] == "rejected" and files["orders_20260101.csv"]["line"] == 3
    assert "line 3 is longer than max_line_bytes (1,000)" in str(files["orders_20260101.csv"]["reason"])
    assert files["orders_20260102.csv"]["landed"] == 1
    assert files["clicks_20260101.ndjson"]["landed"] == 1  # the other source keeps the default


def test_limits_from_the_environment_and_a_bad_value(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", ORDERS_HEADER + GOOD_ORDER * 100)
    files = _ingest(project, env={"LAKESTACK_MAX_DECOMPRESSED_BYTES": "1000"})
    assert files["orders_20260101.csv"]["status"] == "rejected"
    size = len(ORDERS_HEADER) + len(GOOD_ORDER) * 100
    assert f"the file is {size:,} bytes, over max_decompressed_bytes (1,000)" in str(
        files["orders_20260101.csv"]["reason"]
    )
    out = run_capped("ingest", cwd=project, env={"LAKESTACK_MAX_RATIO": "lots"}, timeout=120)
    assert out.code == 2 and "LAKESTACK_MAX_RATIO='lots' is not a number" in out.output


def test_parquet_row_groups_are_held_to_the_caps(project: Path, land: Land) -> None:
    clicks = "clicks: {kind: files, landing: landing/clicks, contract: clicks}"
    assert clicks in PROJECT_FILE
    limited = (
        "clicks: {kind: files, landing: landing/clicks, contract: clicks, pattern: 'clicks_*.parquet', "
        "format: parquet, limits: {max_decompressed_bytes: 100000}}"
    )
    (project / "lakestack.yaml").write_text(PROJECT_FILE.replace(clicks, limited))
    n = 20_000
    table = pa.table({"event_id": ["e" * 50] * n, "ts": ["2026-01-01T00:00:00Z"] * n, "kind": ["view"] * n})
    pq.write_table(table, project / "landing" / "clicks" / "clicks_1.parquet", use_dictionary=False)
    files = _ingest(project)
    assert files["clicks_1.parquet"]["status"] == "rejected"
    assert "over max_decompressed_bytes (100,000)" in str(files["clicks_1.parquet"]["reason"])

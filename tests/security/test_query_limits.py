"""`lakestack query` keeps memory bounded by the batch, not the result: results stream in record
batches, stop at `--max-rows` / `--max-bytes` with a notice (stderr, and fields in `--json`), and
the `--timeout` covers writing the result too. Each case runs the real CLI in a child process
under an address-space cap far below what materialising its result would need.

Before streaming, `query "SELECT * FROM range(100000000)" -f json` was killed at 6 GB, and a
3M-row x 1 KB result written to Parquet peaked at 3.1 GB RSS (10M rows to JSON: 3.3 GB)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from security_support import lake_fingerprint, run_capped

# pyarrow's default pool (mimalloc) reserves ~1 GiB of address space at its first compute call, and
# RLIMIT_AS counts reservations: the system allocator makes the cap measure what is really used.
ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system", "COLUMNS": "1000"}
CAP_MB = 1536  # a process with Python, pyiceberg, Arrow and DuckDB's 2 threads runs in ~1.1 GB of address space
WIDE = "SELECT i, repeat('x', 1000) AS pad FROM range({n}) t(i)"  # ~1 KB of Arrow data per row


def query(project: Path, *args: str, cap: int = CAP_MB, timeout: float = 180) -> tuple[int, str, str]:
    out = run_capped("-p", str(project), "query", *args, memory_mb=cap, env=ENV, timeout=timeout)
    return out.code, out.stdout, " ".join(out.stderr.split())


def test_a_hundred_million_rows_as_json_stop_at_the_default_limit(project: Path) -> None:
    code, out, err = query(project, "SELECT * FROM range(100000000)", "-f", "json")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 100_000 and json.loads(lines[-1]) == {"range": 99_999}
    assert "result truncated at 100,000 rows (--max-rows 100,000); raise it with --max-rows N" in err


def test_a_result_twice_the_cap_streams_to_parquet(project: Path, tmp_path: Path) -> None:
    """3,000,000 rows of ~1 KB: 3 GB as one Arrow table, written under a 1.5 GB address-space cap."""
    import pyarrow.parquet as pq

    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "wide.parquet"
    sql = WIDE.format(n=3_000_000)
    code, out, err = query(
        project, sql, "-f", "parquet", "-o", str(target), "--max-rows", "0", "--max-bytes", "0", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows"] == 3_000_000 and summary["truncated"] is False and summary["output"] == str(target)
    meta = pq.ParquetFile(target).metadata
    assert meta.num_rows == 3_000_000 and meta.num_row_groups > 1  # written as it streamed, a row group at a time
    assert [p.name for p in target.parent.iterdir()] == ["wide.parquet"]  # no partial file left beside it


def test_max_bytes_stops_a_wide_result_and_says_so(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "wide.json"
    code, out, err = query(
        project, WIDE.format(n=1_000_000), "-f", "json", "-o", str(target), "--max-bytes", "8MB", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["truncated"] is True and summary["limit"] == "max_bytes" and summary["limit_value"] == 8 * 2**20
    rows = summary["rows"]
    assert 4_000 < rows < 8 * 2**20 / 1000 and rows == summary["truncated_at"]
    assert len(target.read_text().splitlines()) == rows
    assert f"result truncated at {rows:,} rows: its data reached --max-bytes 8,388,608" in err


def test_max_rows_can_be_raised_and_lowered(project: Path) -> None:
    code, out, err = query(project, "SELECT * FROM range(250000)", "-f", "csv", "--max-rows", "250000")
    assert code == 0 and not err, err
    assert out.splitlines()[0] == '"range"' and len(out.splitlines()) == 250_001
    code, out, err = query(project, "SELECT * FROM range(10) t(n)", "--json", "--max-rows", "4")
    assert code == 0
    document = json.loads(out)
    assert document["rows"] == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}] and document["columns"] == ["n"]
    assert document["truncated"] is True and document["truncated_at"] == 4 and document["limit"] == "max_rows"
    assert "result truncated at 4 rows (--max-rows 4)" in err


def test_the_table_view_counts_up_to_the_limit_but_keeps_only_what_it_shows(project: Path) -> None:
    code, out, err = query(project, "SELECT * FROM range(100000000) t(n)", "--limit", "3")
    assert code == 0, err
    assert out.startswith("first 3 of 100,000 rows (truncated)\n") and "99999" not in out
    assert "result truncated at 100,000 rows" in err


def test_the_timeout_covers_writing_the_result(project: Path, tmp_path: Path) -> None:
    """DuckDB produces range() at once; turning 50M rows into JSON takes far longer than 3 s."""
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "slow.json"
    code, out, err = query(
        project, "SELECT * FROM range(50000000)", "-f", "json", "-o", str(target), "--max-rows", "0", "--timeout", "3"
    )
    assert code == 2, (out, err)
    assert "error: the query ran longer than 3 s (writing its result included) and was stopped" in err
    assert not list(target.parent.iterdir())  # neither the file nor its partial


def test_the_timeout_interrupts_a_long_query(project: Path) -> None:
    code, _, err = query(project, "SELECT count(*) FROM range(1000000000000) a", "--timeout", "2")
    assert code == 2 and "error: the query ran longer than 2 s and was stopped" in err, err


def test_a_sort_larger_than_memory_is_a_clear_error(project: Path) -> None:
    """ORDER BY needs the whole 2 GB result inside DuckDB: under the cap that is an out-of-memory
    error naming the limit, exit 2, not a killed process."""
    code, _, err = query(project, WIDE.format(n=2_000_000) + " ORDER BY random()", "-f", "json", "--max-rows", "1")
    assert code == 2, err
    assert "error: the query needs more than its memory limit (1GB)" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-f", "csv", "-o", "{tmp}/missing/out.csv"],
            "--output {tmp}/missing/out.csv: the folder {tmp}/missing does not exist",
        ),
        (["-f", "json", "-o", "{tmp}"], "--output {tmp} is a directory; give a file name"),
        (["-f", "parquet", "-o", "/proc/out.parquet"], "--output /proc/out.parquet: cannot write"),
        (["-f", "json", "-o", "/proc/self/status"], "--output /proc/self/status: no permission to write there"),
        (["-f", "parquet"], "--format parquet needs --output FILE"),
        (["-o", "{tmp}/x.txt"], "--output needs --format csv, json or parquet"),
        (["-f", "xml"], "unknown format 'xml'"),
        (["--max-bytes", "lots"], "--max-bytes 'lots' is not a size"),
        (["-f", "csv", "--json"], "--json prints the rows as JSON"),
    ],
)
def test_bad_outputs_are_usage_errors_before_the_query_runs(
    project: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    before = lake_fingerprint(project)
    filled = [a.format(tmp=tmp_path) for a in args]
    code, out, err = query(project, "SELECT 1 AS one", *filled)
    assert code == 2, (out, err)
    if "--json" in args:  # the error is a JSON document on stdout
        problem = json.loads(out)
        assert problem["exit_code"] == 2 and problem["message"].startswith(message), problem
    else:
        assert err.startswith("error: " + message.format(tmp=tmp_path)), err
        assert not out
    assert "internal error" not in err + out
    assert lake_fingerprint(project) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_nested_columns_cannot_go_to_csv(project: Path) -> None:
    code, _, err = query(project, "SELECT [1, 2] AS xs, {'a': 1} AS s", "-f", "csv")
    assert code == 2 and "CSV cannot hold the nested column(s) xs, s; use --format json or parquet" in err


def test_a_lake_table_streams_to_csv(project: Path, land: object, tmp_path: Path) -> None:
    """The same path over a real Bronze table: the sandbox registers what the SQL names, nothing else."""
    from conftest import ORDERS_HEADER

    rows = [f"ORD-{i:04d},{i % 9 + 1},{i}.50,USD,2026-01-01T10:00:00Z,a{i}@x.io" for i in range(1, 1001)]
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(ORDERS_HEADER + "\n".join(rows) + "\n")
    assert run_capped("-p", str(project), "ingest", memory_mb=4096, env=ENV).code == 0
    target = tmp_path / "orders.csv"
    code, _, err = query(
        project,
        "SELECT order_id, qty FROM bronze.orders ORDER BY order_id",
        "-f",
        "csv",
        "-o",
        str(target),
        "--max-rows",
        "600",
    )
    assert code == 0 and "result truncated at 600 rows" in err, err
    lines = target.read_text().splitlines()
    assert lines[0] == '"order_id","qty"' and len(lines) == 601 and lines[1] == '"ORD-0001",2'


def test_a_reader_that_goes_away_ends_the_output_quietly(project: Path) -> None:
    """`lakestack query ... | head -1`: exit 0 and nothing on stderr, not a BrokenPipeError."""
    import os
    import subprocess
    import sys

    args = ["-p", str(project), "query", "SELECT * FROM range(5000000)", "-f", "csv", "--max-rows", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakestack", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **ENV},
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b'"range"\n'
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err

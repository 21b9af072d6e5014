"""Interactive latency: `lakestack query` as a user runs it (a whole CLI process: interpreter start-up,
imports, project load, the read, the audit row) against a whole Python process running DuckDB on the
same Parquet files, the floor (issue 19 item 4: a small query ≤ 0.4 s of CLI wall time)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import Benchmark, Prepare, Tool
from suite_tables import _files, _northwind_silver

SQL = "SELECT count(*) AS n, sum(quantity) AS units FROM silver.orders"


def _rows(out: subprocess.CompletedProcess[str]) -> int:
    if out.returncode != 0:
        raise RuntimeError(f"exit {out.returncode}: {out.stderr.strip()[-400:]}")
    return int(json.loads(out.stdout)["rows"][0]["n"])


def _cli_query(size: int, work: Path, data: Path) -> Prepare:
    root = data / "northwind"
    command = [sys.executable, "-m", "lakestack", "-p", str(root), "query", SQL, "--json"]

    def go() -> int:
        return _rows(subprocess.run(command, capture_output=True, text=True, check=False))

    def prepare() -> Callable[[], int]:
        _compiled()
        go()  # the first read after a commit plans through pyiceberg and records the plan (ADR 32)
        return go

    return prepare


def _compiled() -> None:
    """lakestack's bytecode compiled, as a wheel's install leaves it: an editable install has none, and
    with PYTHONDONTWRITEBYTECODE set (these hosts) each process would compile every module again."""
    import compileall

    import lakestack

    compileall.compile_dir(Path(lakestack.__file__).parent, quiet=2)


def _duckdb_process(size: int, work: Path, data: Path) -> Prepare:
    files = _files(data / "northwind", "silver.orders")
    script = (
        "import json, sys, duckdb\n"
        f"row = duckdb.connect().execute({SQL.replace('silver.orders', 'read_parquet(?)')!r}, "
        "[json.loads(sys.argv[1])]).fetchone()\n"
        "print(json.dumps({'rows': [{'n': row[0], 'units': float(row[1])}]}))\n"
    )
    command = [sys.executable, "-c", script, json.dumps(files)]

    def go() -> int:
        return _rows(subprocess.run(command, capture_output=True, text=True, check=False))

    return lambda: go


CLI_QUERY = Benchmark(
    name="cli_query",
    description="`lakestack query` of a small aggregate (count, sum) over silver.orders as a user runs it: one whole "
    "CLI process per query, start-up and audit row included; its wall time, not throughput, is the figure",
    unit="rows scanned",
    sizes=(30_000, 100_000, 300_000, 1_000_000),
    data=_northwind_silver,
    tools=(
        Tool(
            "lakestack query (CLI process)",
            "python -m lakestack -p PROJECT query SQL --json in a new process (recorded plan, local SQLite "
            "catalog; the audit row spooled, not committed: ADR 34; lakestack's bytecode compiled, as a wheel install "
            "leaves it); one untimed run first records the plan",
            _cli_query,
            role="lakestack",
        ),
        Tool(
            "floor: DuckDB in a Python process",
            "python -c: import duckdb, the same SQL over read_parquet of the same files (listed before timing), "
            "fetchone, print JSON: the interpreter and DuckDB with nothing of lakestack",
            _duckdb_process,
            role="floor",
        ),
    ),
)

"""The command line as a user runs it: a real subprocess, exit codes, tables, JSON, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = "order_id,qty,price,currency,order_ts,email\nORD-0001,2,9.99,USD,2026-01-01 10:00:00,a@b.io\nORD-2,1,1,USD,,\n"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("LAKESTACK_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "lakestack", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("init", "example", "ingest", "status", "tables", "show"):
        assert command in result.stdout


def test_init_then_ingest_then_look(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    assert run("init", "demo", "--path", str(folder)).returncode == 0
    result = run("-p", str(folder), "ingest")
    assert result.returncode == 0, result.stderr
    assert "rows quarantined" in result.stdout and "total" in result.stdout
    as_json = json.loads(run("-p", str(folder), "ingest", "--json").stdout)
    assert as_json["sources"][0]["files"][0]["status"] == "skipped"
    tables = json.loads(run("-p", str(folder), "tables", "--json").stdout)
    rows = {t["identifier"]: t["rows"] for t in tables}  # each ingest recorded a run and its job
    assert rows == {"bronze.events": 2, "quarantine.events": 1, "_lakestack.runs": 4}
    status = json.loads(run("-p", str(folder), "status", "--json").stdout)
    assert status[0]["pending_files"] == 0 and status[0]["bronze_rows"] == 2
    shown = run("-p", str(folder), "show", "quarantine.events")
    assert shown.returncode == 0 and "not-a-uuid" in shown.stdout and "refund" in shown.stdout
    shown_json = json.loads(run("-p", str(folder), "show", "bronze.events", "--json", "-n", "1").stdout)
    assert len(shown_json["rows"]) == 1 and shown_json["table"]["rows"] == 2


def test_ingest_summary_counts(project: Path) -> None:
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(GOOD)
    result = run("-p", str(project), "ingest", "orders", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows_in"], report["landed"], report["quarantined"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("ingest", "nope"), 2, "unknown source 'nope'"),
        (("show", "bronze.nope"), 3, "table bronze.nope does not exist"),
        (("ingest", "orders", "--file", "../x.csv"), 2, "escapes the landing folder"),
        (("--env", "staging", "tables"), 2, "unknown environment 'staging'"),
        (("frobnicate",), 2, "No such command"),
    ],
)
def test_errors_are_messages_with_exit_codes(project: Path, args: tuple[str, ...], code: int, message: str) -> None:
    result = run("-p", str(project), *args)
    assert result.returncode == code
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_a_broken_project_file_names_file_and_line(project: Path) -> None:
    (project / "lakestack.yaml").write_text("name: shop\nsources:\n  orders: {contract: orders, landng: x}\n")
    result = run("-p", str(project), "status")
    assert result.returncode == 2
    assert "lakestack.yaml:3 (sources.orders.landng): unknown key 'landng'" in result.stderr
    problem = json.loads(run("-p", str(project), "status", "--json").stdout)
    assert problem == {
        "error": "ConfigError",
        "message": problem["message"],
        "exit_code": 2,
        "file": "lakestack.yaml",
        "line": 3,
        "key": "sources.orders.landng",
    }


def test_import_and_help_stay_light() -> None:
    code = (
        "import sys, lakestack, lakestack.cli.app; heavy = [m for m in ('pyiceberg', 'duckdb', 'pyarrow', "
        "'pydantic', 'msgspec', 'sqlalchemy', 'fastapi', 'uvicorn', 'nats', 'confluent_kafka', 'boto3') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_public_api_is_pinned() -> None:
    import lakestack

    assert sorted(lakestack.__all__) == [
        "Contract",
        "ContractRegistry",
        "Lake",
        "LakestackError",
        "Project",
        "__version__",
    ]
    for name in lakestack.__all__:
        assert getattr(lakestack, name) is not None


def test_northwind_from_landing_files_to_gold(tmp_path: Path) -> None:
    folder = tmp_path / "nw"
    assert run("example", "northwind", str(folder), "--orders", "600", "--days", "3", "--json").returncode == 0
    result = run("-p", str(folder), "run")
    assert result.returncode == 0, result.stderr
    for text in ("ingest · run", "promote · silver", "build · gold", "gold.daily_order_metrics"):
        assert text in result.stdout
    report = json.loads(run("-p", str(folder), "run", "--json").stdout)
    assert {b["mode"] for b in report["built"]} == {"skipped"}
    rebuilt = json.loads(run("-p", str(folder), "build", "--full-refresh", "--json").stdout)
    assert {b["mode"] for b in rebuilt} == {"full"}
    assert json.loads(run("-p", str(folder), "promote", "--json").stdout)[0]["snapshot_id"] is None
    sql = "SELECT currency, sum(order_lines) AS lines FROM gold.daily_order_metrics GROUP BY 1 ORDER BY 1"
    as_csv = run("-p", str(folder), "query", sql, "--format", "csv").stdout.splitlines()
    assert as_csv[0] == '"currency","lines"' and len(as_csv) == 5
    as_json = [json.loads(line) for line in run("-p", str(folder), "query", sql, "-f", "json").stdout.splitlines()]
    assert [r["currency"] for r in as_json] == ["EUR", "GBP", "JPY", "USD"]
    parquet = tmp_path / "out.parquet"
    assert run("-p", str(folder), "query", sql, "-f", "parquet", "-o", str(parquet)).returncode == 0
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).num_rows == 4
    table = run("-p", str(folder), "query", sql)
    assert "4 rows" in table.stdout
    refused = run("-p", str(folder), "query", "DROP TABLE gold.dim_date")
    assert refused.returncode == 2 and "only one read-only SELECT" in refused.stderr


def test_a_project_folder_named_like_a_url(tmp_path: Path) -> None:
    """The SQLite catalog is opened by URL: '%20', '?', '#' and brackets in the folder name are
    path characters (a folder 'pc%20' used to fail with 'unable to open database file')."""
    folder = tmp_path / "pc%20 [x]?#y"
    assert run("init", "demo", "--path", str(folder)).returncode == 0
    first = run("-p", str(folder), "ingest", "--json")
    assert first.returncode == 0, first.stderr
    assert (folder / ".lakestack" / "catalog.db").is_file()
    again = json.loads(run("-p", str(folder), "ingest", "--json").stdout)  # the copy check passes too
    assert again["sources"][0]["files"][0]["status"] == "skipped"

"""The read commands started without Typer (cli/direct.py) answer exactly as the Typer app does: the
same output, exit code and error, the same audit rows; and they never import Typer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakestack import Lake
from lakestack.pipeline.audit import read_audit

TYPER = "import sys\nfrom lakestack.cli.app import main\nsys.argv[0] = 'lakestack'\nmain()\n"
DIRECT = (
    "import sys\n"
    "from lakestack.cli.direct import main\n"
    "sys.argv[0] = 'lakestack'\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    sys.stderr.write('\\nTYPER:' + str('typer' in sys.modules))\n"
)


def _run(code: str, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("LAKESTACK_DEBUG", None)
    command = [sys.executable, "-c", code, "-p", str(project), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def _both(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    direct = _run(DIRECT, project, *args)
    stderr, _, imported = direct.stderr.rpartition("\nTYPER:")
    assert imported == "False", (args, direct.stderr[-500:])
    direct.stderr = stderr
    return direct, _run(TYPER, project, *args)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("direct") / "demo"
    for args in (["init", "demo", "--path", str(folder)], ["-p", str(folder), "ingest"]):
        done = subprocess.run([sys.executable, "-m", "lakestack", *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ["query", "SELECT event_type, count(*) AS n FROM bronze.events GROUP BY 1 ORDER BY 1"],
        ["query", "SELECT event_type, count(*) AS n FROM bronze.events GROUP BY 1 ORDER BY 1", "--json"],
        ["query", "SELECT * FROM bronze.events ORDER BY event_id", "-f", "csv", "--max-rows", "1"],
        ["query", "SELECT * FROM bronze.events ORDER BY event_id", "--format=json", "--limit", "1"],
        ["tables", "--json"],
        ["status", "--json"],
        ["show", "bronze.events", "-n", "1", "--json"],
        ["show", "quarantine.events", "--limit=2"],
    ],
)
def test_a_read_answers_as_the_typer_app(project: Path, args: list[str]) -> None:
    direct, typer = _both(project, *args)
    assert direct.returncode == typer.returncode == 0, (direct.stderr, typer.stderr)
    if args[0] in ("tables", "status"):  # the same figures; only the audit table's own row count moves
        assert [t["identifier"] for t in json.loads(direct.stdout) if "identifier" in t] == [
            t["identifier"] for t in json.loads(typer.stdout) if "identifier" in t
        ]
        return
    assert direct.stdout == typer.stdout
    assert direct.stderr == typer.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["query", "SELECT * FROM silver.nothing"],
        ["query", "DELETE FROM bronze.events", "--json"],
        ["query", "SELECT * FROM read_csv('/etc/passwd')"],
        ["query", "SELECT 1", "--format", "xml"],
        ["show", "bronze.nothing"],
        ["query", "SELECT 1", "--user-attr", "noequals"],
    ],
)
def test_an_error_ends_as_in_the_typer_app(project: Path, args: list[str]) -> None:
    direct, typer = _both(project, *args)
    assert direct.returncode == typer.returncode != 0
    assert (direct.stdout, direct.stderr) == (typer.stdout, typer.stderr)
    assert "Traceback" not in direct.stderr


def test_each_read_is_one_audit_row_as_in_the_typer_app(project: Path) -> None:
    sql = "SELECT count(*) AS n FROM bronze.events"
    for code in (DIRECT, TYPER):
        assert _run(code, project, "query", sql, "--json").returncode == 0
    with Lake.open(project) as lake:
        rows = [r for r in read_audit(lake.warehouse, spool=lake.audit.spool) if r["query"] == sql]
    assert len(rows) == 2
    assert {(r["action"], r["result"], r["rows"], r["detail"]) for r in rows} == {("query", "ok", 1, None)}


def test_status_and_a_query_import_neither_pandas_nor_typer_nor_pyarrow_nor_pyiceberg(project: Path) -> None:
    """A recorded plan and the metadata files answer both: none of the heavy imports a write needs
    (status lists a landing folder through ingest/landing.py, not the ingest's readers)."""
    heavy = "{'typer', 'pandas', 'pyarrow', 'pyiceberg', 'sqlalchemy'}"
    code = DIRECT.replace("str('typer' in sys.modules)", f"str(sorted({heavy} & set(sys.modules)))")
    (project / "landing" / "events" / "events_20260109.ndjson").write_text("{}\n")  # a file waiting
    assert _run(DIRECT, project, "query", "SELECT 1 FROM bronze.events").returncode == 0  # records the plan
    for args in (["status", "--json"], ["query", "SELECT count(*) AS n FROM bronze.events", "--json"]):
        done = _run(code, project, *args)
        assert done.returncode == 0, done.stderr
        assert done.stderr.endswith("TYPER:[]"), (args, done.stderr[-300:])
    status = json.loads(_run(DIRECT, project, "status", "--json").stdout)
    assert status[0]["pending_files"] == 1

"""Every SQL a project carries runs in one locked-down DuckDB connection (`engine.open_sandbox`):
hostile Gold models, `custom_sql` checks and queries that reach for files (/etc, /proc, URLs, the
data files of tables they do not name), try statements other than one SELECT (COPY, ATTACH,
INSTALL/LOAD, SET/PRAGMA, multi-statement), or hide such reads in CTEs, subqueries and `query()`.
Each ends in a clear message (naming the model/check file and the refused call), exit 2, no
traceback, and a lake left exactly as it was.

The many cases run the real CLI entry point in-process (fast); a sample runs it in a child process
under an address-space cap (`run_capped`) to show the same outcome from a real process."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lakestack import Lake
from lakestack.examples.northwind import generate_northwind
from lakestack.pipeline.scaffold import copy_example
from security_support import run_capped

CAP_MB = 4096  # mimalloc (pyarrow's default pool) reserves ~1 GiB of address space at the first compute call
SECRET = "S3cr3t-Env-Value-71"  # in the environment of every CLI run: no output may show it
REFUSED = r"reads outside the lake"
NOT_ONE_SELECT = r"only one read-only SELECT is allowed|exactly one SELECT statement|does not parse"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Northwind lake with Bronze, Silver, Gold and check results."""
    root = tmp_path_factory.mktemp("sandbox") / "nw"
    copy_example("northwind", root)
    generate_northwind(root, orders=400, seed=3, days=2)
    with Lake.open(root) as lake:  # closed: its lineage is written before any test takes a fingerprint
        lake.run()
    return root


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(lake: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Run]:
    """`run(*args) -> (exit code, stdout, stderr as one line)`: lakestack's real entry point, in-process."""
    from lakestack.cli.app import main

    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("LAKE_TEST_SECRET", SECRET)
    monkeypatch.delenv("LAKESTACK_DEBUG", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["lakestack", "-p", str(lake), *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, out + err
        assert SECRET not in out + err
        code = exit_.value.code
        return (code if isinstance(code, int) else 0), out, " ".join(err.split())

    return lake, run


def lake_state(project: Path) -> str:
    """Every warehouse file (name and content) and every catalog row, except the audit log's: a refused
    query is audited (pipeline/audit.py), and must change nothing else. `security_support.lake_fingerprint`
    also hashes `.lakestack/run.lock`, whose content names the last `build`'s pid: a build that is
    refused still takes the project lock, and must still change nothing else."""
    digest = hashlib.sha256()
    audit = project / "warehouse" / "_lakestack" / "audit"
    for path in sorted(p for p in (project / "warehouse").rglob("*") if p.is_file() and audit not in p.parents):
        digest.update(str(path.relative_to(project)).encode() + hashlib.sha256(path.read_bytes()).digest())
    with sqlite3.connect(project / ".lakestack" / "catalog.db") as con:
        for table in sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")):
            for row in sorted(map(repr, con.execute(f'SELECT * FROM "{table}"'))):
                if "'_lakestack', 'audit'" not in row:
                    digest.update(row.encode())
    return digest.hexdigest()


def _data_file(project: Path, layer: str) -> str:
    return str(next((project / "warehouse" / layer).rglob("*.parquet")))


def hostile_queries(project: Path, tmp: Path) -> list[tuple[str, str]]:
    """(SQL, the message it must end in) — 30+ ways to reach outside a read-only query."""
    bronze = _data_file(project, "bronze")
    return [
        # files, devices and URLs, by every reader
        ("SELECT * FROM read_text('/proc/self/environ')", REFUSED + r".*read_text\('/proc/self/environ'\)"),
        ("SELECT * FROM read_text('/proc/self/cmdline')", REFUSED),
        ("SELECT * FROM read_csv('/etc/passwd')", REFUSED + r".*read_csv\('/etc/passwd'\)"),
        ("SELECT * FROM read_csv_auto('/etc/passwd', delim = ':')", REFUSED),
        ("SELECT * FROM read_blob('/etc/hostname')", REFUSED),
        ("SELECT * FROM read_json('/etc/passwd')", REFUSED),
        ("SELECT * FROM glob('/etc/*')", REFUSED + r".*glob\('/etc/\*'\)"),
        ("SELECT * FROM '/etc/passwd'", REFUSED + r".*/etc/passwd"),
        ("SELECT * FROM sniff_csv('/etc/passwd')", REFUSED),
        (f"SELECT * FROM read_parquet('{bronze}')", REFUSED),  # a lake file of a table the SQL does not name
        (f"SELECT * FROM parquet_metadata('{bronze}')", REFUSED),
        ("SELECT * FROM read_parquet('https://example.com/x.parquet')", REFUSED + r".*https://example.com"),
        ("SELECT * FROM 's3://bucket/key.parquet'", REFUSED),
        ("SELECT * FROM duckdb_secrets()", REFUSED),
        ("SELECT * FROM duckdb_extensions()", REFUSED),
        # the same reads hidden in CTEs, subqueries, unions and query()
        ("WITH p AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM p", REFUSED),
        ("SELECT (SELECT count(*) FROM read_text('/etc/shadow')) AS n", REFUSED),
        ("SELECT order_id FROM silver.orders UNION ALL SELECT column0 FROM read_csv('/etc/passwd')", REFUSED),
        ("SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')", REFUSED),
        (f"SELECT * FROM query('COPY (SELECT 1) TO ''{tmp}/q.csv''')", r"the query failed"),
        # anything but one SELECT
        (f"COPY silver.orders TO '{tmp}/orders.csv'", r"only one read-only SELECT.*got: COPY"),
        (f"COPY (SELECT 42) TO '{tmp}/x.parquet' (FORMAT parquet)", r"got: COPY"),
        (f"ATTACH '{tmp}/evil.db' AS evil", r"got: ATTACH"),
        ("INSTALL httpfs", NOT_ONE_SELECT),
        ("LOAD httpfs", NOT_ONE_SELECT),
        ("SET enable_external_access = true", r"got: SET"),
        ("RESET lock_configuration", r"got: SET"),
        ("SET VARIABLE x = 1", r"got: SET"),
        ("PRAGMA enable_profiling", r"got: PRAGMA"),
        ("CALL pragma_version()", r"got: CALL"),
        ("UPDATE EXTENSIONS", r"got: UPDATE EXTENSIONS"),
        ("CREATE TABLE t AS SELECT 1", r"got: CREATE"),
        ("DROP VIEW silver.orders", r"got: DROP"),
        (f"EXPORT DATABASE '{tmp}/dump'", r"got: EXPORT"),
        ("DETACH memory", r"got: DETACH"),
        ("CHECKPOINT", NOT_ONE_SELECT),
        ("USE silver", r"got: SET"),
        ("EXPLAIN ANALYZE SELECT 1", r"got: EXPLAIN"),
        ("SELECT 1; SELECT 2", r"got: SELECT, SELECT"),
        (f"SELECT 1; COPY silver.orders TO '{tmp}/o.csv'", r"got: SELECT, COPY"),
        ("", r"got: nothing"),
        # functions that would read the process or its settings
        ("SELECT getenv('LAKE_TEST_SECRET') AS s", r"the query failed: .*getenv"),
    ]


def test_hostile_queries_are_refused_and_change_nothing(cli: tuple[Path, Run], tmp_path: Path) -> None:
    project, run = cli
    cases = hostile_queries(project, tmp_path)
    assert len(cases) >= 30
    before = lake_state(project)
    for sql, message in cases:
        code, out, err = run("query", sql)
        assert code == 2, (sql, code, out, err)
        assert err.startswith("error: ") and _search(message, err), (sql, err)
        assert "root:" not in out + err and "internal error" not in err, sql
    assert lake_state(project) == before
    assert not list(tmp_path.iterdir()), "a refused statement wrote a file"


def test_hostile_queries_in_a_capped_child_process(lake: Path, tmp_path: Path) -> None:
    before = lake_state(lake)
    for sql, message in [
        ("SELECT * FROM read_text('/proc/self/environ')", REFUSED),
        (f"COPY silver.orders TO '{tmp_path}/o.csv'", r"got: COPY"),
        ("UPDATE EXTENSIONS", r"got: UPDATE EXTENSIONS"),
        ("SELECT 1; ATTACH 'x.db'", r"got: SELECT, ATTACH"),
    ]:
        out = run_capped("-p", str(lake), "query", sql, memory_mb=CAP_MB, env={"COLUMNS": "1000"})
        assert out.code == 2 and _search(message, " ".join(out.stderr.split())), (sql, out.output)
    assert lake_state(lake) == before and not list(tmp_path.iterdir())


def test_lake_tables_are_still_readable_every_way(cli: tuple[Path, Run]) -> None:
    _, run = cli
    for sql in [
        "SELECT count(*) AS n FROM silver.orders",
        "SELECT count(*) AS n FROM query_table('silver.orders')",
        "WITH o AS (SELECT * FROM silver.orders) SELECT count(*) AS n FROM o JOIN silver.customers USING (customer_id)",
        "FROM gold.fact_sales SELECT count(*) AS n",
        "SELECT count(*) AS n FROM _lakestack.check_results",
        "SELECT count(*) AS n FROM quarantine.orders",
    ]:
        code, out, err = run("query", sql, "-f", "json")
        assert code == 0 and '"n": ' in out and int(out.split(":")[1].strip(" }\n")) > 0, (sql, out, err)


def test_settings_are_visible_but_hold_no_environment(cli: tuple[Path, Run]) -> None:
    """`duckdb_settings()` is a plain SELECT; it shows DuckDB's own settings (locked), never the
    environment (the fixture sets LAKE_TEST_SECRET and `run` asserts it never appears)."""
    _, run = cli
    code, out, err = run("query", "SELECT name, value FROM duckdb_settings()", "-f", "json")
    assert code == 0, err
    assert '"name": "enable_external_access", "value": "false"' in out
    assert '"name": "lock_configuration", "value": "true"' in out


HOSTILE_MODELS = [
    ("SELECT * FROM read_text('/proc/self/environ')", REFUSED + r".*read_text\('/proc/self/environ'\)"),
    ("SELECT * FROM read_csv('/etc/passwd')", REFUSED + r".*read_csv\('/etc/passwd'\)"),
    ("SELECT * FROM read_blob('/etc/hostname')", REFUSED),
    ("SELECT * FROM glob('/proc/self/*')", REFUSED),
    ("SELECT * FROM '/etc/passwd'", REFUSED),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", REFUSED),
    (
        "WITH e AS (SELECT * FROM read_text('/proc/self/environ')) "
        "SELECT o.order_id, e.content FROM silver.orders o, e",
        REFUSED,
    ),
    ("SELECT o.*, (SELECT content FROM read_text('/etc/hostname')) AS h FROM silver.orders o", REFUSED),
    ("SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')", REFUSED),
    ("SELECT getenv('HOME') AS home", r"model evil failed: .*getenv"),
    ("SELECT * FROM query_table('bronze.orders')", r"model evil failed"),  # not a named upstream: not there
    ("SELECT 1 AS x; SELECT 2 AS y", NOT_ONE_SELECT),
    ("COPY silver.orders TO '/tmp/lakestack-evil.csv'", NOT_ONE_SELECT),
    ("ATTACH '/tmp/lakestack-evil.db' AS evil", NOT_ONE_SELECT),
    ("INSTALL httpfs", NOT_ONE_SELECT),
    ("SET enable_external_access = true", NOT_ONE_SELECT),
    ("PRAGMA version", NOT_ONE_SELECT),
]


def test_hostile_models_are_refused_naming_the_file(cli: tuple[Path, Run]) -> None:
    project, run = cli
    model = project / "models" / "gold" / "evil.sql"
    before = lake_state(project)
    try:
        for sql, message in HOSTILE_MODELS:
            model.write_text(f"-- a model a colleague sent\n{sql}\n")
            code, out, err = run("build", "evil")
            assert code == 2, (sql, code, out, err)
            assert "models/gold/evil.sql:" in err and _search(message, err), (sql, err)
            assert "root:" not in out + err
    finally:
        model.unlink(missing_ok=True)
    assert lake_state(project) == before
    assert not Path("/tmp/lakestack-evil.csv").exists() and not Path("/tmp/lakestack-evil.db").exists()


def test_hostile_model_in_a_capped_child_process(lake: Path) -> None:
    model = lake / "models" / "gold" / "evil.sql"
    before = lake_state(lake)
    try:
        model.write_text("SELECT * FROM read_text('/proc/self/environ')\n")
        out = run_capped("-p", str(lake), "build", "evil", memory_mb=CAP_MB, env={"COLUMNS": "1000"})
    finally:
        model.unlink(missing_ok=True)
    assert out.code == 2, out.output
    assert "models/gold/evil.sql:1: model evil reads outside the lake" in " ".join(out.stderr.split())
    assert lake_state(lake) == before


HOSTILE_CHECKS = [
    ("SELECT * FROM read_csv('/etc/passwd')", REFUSED + r".*read_csv\('/etc/passwd'\)"),
    ("SELECT * FROM read_text('/proc/self/environ')", REFUSED),
    ("SELECT * FROM gold.fact_sales WHERE product_id IN (SELECT column0 FROM read_csv('/etc/passwd'))", REFUSED),
    ("SELECT * FROM glob('/etc/*')", REFUSED),
    ("SELECT 1 AS x; COPY gold.fact_sales TO '/tmp/lakestack-evil-check.csv'", r"got: SELECT, COPY"),
    ("COPY gold.fact_sales TO '/tmp/lakestack-evil-check.csv'", r"got: COPY"),
    ("ATTACH '/tmp/lakestack-evil-check.db'", r"got: ATTACH"),
    ("SET threads = 64", r"got: SET"),
]


def test_hostile_custom_sql_checks_are_refused_naming_the_file(cli: tuple[Path, Run]) -> None:
    project, run = cli
    checks = project / "checks" / "evil.yaml"
    before = lake_state(project)
    try:
        for sql, message in HOSTILE_CHECKS:
            quoted = sql.replace("'", "''")
            checks.write_text(f"dataset: gold.fact_sales\nchecks:\n  - type: custom_sql\n    sql: '{quoted}'\n")
            code, out, err = run("check", "gold.fact_sales")
            assert code == 2, (sql, code, out, err)
            assert "checks/evil.yaml:4" in err and "check custom_sql on gold.fact_sales" in err, err
            assert _search(message, err), (sql, err)
            assert "root:" not in out + err
    finally:
        checks.unlink(missing_ok=True)
    assert lake_state(project) == before  # no result and no failing-row sample was recorded
    assert not Path("/tmp/lakestack-evil-check.csv").exists()


def test_a_benign_custom_sql_check_still_reads_other_lake_tables(cli: tuple[Path, Run]) -> None:
    project, run = cli
    checks = project / "checks" / "cross.yaml"
    checks.write_text(
        "dataset: gold.fact_sales\nchecks:\n  - name: orders exist in silver\n    type: custom_sql\n"
        "    sql: SELECT * FROM gold.fact_sales WHERE order_id NOT IN (SELECT order_id FROM silver.orders)\n"
    )
    try:
        code, out, err = run("check", "gold.fact_sales", "--json")
    finally:
        checks.unlink()
    assert code == 0, err
    assert '"check": "orders exist in silver"' in out and '"status": "pass"' in out


def _search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text, re.DOTALL) is not None

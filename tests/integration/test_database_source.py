"""`kind: database` sources against the real local PostgreSQL and MariaDB: a full pull, incremental
pulls with new rows and rows tied on the cursor at a commit boundary, a value the contract cannot
hold quarantined with its reason, an unreachable server (exit 3), an unknown table or column
(exit 2), and `lakestack ingest` killed at each failpoint of a pull and then resumed exactly once.
Each test makes its own schema (PostgreSQL) or database (MariaDB) and drops it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lake_support import cli
from lakestack import Lake
from tests_support import service_url

pytestmark = pytest.mark.integration

CONTRACT = """\
source: accounts
version: 1
key: [account_id]
file: {pattern: "accounts_*.parquet", format: parquet}  # batch contracts need one; a database source ignores it
columns:
  - {name: account_id, type: integer, nullable: false}
  - {name: name, type: string, nullable: false, max_length: 20}
  - {name: balance, type: "decimal(12,2)", nullable: false}
  - {name: updated_at, type: timestamp, nullable: false}
  - {name: score, type: integer}
"""


@dataclass
class Db:
    """One throw-away schema (PostgreSQL) or database (MariaDB) on a real server."""

    kind: str
    url: str  # the source's URL, pointing into the throw-away place where it can
    name: str
    execute: Callable[[str], None]

    @property
    def table(self) -> str:
        return f"{self.name}.accounts"


def _pg(base: str) -> Iterator[Db]:
    psycopg = pytest.importorskip("psycopg")
    name = f"src_{uuid.uuid4().hex[:10]}"
    con = psycopg.connect(base, autocommit=True)

    def execute(sql: str) -> None:
        con.execute(sql)

    execute(f"CREATE SCHEMA {name}")
    execute(
        f"CREATE TABLE {name}.accounts (account_id bigint PRIMARY KEY, name text NOT NULL, balance numeric(12,2) "
        "NOT NULL, updated_at timestamptz NOT NULL, score numeric)"
    )
    try:
        yield Db("postgres", base, name, execute)
    finally:
        execute(f"DROP SCHEMA {name} CASCADE")
        con.close()


def _mysql(base: str) -> Iterator[Db]:
    pymysql = pytest.importorskip("pymysql")
    name = f"src_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base)
    con = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )

    def execute(sql: str) -> None:
        with con.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(sql)

    execute(f"CREATE DATABASE {name}")
    execute(
        f"CREATE TABLE {name}.accounts (account_id bigint PRIMARY KEY, name varchar(100) NOT NULL, balance "
        "decimal(12,2) NOT NULL, updated_at datetime(6) NOT NULL, score decimal(20,2))"
    )
    url = f"{parts.scheme}://{parts.netloc}/{name}"
    try:
        yield Db("mysql", url, name, execute)
    finally:
        execute(f"DROP DATABASE {name}")
        con.close()


@pytest.fixture(params=["postgres", "mysql"])
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    if request.param == "postgres":
        yield from _pg(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    else:
        yield from _mysql(service_url("mysql", "mysql://root@127.0.0.1:3306/test"))


def project(root: Path, db: Db, block: str) -> Path:
    (root / "contracts").mkdir(parents=True, exist_ok=True)
    (root / "contracts" / "accounts.v1.yaml").write_text(CONTRACT)
    (root / "lakestack.yaml").write_text(
        f"name: dbtest\nsources:\n  accounts:\n    kind: database\n    contract: accounts\n"
        f"    database: {{url: {{secret: DB_SOURCE_URL}}, {block}}}\n"
    )
    return root


def insert(db: Db, rows: list[tuple[int, str, str, str, str]]) -> None:
    values = ", ".join(f"({i}, '{n}', {b}, '{t}', {s})" for i, n, b, t, s in rows)
    db.execute(f"INSERT INTO {db.table} (account_id, name, balance, updated_at, score) VALUES {values}")


def bronze(root: Path) -> list[dict[str, Any]]:
    with Lake.open(root) as lake:
        if not lake.warehouse.exists("bronze.accounts"):
            return []
        return sorted(
            lake.warehouse.load("bronze.accounts").scan().to_arrow().to_pylist(),
            key=lambda r: (r["account_id"], r["_ingested_at"]),
        )


def quarantine(root: Path) -> list[dict[str, Any]]:
    with Lake.open(root) as lake:
        if not lake.warehouse.exists("quarantine.accounts"):
            return []
        return lake.warehouse.load("quarantine.accounts").scan().to_arrow().to_pylist()


@pytest.fixture
def env(db: Db, monkeypatch: pytest.MonkeyPatch) -> Db:
    monkeypatch.setenv("DB_SOURCE_URL", db.url)
    return db


def ingest(root: Path) -> Any:
    with Lake.open(root) as lake:
        return lake.ingest().sources[0]


def rows_of(n: int, start: int = 1, ts: str = "2026-11-01 10:00:00") -> list[tuple[int, str, str, str, str]]:
    return [(i, f"acct{i}", f"{i}.50", ts, "NULL") for i in range(start, start + n)]


def test_full_pull_lands_every_row_and_pulls_again_each_run(tmp_path: Path, env: Db) -> None:
    insert(env, rows_of(250))
    root = project(tmp_path, env, f"table: {env.table}, mode: full, batch_rows: 40, commit_rows: 100")
    report = ingest(root)
    assert (report.rows_in, report.landed, report.quarantined) == (250, 250, 0)
    got = bronze(root)
    assert [r["account_id"] for r in got] == list(range(1, 251))
    assert str(got[0]["balance"]) == "1.50" and got[0]["updated_at"].tzinfo is not None
    assert json.loads(got[0]["_raw"])["name"] == "acct1"
    assert got[0]["_source_file"] == env.table and got[0]["_source_position"] == "[1]"
    report = ingest(root)  # a full source pulls the whole table every run
    assert report.landed == 250
    assert len(bronze(root)) == 500


def test_incremental_pulls_only_new_rows_and_keeps_ties_at_the_boundary(tmp_path: Path, env: Db) -> None:
    # 30 rows share one cursor value; commit_rows 7 puts commit boundaries inside the tie
    insert(env, rows_of(30, ts="2026-11-01 10:00:00"))
    insert(env, rows_of(5, start=31, ts="2026-11-01 09:00:00"))
    root = project(
        tmp_path, env, f"table: {env.table}, mode: incremental, cursor: updated_at, batch_rows: 4, commit_rows: 7"
    )
    assert ingest(root).landed == 35
    assert ingest(root).rows_in == 0  # nothing new: nothing pulled, no commit
    # late rows with the same cursor value as the mark but larger keys, and newer rows
    insert(env, rows_of(3, start=36, ts="2026-11-01 10:00:00"))
    insert(env, rows_of(2, start=39, ts="2026-11-02 00:00:00"))
    db_update = "UPDATE {t} SET updated_at = '2026-11-03 00:00:00', name = 'changed' WHERE account_id = 2"
    env.execute(db_update.format(t=env.table))
    report = ingest(root)
    assert report.landed == 6
    got = bronze(root)
    ids = [r["account_id"] for r in got]
    assert sorted(set(ids)) == list(range(1, 41)) and len(ids) == 41  # id 2 twice: its first and updated version
    assert [r["name"] for r in got if r["account_id"] == 2] == ["acct2", "changed"]


def test_a_value_the_contract_cannot_hold_is_quarantined_with_its_reason(tmp_path: Path, env: Db) -> None:
    insert(env, rows_of(10))
    # a name over the contract's max_length, and a score that is not an integer (numeric 2.5)
    env.execute(f"UPDATE {env.table} SET name = 'a-name-much-longer-than-twenty' WHERE account_id = 3")
    env.execute(f"UPDATE {env.table} SET score = 2.5 WHERE account_id = 7")
    root = project(tmp_path, env, f"table: {env.table}, mode: incremental, cursor: updated_at, batch_rows: 4")
    report = ingest(root)
    assert (report.rows_in, report.landed, report.quarantined) == (10, 8, 2)
    bad = sorted(quarantine(root), key=lambda r: r["_source_line"])
    assert [json.loads(r["_raw"])["account_id"] for r in bad] == [3, 7]
    assert "20" in bad[0]["_reason"] and "name" in bad[0]["_reason"]
    assert "integer" in bad[1]["_reason"] and "score" in bad[1]["_reason"]
    assert ingest(root).rows_in == 0  # the mark moved past the quarantined rows too
    done = cli(root, "quarantine", "replay", "accounts", "--dry-run", DB_SOURCE_URL=env.url)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr.lower(), done.stderr


def test_a_query_source(tmp_path: Path, env: Db) -> None:
    insert(env, rows_of(20))
    query = f"SELECT * FROM {env.table} WHERE account_id % 2 = 0"
    root = project(tmp_path, env, f'query: "{query}", mode: incremental, cursor: updated_at, batch_rows: 3')
    assert ingest(root).landed == 10
    assert [r["account_id"] for r in bronze(root)] == list(range(2, 21, 2))


def test_unknown_table_or_column_exits_2_naming_the_project_file(tmp_path: Path, env: Db) -> None:
    root = project(tmp_path, env, f"table: {env.name}.nope, mode: full")
    done = cli(root, "ingest", DB_SOURCE_URL=env.url)
    assert done.returncode == 2, done.stderr
    assert "lakestack.yaml" in done.stderr and "nope" in done.stderr and "Traceback" not in done.stderr
    env.execute(f"ALTER TABLE {env.table} DROP COLUMN score")
    root = project(tmp_path, env, f"table: {env.table}, mode: full")
    done = cli(root, "ingest", DB_SOURCE_URL=env.url)
    assert done.returncode == 2, done.stderr
    assert "score" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_server_exits_3_without_the_password(tmp_path: Path, env: Db) -> None:
    scheme = "postgresql" if env.kind == "postgres" else "mysql"
    url = f"{scheme}://someone:s3cr3t-pw@127.0.0.1:9/nowhere"  # port 9: nothing listens
    root = project(tmp_path, env, f"table: {env.table}, mode: full, connect_timeout: 3")
    done = cli(root, "ingest", DB_SOURCE_URL=url)
    assert done.returncode == 3, done.stderr
    assert "cannot be reached" in done.stderr and "127.0.0.1:9" in done.stderr
    assert "s3cr3t-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr
    done = cli(root, "ingest", "--json", DB_SOURCE_URL=url)
    assert done.returncode == 3 and "s3cr3t-pw" not in done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["incremental", "full"])
@pytest.mark.parametrize(
    "point",
    [  # the crash matrix's database row (docs/reliability.md): make test keeps one point, CI runs all
        pytest.param("database.before_bronze_commit=kill@2", marks=pytest.mark.crash),
        pytest.param("database.after_quarantine_commit=kill@3", marks=pytest.mark.crash),
        "database.after_bronze_commit=kill@2",
        pytest.param("storage.append.after_write=kill@4", marks=pytest.mark.crash),
    ],
)
def test_killed_mid_pull_then_resumed_lands_every_row_once(tmp_path: Path, env: Db, mode: str, point: str) -> None:
    insert(env, rows_of(60))
    env.execute(f"UPDATE {env.table} SET name = 'a-name-much-longer-than-twenty' WHERE account_id % 9 = 0")
    cursor = ", cursor: updated_at" if mode == "incremental" else ""
    root = project(tmp_path, env, f"table: {env.table}, mode: {mode}{cursor}, batch_rows: 8, commit_rows: 8")
    log = tmp_path / "hits.log"
    done = cli(root, "ingest", DB_SOURCE_URL=env.url, LAKESTACK_FAILPOINTS=point, LAKESTACK_FAILPOINTS_LOG=str(log))
    assert done.returncode == -9, done.stderr
    assert log.read_text().split()[0] == point.split("=")[0]
    done = cli(root, "ingest", DB_SOURCE_URL=env.url)
    assert done.returncode == 0, done.stderr
    ids = [r["account_id"] for r in bronze(root)]
    assert sorted(ids) == [i for i in range(1, 61) if i % 9], "every valid row exactly once"
    bad = sorted(json.loads(r["_raw"])["account_id"] for r in quarantine(root))
    assert bad == [9, 18, 27, 36, 45, 54], "every invalid row quarantined exactly once"
    if mode == "incremental":
        assert ingest(root).rows_in == 0


@pytest.mark.parametrize("db", ["postgres"], indirect=True)  # the protocol Redshift speaks
def test_the_redshift_path_reads_postgresql_through_psycopg(tmp_path: Path, env: Db, monkeypatch: Any) -> None:
    """redshift:// goes through psycopg's server-side cursor (ADBC dropped Redshift): exercised
    against PostgreSQL, which speaks the same protocol; Redshift itself is not reachable offline."""
    assert env.kind == "postgres"
    insert(env, rows_of(25))
    monkeypatch.setenv("DB_SOURCE_URL", "redshift" + env.url[env.url.index("://") :])
    root = project(tmp_path, env, f"table: {env.table}, mode: incremental, cursor: updated_at, batch_rows: 4")
    report = ingest(root)
    assert (report.rows_in, report.landed) == (25, 25)
    insert(env, rows_of(2, start=26))
    assert ingest(root).landed == 2
    assert [r["account_id"] for r in bronze(root)] == list(range(1, 28))

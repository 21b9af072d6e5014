"""Publishing Gold to a real MariaDB/MySQL through the same blocks (`kind: mysql`): replace with an
atomic RENAME, the same snapshot unchanged, incremental by day and by key, a violated key keeping
the previous table, masking, wrong credentials. Each test uses its own database and drops it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from lakestack import Lake
from lakestack.publish import PublishError, SchemaChanged
from publish_support import DAYS, gold_table, project, sales
from tests_support import service_url

pytestmark = pytest.mark.integration
pymysql = pytest.importorskip("pymysql")


@pytest.fixture(scope="module")
def mysql_url() -> str:
    return service_url("mysql", "mysql://root@127.0.0.1:3306/test")


def connect(url: str) -> Any:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root", password=parts.password or ""
    )


@pytest.fixture
def database(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"pub_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("PUBLISH_TEST_URL", mysql_url)
    yield name
    con = connect(mysql_url)
    try:
        con.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        con.close()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    con = connect(url)
    try:
        cur = con.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        con.close()


def statuses(result: Any) -> list[tuple[str, str, int | None]]:
    return [(p.status, p.mode, p.rows) for p in result.tables]


def test_replace_renames_the_new_table_in_and_the_same_snapshot_is_unchanged(
    tmp_path: Path, database: str, mysql_url: str
) -> None:
    root = project(tmp_path, database, "{primary_key: [order_id], indexes: [[order_day]]}", kind="mysql")
    with Lake.open(root) as lake:
        gold_table(lake, sales(1000))
        assert statuses(lake.publish()) == [("published", "replace", 1000)]
        assert statuses(lake.publish()) == [("unchanged", "replace", 0)]
        lake.warehouse.load("gold.sales").append(sales(500, start=1000))
        assert statuses(lake.publish()) == [("published", "replace", 1500)]
    assert rows(mysql_url, f"SELECT count(*), sum(amount) FROM {database}.sales") == [(1500, Decimal("2250.00"))]
    keys = rows(mysql_url, f"SHOW INDEX FROM {database}.sales")
    assert {k[2] for k in keys} == {"PRIMARY", "sales_order_day_idx"}
    tables = rows(mysql_url, f"SHOW TABLES FROM {database}")
    assert sorted(t for (t,) in tables) == ["lakestack_publish_state", "sales"]


def test_incremental_by_day_and_by_key(tmp_path: Path, database: str, mysql_url: str) -> None:
    from pyiceberg.expressions import EqualTo

    root = project(tmp_path, database, "{mode: incremental, primary_key: [order_id]}", kind="mysql")
    with Lake.open(root) as lake:
        table = gold_table(lake, sales(400))
        lake.publish()
        day = sales(400, amount="9.99").filter(pa.compute.equal(sales(400)["order_day"], pa.scalar(DAYS[1])))
        table.overwrite(day.slice(0, 60), overwrite_filter=EqualTo("order_day", DAYS[1].isoformat()))
        assert statuses(lake.publish()) == [("published", "incremental", 60)]
    assert rows(mysql_url, f"SELECT count(*) FROM {database}.sales") == [(360,)]
    project(tmp_path, database, "{mode: incremental, by: key, primary_key: [order_id]}", kind="mysql")
    with Lake.open(root) as lake:  # a changed block republishes in full once, then upserts
        assert statuses(lake.publish()) == [("published", "replace", 360)]
        day = sales(400, amount="7.00").filter(pa.compute.equal(sales(400)["order_day"], pa.scalar(DAYS[2])))
        table = lake.warehouse.load("gold.sales")
        table.overwrite(day, overwrite_filter=EqualTo("order_day", DAYS[2].isoformat()))
        assert statuses(lake.publish()) == [("published", "incremental", 100)]
    assert rows(mysql_url, f"SELECT amount, count(*) FROM {database}.sales GROUP BY 1 ORDER BY 1") == [
        (Decimal("1.50"), 200),
        (Decimal("7.00"), 100),
        (Decimal("9.99"), 60),
    ]


def test_a_changed_schema_is_refused_incrementally(tmp_path: Path, database: str, mysql_url: str) -> None:
    from pyiceberg.types import StringType

    root = project(tmp_path, database, "{mode: incremental, primary_key: [order_id]}", kind="mysql")
    with Lake.open(root) as lake:
        table = gold_table(lake, sales(20))
        lake.publish()
        with table.update_schema() as update:
            update.add_column("channel", StringType())
        lake.warehouse.load("gold.sales").append(sales(4, start=20).append_column("channel", pa.array(["web"] * 4)))
        with pytest.raises(SchemaChanged, match="added channel"):
            lake.publish()
    assert rows(mysql_url, f"SELECT count(*) FROM {database}.sales") == [(20,)]


def test_a_violated_key_keeps_the_previous_table(tmp_path: Path, database: str, mysql_url: str) -> None:
    root = project(tmp_path, database, "{primary_key: [order_day]}", kind="mysql", role="business")
    with Lake.open(root) as lake:
        gold_table(lake, sales(4))
        lake.publish()
        lake.warehouse.load("gold.sales").append(sales(4, start=4))
        with pytest.raises(PublishError, match=r"previous table is unchanged.*Duplicate") as failed:
            lake.publish()
        assert failed.value.exit_code == 3
    assert rows(mysql_url, f"SELECT count(*), max(email) FROM {database}.sales") == [(4, "***")]  # masked
    tables = rows(mysql_url, f"SHOW TABLES FROM {database}")
    assert sorted(t for (t,) in tables) == ["lakestack_publish_state", "sales"]  # no staging table left


def test_wrong_credentials_exit_3_with_one_line(tmp_path: Path, database: str, mysql_url: str) -> None:
    root = project(tmp_path, database, "{}", kind="mysql")
    with Lake.open(root) as lake:
        gold_table(lake, sales(10))
    parts = urlsplit(mysql_url)
    bad = f"mysql://no_such_user:Hunter2Secret@{parts.hostname}:{parts.port or 3306}/test"
    env = {**os.environ, "PUBLISH_TEST_URL": bad, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("LAKESTACK_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(root), "publish"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr + done.stdout
    assert "Hunter2Secret" not in done.stderr + done.stdout
    assert "cannot be reached" in done.stderr

"""Publishing Gold to a real PostgreSQL: replace with an atomic swap, incremental by day and by key,
no-op on the same snapshot, failures that keep the previous table, readers during swaps, masking,
and wrong credentials. Each test publishes into its own schema and drops it after."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack import Lake
from lakestack.publish import PublishError, SchemaChanged
from publish_support import DAYS, gold_table, project, sales
from tests_support import service_url

pytestmark = pytest.mark.integration
psycopg = pytest.importorskip("psycopg")
pytest.importorskip("adbc_driver_postgresql")


@pytest.fixture(scope="module")
def postgres_url() -> str:
    return service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def schema(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"pub_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("PUBLISH_TEST_URL", postgres_url)
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


def statuses(result: Any) -> list[tuple[str, str, int | None]]:
    return [(p.status, p.mode, p.rows) for p in result.tables]


def test_replace_swaps_in_the_new_table_and_the_same_snapshot_is_unchanged(
    tmp_path: Path, schema: str, postgres_url: str
) -> None:
    root = project(tmp_path, schema, "{primary_key: [order_id], indexes: [[order_day]]}")
    with Lake.open(root) as lake:
        gold_table(lake, sales(1000))
        assert statuses(lake.publish()) == [("published", "replace", 1000)]
        assert statuses(lake.publish(["sales"])) == [("unchanged", "replace", 0)]
        lake.warehouse.load("gold.sales").append(sales(500, start=1000))
        assert statuses(lake.publish()) == [("published", "replace", 1500)]
        snapshot = lake.warehouse.load("gold.sales").current_snapshot().snapshot_id
    assert rows(postgres_url, f"SELECT count(*), count(DISTINCT order_id) FROM {schema}.sales") == [(1500, 1500)]
    indexes = rows(postgres_url, f"SELECT indexname FROM pg_indexes WHERE schemaname = '{schema}' ORDER BY 1")
    assert [i for (i,) in indexes] == ["lakestack_publish_state_pkey", "sales_order_day_idx", "sales_pkey"]
    state = rows(postgres_url, f"SELECT dataset, snapshot_id, rows FROM {schema}.lakestack_publish_state")
    assert state == [("gold.sales", snapshot, 1500)]
    with Lake.open(root) as lake:  # each publish is a `publish` job of a run, with the table as its output
        jobs = lake.query("SELECT job, job_type, status, rows_written FROM _lakestack.runs WHERE job_type = 'publish'")
    assert sorted(jobs.to_pylist(), key=lambda r: r["rows_written"]) == [
        {"job": "publish.pg.gold.sales", "job_type": "publish", "status": "COMPLETE", "rows_written": 0},
        {"job": "publish.pg.gold.sales", "job_type": "publish", "status": "COMPLETE", "rows_written": 1000},
        {"job": "publish.pg.gold.sales", "job_type": "publish", "status": "COMPLETE", "rows_written": 1500},
    ]


def test_incremental_replaces_only_the_changed_days(tmp_path: Path, schema: str, postgres_url: str) -> None:
    from pyiceberg.expressions import EqualTo

    root = project(tmp_path, schema, "{mode: incremental, primary_key: [order_id]}")
    with Lake.open(root) as lake:
        table = gold_table(lake, sales(400))
        assert statuses(lake.publish()) == [("published", "replace", 400)]  # the first publish creates the table
        changed = sales(400, amount="9.99").filter(pa.compute.equal(sales(400)["order_day"], pa.scalar(DAYS[1])))
        table.overwrite(changed.slice(0, 60), overwrite_filter=EqualTo("order_day", DAYS[1].isoformat()))
        assert statuses(lake.publish()) == [("published", "incremental", 60)]  # one day read and written
        assert statuses(lake.publish()) == [("unchanged", "incremental", 0)]
    by_day = rows(postgres_url, f"SELECT order_day, count(*), max(amount) FROM {schema}.sales GROUP BY 1 ORDER BY 1")
    assert by_day == [
        (DAYS[0], 100, Decimal("1.50")),
        (DAYS[1], 60, Decimal("9.99")),  # the day's 100 rows replaced by its new 60
        (DAYS[2], 100, Decimal("1.50")),
        (DAYS[3], 100, Decimal("1.50")),
    ]


def test_incremental_upserts_by_key(tmp_path: Path, schema: str, postgres_url: str) -> None:
    from pyiceberg.expressions import EqualTo

    root = project(tmp_path, schema, "{mode: incremental, by: key, primary_key: [order_id]}")
    with Lake.open(root) as lake:
        table = gold_table(lake, sales(400))
        lake.publish()
        day = sales(400, amount="7.00").filter(pa.compute.equal(sales(400)["order_day"], pa.scalar(DAYS[2])))
        extra = sales(1, start=402, amount="3.00")  # a new key on the same day
        table.overwrite(
            pa.concat_tables([day, extra.cast(day.schema)]), overwrite_filter=EqualTo("order_day", DAYS[2].isoformat())
        )
        assert statuses(lake.publish()) == [("published", "incremental", 101)]
    assert rows(postgres_url, f"SELECT count(*) FROM {schema}.sales") == [(401,)]
    assert rows(postgres_url, f"SELECT amount FROM {schema}.sales WHERE order_id = 'O0000002'") == [(Decimal("7.00"),)]
    assert rows(postgres_url, f"SELECT amount FROM {schema}.sales WHERE order_id = 'O0000001'") == [(Decimal("1.50"),)]


def test_incremental_refuses_a_changed_schema_and_replace_swaps_it(
    tmp_path: Path, schema: str, postgres_url: str
) -> None:
    from pyiceberg.types import StringType

    root = project(tmp_path, schema, "{mode: incremental, primary_key: [order_id]}")
    with Lake.open(root) as lake:
        table = gold_table(lake, sales(200))
        lake.publish()
        with table.update_schema() as update:
            update.add_column("channel", StringType())
        table = lake.warehouse.load("gold.sales")
        more = sales(4, start=200).append_column("channel", pa.array(["web"] * 4))
        table.append(more)
        with pytest.raises(SchemaChanged, match=r"added channel \(text\)") as refused:
            lake.publish()
        assert refused.value.exit_code == 2
    assert rows(postgres_url, f"SELECT count(*) FROM {schema}.sales") == [(200,)]  # untouched
    project(tmp_path, schema, "{primary_key: [order_id]}")  # replace: the new columns swap in at once
    with Lake.open(root) as lake:
        assert statuses(lake.publish()) == [("published", "replace", 204)]
    assert rows(postgres_url, f"SELECT count(channel) FROM {schema}.sales") == [(4,)]


def test_a_violated_key_keeps_the_previous_table(tmp_path: Path, schema: str, postgres_url: str) -> None:
    root = project(tmp_path, schema, "{primary_key: [order_day]}")  # not unique once there are two rows a day
    with Lake.open(root) as lake:
        gold_table(lake, sales(4))
        lake.publish()
        lake.warehouse.load("gold.sales").append(sales(4, start=4))
        with pytest.raises(PublishError, match=r"previous table is unchanged.*(duplicate|unique)") as failed:
            lake.publish()
        assert failed.value.exit_code == 3
    assert rows(postgres_url, f"SELECT count(*) FROM {schema}.sales") == [(4,)]
    assert leftovers(postgres_url, schema) == []


def leftovers(url: str, schema: str) -> list[str]:
    """Staging tables a publish left behind (none, whatever happened)."""
    found = rows(
        url, f"SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = '{schema}'"
    )
    return sorted(name for (name,) in found if name.startswith("_ls_"))


def test_a_connection_killed_mid_publish_keeps_the_previous_table(
    tmp_path: Path, schema: str, postgres_url: str
) -> None:
    """A reader holding the table makes the publish wait at the swap, after its load; then its
    connection is terminated from another session."""
    root = project(tmp_path, schema, "{primary_key: [order_id]}")
    with Lake.open(root) as lake:
        gold_table(lake, sales(300))
        lake.publish()
        lake.warehouse.load("gold.sales").append(sales(20_000, start=300))
        with psycopg.connect(postgres_url) as holder, psycopg.connect(postgres_url, autocommit=True) as killer:
            holder.execute(f"SELECT count(*) FROM {schema}.sales")  # holds ACCESS SHARE until it ends
            stopper = threading.Thread(target=terminate_waiting_publisher, args=(killer,))
            stopper.start()
            with pytest.raises(PublishError, match="previous table is unchanged") as failed:
                lake.publish()
            stopper.join(timeout=30)
            holder.rollback()
        assert failed.value.exit_code == 3
    assert rows(postgres_url, f"SELECT count(*) FROM {schema}.sales") == [(300,)]
    state = rows(postgres_url, f"SELECT rows FROM {schema}.lakestack_publish_state")
    assert state == [(300,)]
    assert leftovers(postgres_url, schema) == []


def terminate_waiting_publisher(con: Any) -> None:
    for _ in range(3000):
        found = con.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'lakestack-publish' AND wait_event_type = 'Lock'"
        ).fetchall()
        if found:
            con.execute("SELECT pg_terminate_backend(%s)", (found[0][0],))
            return
        threading.Event().wait(0.01)


def test_readers_during_swaps_never_see_an_empty_or_partial_table(
    tmp_path: Path, schema: str, postgres_url: str
) -> None:
    root = project(tmp_path, schema, "{primary_key: [order_id]}")
    sizes = [20_000, 30_000]
    seen: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            while not stop.is_set():
                try:
                    seen.append(con.execute(f"SELECT count(*) FROM {schema}.sales").fetchone()[0])
                except psycopg.Error as exc:
                    errors.append(str(exc))

    with Lake.open(root) as lake:
        table = gold_table(lake, sales(sizes[0]), partitioned=False)
        lake.publish()
        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(6):
                table.overwrite(sales(sizes[(i + 1) % 2]))
                assert statuses(lake.publish())[0][0] == "published"
        finally:
            stop.set()
            reader.join()
    assert errors == []
    assert len(seen) > 6
    assert set(seen) <= set(sizes)


def test_the_blocks_role_masks_what_is_published(tmp_path: Path, schema: str, postgres_url: str) -> None:
    root = project(tmp_path, schema, "{primary_key: [order_id]}", role="business")
    with Lake.open(root) as lake:
        gold_table(lake, sales(10))
        lake.publish()
    assert rows(postgres_url, f"SELECT DISTINCT email FROM {schema}.sales") == [("***",)]
    assert rows(postgres_url, f"SELECT count(DISTINCT order_id) FROM {schema}.sales") == [(10,)]


def test_wrong_credentials_exit_3_with_one_line(tmp_path: Path, schema: str, postgres_url: str) -> None:
    root = project(tmp_path, schema, "{}")
    with Lake.open(root) as lake:
        gold_table(lake, sales(10))
    parts = postgres_url.split("://", 1)[1].rsplit("@", 1)[-1]
    bad = f"postgresql://no_such_user:Hunter2Secret@{parts}"
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
    assert len(done.stderr.strip().splitlines()) <= 2  # one line (wrapped at most once)
    assert rows(postgres_url, f"SELECT to_regclass('{schema}.sales') IS NULL") == [(True,)]


def test_run_publishes_after_gold_gates_and_skips_what_a_gate_blocked(
    tmp_path: Path, schema: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Northwind (small, its last day breaking the daily revenue check): `lake.run()` publishes
    the Gold marts whose gates passed, as `business`; without the URL secret the optional target
    is skipped with a note."""
    import yaml

    from lake_support import small_northwind
    from lakestack.examples.northwind import generate_northwind

    root = small_northwind(tmp_path / "nw", orders=200, days=2)
    for folder in (root / "landing").iterdir():
        for file in folder.iterdir():
            file.unlink()
    generate_northwind(root, orders=200, seed=11, days=2, break_gold=True)
    config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
    config["publish"]["analytics"]["schema"] = schema
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("NORTHWIND_POSTGRES_URL", postgres_url)
    with Lake.open(root) as lake:
        report = lake.run()
        facts = lake.table_info("gold.fact_sales").rows
    assert "gold.daily_order_metrics" in report.blocked
    done = {p.dataset: (p.status, p.note) for p in report.published}
    assert done == {
        "gold.fact_sales": ("published", None),
        "gold.daily_order_metrics": ("skipped", "its quality gate failed"),
        "gold.dim_customers": ("published", None),
    }
    assert rows(postgres_url, f"SELECT count(*) FROM {schema}.fact_sales") == [(facts,)]
    assert rows(postgres_url, f"SELECT DISTINCT email FROM {schema}.dim_customers") == [("***",)]
    assert rows(postgres_url, f"SELECT to_regclass('{schema}.daily_order_metrics') IS NULL") == [(True,)]
    monkeypatch.delenv("NORTHWIND_POSTGRES_URL")
    with Lake.open(root) as lake:
        again = lake.run()
    assert {p.status for p in again.published} == {"skipped"}
    assert all(
        "NORTHWIND_POSTGRES_URL" in (p.note or "") for p in again.published if p.dataset != "gold.daily_order_metrics"
    )

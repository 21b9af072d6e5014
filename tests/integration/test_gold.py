"""Gold models on real tables: dependency order, incremental = full refresh, late data, errors, query."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lakestack import Lake
from lakestack.errors import ProjectError, UsageError
from lakestack.examples.northwind import generate_northwind
from lakestack.pipeline.scaffold import copy_example

GOLD = [
    "customer_segments",
    "daily_order_metrics",
    "dim_customers",
    "dim_date",
    "dim_products",
    "fact_sales",
    "product_performance",
]


def _rows(lake: Lake, table: str) -> list[tuple[Any, ...]]:
    data = lake.read(table)
    return sorted(tuple(str(v) for v in row.values()) for row in data.to_pylist())


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Northwind landing files generated once; tests copy them in, day by day."""
    root = tmp_path_factory.mktemp("stage") / "northwind"
    copy_example("northwind", root)
    generate_northwind(root, orders=4_000, seed=3, days=8)
    return root


def _project(staged: Path, tmp_path: Path, *, until: str) -> Path:
    """A copy of the project whose landing folders hold only files dated up to `until` (YYYYMMDD)."""
    root = tmp_path / "northwind"
    shutil.copytree(staged, root, ignore=shutil.ignore_patterns("landing"))
    _land(staged, root, until)
    return root


def _land(staged: Path, root: Path, until: str) -> None:
    import re

    for path in (staged / "landing").rglob("*"):
        m = re.search(r"(\d{8})", path.name)
        if path.is_file() and (m is None or m.group(1) <= until):
            target = root / path.relative_to(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(path, target)


def test_run_builds_every_mart_in_dependency_order(staged: Path, tmp_path: Path) -> None:
    lake = Lake.open(_project(staged, tmp_path, until="20260108"))
    report = lake.run()
    built = [b.dataset.removeprefix("gold.") for b in report.built]
    assert sorted(built) == GOLD
    assert built.index("fact_sales") < built.index("daily_order_metrics")
    assert built.index("dim_products") < built.index("product_performance")
    assert {r.run_id for r in [report]} == {report.run_id}
    silver_orders = lake.query("SELECT count(*) AS n FROM silver.orders").to_pylist()[0]["n"]
    fact = lake.query("SELECT count(*) AS n, count(DISTINCT order_id) AS o FROM gold.fact_sales").to_pylist()[0]
    assert fact["n"] == silver_orders
    metrics = lake.query("SELECT sum(order_lines) AS lines FROM gold.daily_order_metrics").to_pylist()[0]
    assert metrics["lines"] == silver_orders
    usd = lake.query("SELECT DISTINCT usd_rate FROM gold.daily_order_metrics WHERE currency = 'USD'").to_pylist()
    assert [str(r["usd_rate"]) for r in usd] == ["1.00000000"]
    assert lake.query("SELECT count(*) AS n FROM gold.fact_sales WHERE usd_rate IS NULL").to_pylist()[0]["n"] == 0

    again = lake.run()
    assert all(b.mode == "skipped" for b in again.built)
    assert all(not p.changed for p in again.promoted)


def test_incremental_equals_full_refresh_and_late_data_rebuilds_old_dates(staged: Path, tmp_path: Path) -> None:
    root = _project(staged, tmp_path, until="20260105")
    lake = Lake.open(root)
    lake.run()
    before = lake.warehouse.load("gold.daily_order_metrics").current_snapshot().snapshot_id
    _land(staged, root, "20260199")  # the remaining days, with late orders for earlier dates
    report = lake.run()
    by_name = {b.dataset: b for b in report.built}
    fact = by_name["gold.fact_sales"]
    assert fact.mode == "incremental"
    late = lake.query(
        "SELECT count(*) AS n FROM silver.orders WHERE CAST(order_ts AS DATE) <= DATE '2026-01-05' "
        "AND _source_file > 'orders_20260105.csv' AND _source_file LIKE 'orders_%'"
    ).to_pylist()[0]["n"]
    assert late > 0  # the later files did carry orders for the first five days
    assert by_name["gold.daily_order_metrics"].mode == "incremental"
    assert lake.warehouse.load("gold.daily_order_metrics").current_snapshot().snapshot_id != before

    incremental = {t: _rows(lake, f"gold.{t}") for t in GOLD}
    lake.build(full_refresh=True)
    full = {t: _rows(lake, f"gold.{t}") for t in GOLD}
    for table in GOLD:
        assert incremental[table] == full[table], table


def test_model_errors_name_the_file_and_line(tmp_path: Path, staged: Path) -> None:
    root = _project(staged, tmp_path, until="20260101")
    gold = root / "models" / "gold"
    lake = Lake.open(root)
    lake.ingest()
    lake.promote()
    (gold / "broken.sql").write_text(
        "/* ---\ndescription: x\n--- */\nSELECT\n    order_id,\n    no_such_column\nFROM silver.orders\n"
    )
    with pytest.raises(ProjectError, match=r"models/gold/broken.sql:\d+: model broken failed: Binder Error"):
        lake.build(["broken"])
    (gold / "broken.sql").write_text("SELECT order_id FROM silver.orders WHERE\n")
    with pytest.raises(ProjectError, match=r"models/gold/broken.sql:\d+: SQL does not parse"):
        lake.build(["broken"])
    (gold / "broken.sql").write_text("SELECT 1 AS x FROM gold.loop_b")
    (gold / "loop_b.sql").write_text("SELECT 1 AS x FROM gold.broken")
    with pytest.raises(ProjectError, match="cycle: broken → loop_b → broken"):
        lake.build()
    (gold / "loop_b.sql").unlink()
    (gold / "broken.sql").write_text("/* ---\nmaterialized: incremental\n--- */\nSELECT 1 AS x FROM silver.orders")
    with pytest.raises(ProjectError, match="needs partition_by"):
        lake.build(["broken"])
    (gold / "broken.sql").write_text("SELECT 1 AS x FROM silver.orders")
    (gold / "broken.yaml").write_text("description: fine\nmaterialised: full\n")
    with pytest.raises(ProjectError, match=r"models/gold/broken.yaml:2 \(materialised\): unknown key 'materialised'"):
        lake.build(["broken"])
    (gold / "broken.yaml").write_text("description: a sidecar\nowner: me\n")
    [result] = lake.build(["broken"])
    assert result.rows_written == lake.table_info("silver.orders").rows
    assert lake.warehouse.load("gold.broken").properties["lakestack.owner"] == "me"


def test_query_is_read_only(staged: Path, tmp_path: Path) -> None:
    lake = Lake.open(_project(staged, tmp_path, until="20260101"))
    lake.ingest(["orders"])
    assert lake.query("SELECT count(*) AS n FROM bronze.orders").to_pylist()[0]["n"] > 0
    for sql, message in [
        ("DELETE FROM bronze.orders", "only one read-only SELECT"),
        ("SELECT 1; SELECT 2", "only one read-only SELECT"),
        ("COPY bronze.orders TO '/tmp/x.csv'", "only one read-only SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", r"reads outside the lake: read_csv\('/etc/passwd'\) is refused"),
        ("UPDATE EXTENSIONS", r"only one read-only SELECT is allowed in the query \(got: UPDATE EXTENSIONS\)"),
        ("SELECT * FROM nope.nothing", "the query failed"),
        ("SELEC 1", "does not parse"),
    ]:
        with pytest.raises(UsageError, match=message):
            lake.query(sql)


def test_pii_classes_flow_from_contracts_into_gold(staged: Path, tmp_path: Path) -> None:
    lake = Lake.open(_project(staged, tmp_path, until="20260101"))
    lake.run()
    columns = {c["column"]: c["pii"] for c in lake.schema("gold.dim_customers")}
    assert columns["email"] == "email" and columns["phone"] == "phone" and columns["first_name"] == "name"
    assert columns["country"] is None and columns["orders"] is None
    assert all(c["pii"] is None for c in lake.schema("gold.daily_order_metrics"))


def test_a_model_reaching_outside_the_lake_is_refused_and_builds_nothing(staged: Path, tmp_path: Path) -> None:
    root = _project(staged, tmp_path, until="20260101")
    lake = Lake.open(root)
    lake.ingest(["orders"])
    lake.promote(["orders"])
    gold = root / "models" / "gold"
    for sql, message in [
        ("SELECT * FROM read_text('/proc/self/environ')", r"reads outside the lake: read_text\('/proc/self/environ'\)"),
        (
            "SELECT o.order_id, p.* FROM silver.orders o, read_csv('/etc/passwd') p",
            r"reads outside the lake: read_csv\('/etc/passwd'\)",
        ),
    ]:
        (gold / "evil.sql").write_text(f"{sql}\n")
        with pytest.raises(ProjectError, match=r"models/gold/evil.sql:1: model evil " + message):
            lake.build(["evil"])
        assert not lake.warehouse.exists("gold.evil")


def test_a_model_over_its_time_limit_is_a_run_error(
    staged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lakestack.engine.base as base
    from lakestack.errors import RunError

    root = _project(staged, tmp_path, until="20260101")
    lake = Lake.open(root)
    lake.ingest(["orders"])
    lake.promote(["orders"])
    (root / "models" / "gold" / "slow.sql").write_text(
        "SELECT count(*) AS n FROM silver.orders, range(1000000000000) r WHERE r.range < 0\n"
    )
    monkeypatch.setattr(base, "MODEL_LIMITS", base.SqlLimits(timeout_s=1.0))
    with pytest.raises(RunError, match=r"models/gold/slow.sql: model slow ran longer than 1 s and was stopped") as err:
        lake.build(["slow"])
    assert err.value.exit_code == 3 and not lake.warehouse.exists("gold.slow")

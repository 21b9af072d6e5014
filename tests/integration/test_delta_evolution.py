"""Contract evolution on Delta tables (ADR 35): a compatible version that adds a column evolves
Bronze and Silver in place (old rows read it as null); a widening rewrites the tables (delta-rs
changes no type in place) and keeps their checkpoints."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, copy_project, small_northwind
from lakestack import Lake

pytest.importorskip("deltalake")

# as tests/integration/test_contract_evolution.py writes its versions and files
WIDEN = ('{name: unit_price, type: "decimal(12,2)"', '{name: unit_price, type: "decimal(14,2)"')
COUPON = "  - {name: coupon, type: string, max_length: 20}\n"


def write_version(root: Path, version: int, *edits: tuple[str, str], extra: str = "") -> None:
    text = (
        (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8").replace("version: 1", f"version: {version}")
    )
    for old, new in edits:
        text = text.replace(old, new)
    (root / "contracts" / f"orders.v{version}.yaml").write_text(text + extra, encoding="utf-8")


def land_with_coupons(root: Path, name: str, prefix: str) -> int:
    """A v2 orders file: a day's first 20 lines under new order ids, with a coupon column."""
    first = sorted((root / "landing" / "orders").glob("orders_*.csv"))[0]
    rows = list(csv.reader(first.open(encoding="utf-8")))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*rows[0], "coupon"])
    for i, row in enumerate(rows[1:21]):
        writer.writerow([f"ORD-{prefix}{row[0][-7:]}", *row[1:], f"SAVE{i}"])
    (root / "landing" / "orders" / name).write_text(out.getvalue(), encoding="utf-8")
    return len(rows[1:21])


def query(root: Path, sql: str) -> list[dict[str, Any]]:
    result = cli(root, "query", sql, "--json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)["rows"]
    return found


@pytest.fixture(scope="module")
def evolved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Northwind on Delta run with orders v1, then v2 (a coupon column) and a v2 file, run again."""
    base = tmp_path_factory.mktemp("delta-evolution")
    root = copy_project(small_northwind(base / "pristine", orders=300, days=2), base / "nw", table_format="delta")
    first = cli(root, "run")
    assert first.returncode in (0, 4), first.stderr  # 4: the example's gate may block a Gold mart
    write_version(root, 2, extra=COUPON)
    landed = land_with_coupons(root, "orders_20300101.csv", "8")
    second = cli(root, "run")
    assert second.returncode in (0, 4), second.stderr
    return root, landed


def test_bronze_and_silver_gain_the_column_and_name_the_new_version(evolved: tuple[Path, int]) -> None:
    root, _ = evolved
    warehouse = Lake.open(root).warehouse
    for identifier in ("bronze.orders", "silver.orders"):
        table = warehouse.load(identifier)
        assert "coupon" in table.arrow_schema().names, identifier
        assert table.metadata.properties["lakestack.contract"] == "orders.v2"


def test_old_rows_read_the_new_column_as_null_and_silver_and_gold_go_on(evolved: tuple[Path, int]) -> None:
    root, landed = evolved
    rows = query(
        root,
        "SELECT _contract_version AS v, count(*) AS n, count(coupon) AS coupons "
        "FROM bronze.orders GROUP BY 1 ORDER BY 1",
    )
    assert [(r["v"], r["coupons"]) for r in rows] == [(1, 0), (2, landed)] and rows[0]["n"] > landed
    [silver] = query(root, "SELECT count(coupon) AS coupons, count(*) AS n FROM silver.orders")
    assert silver["coupons"] == landed and silver["n"] > landed
    [gold] = query(root, "SELECT count(*) AS n FROM gold.fact_sales WHERE order_id LIKE 'ORD-8%'")
    assert gold["n"] == landed


def test_a_widening_rewrites_bronze_and_silver_and_nothing_is_ingested_or_promoted_twice(
    evolved: tuple[Path, int],
) -> None:
    """orders v3 widens unit_price (decimal(12,2) → (14,2)): delta-rs cannot change a type in place,
    so Bronze and Silver are rewritten in one commit each, carrying their checkpoints. A re-ingest
    lands nothing, a promote reads nothing, and a new file's rows are promoted once."""
    from lakestack.storage.checkpoints import FileLedger, UpstreamSnapshots, read_checkpoint
    from lakestack.storage.maintenance import is_rewrite

    root, _ = evolved
    warehouse = Lake.open(root).warehouse
    before = {t: sorted(map(repr, warehouse.load(t).scan().to_arrow().to_pylist())) for t in ("bronze.orders",)}
    ledger = read_checkpoint(warehouse.load("bronze.orders"), FileLedger)
    silver_rows = warehouse.load("silver.orders").scan().to_arrow().num_rows
    write_version(root, 3, WIDEN, extra=COUPON)

    done = cli(root, "ingest", "orders")  # evolves Bronze to v3; every landing file is known
    assert done.returncode == 0, done.stdout + done.stderr
    bronze = Lake.open(root).warehouse.load("bronze.orders")
    assert str(bronze.arrow_schema().field("unit_price").type) == "decimal128(14, 2)"
    assert bronze.metadata.properties["lakestack.contract"] == "orders.v3"
    assert any(is_rewrite(s) for s in bronze.metadata.snapshots)
    assert read_checkpoint(bronze, FileLedger) == ledger
    after = sorted(map(repr, bronze.scan().to_arrow().to_pylist()))
    assert len(after) == len(before["bronze.orders"])
    version = bronze.version
    again = cli(root, "ingest", "orders")
    assert again.returncode == 0, again.stderr
    assert Lake.open(root).warehouse.load("bronze.orders").version == version  # idempotent after the rewrite

    lake = Lake.open(root)
    [result] = lake.promote(["orders"])  # evolves Silver to v3 (a rewrite), then reads what is new: nothing
    assert (result.bronze_rows, result.inserted, result.updated) == (0, 0, 0)
    silver = Lake.open(root).warehouse.load("silver.orders")
    assert str(silver.arrow_schema().field("unit_price").type) == "decimal128(14, 2)"
    assert silver.scan().to_arrow().num_rows == silver_rows
    checkpoint = read_checkpoint(silver, UpstreamSnapshots)
    assert checkpoint.snapshots["bronze.orders"] == version

    landed = land_with_coupons(root, "orders_20300102.csv", "7")
    assert cli(root, "ingest", "orders").returncode == 0
    [result] = Lake.open(root).promote(["orders"])
    assert (result.bronze_rows, result.inserted) == (landed, landed)
    [silver_count] = query(root, "SELECT count(*) AS n FROM silver.orders")
    assert silver_count["n"] == silver_rows + landed

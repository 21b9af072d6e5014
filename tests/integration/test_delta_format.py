"""`format: delta`: the Northwind pipeline on Delta tables (delta-rs) equals the Iceberg run (ADR 35)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack import Lake
from lakestack.examples.northwind import generate_northwind
from lakestack.pipeline.scaffold import copy_example

deltalake = pytest.importorskip("deltalake")


def _project(base: Path, fmt: str) -> Path:
    root = base / fmt
    copy_example("northwind", root)
    generate_northwind(root, orders=3_000, seed=7, days=8)
    if fmt == "delta":
        project = root / "lakestack.yaml"
        text = project.read_text()
        assert "    engine: duckdb\n" in text
        project.write_text(text.replace("    engine: duckdb\n", "    engine: duckdb\n    format: delta\n", 1))
    return root


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The same Northwind files run once on Iceberg and once on Delta."""
    base = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt in ("iceberg", "delta"):
        lake = Lake.open(_project(base, fmt))
        report = lake.run()
        out[fmt] = (lake, report)
    yield out
    for lake, _ in out.values():
        lake.close()


def _content(data: pa.Table) -> tuple[int, str]:
    """Rows (without lakestack's `_` columns: run ids, ingestion times) as a sorted-row digest."""
    columns = sorted(c for c in data.column_names if not c.startswith("_"))
    rows = sorted(tuple(str(r[c]) for c in columns) for r in data.select(columns).to_pylist())
    return len(rows), hashlib.sha256(repr((columns, rows)).encode()).hexdigest()


def _tables(lake: Lake, *layers: str) -> list[str]:
    return [t for t in lake.warehouse.tables() if t.split(".")[0] in layers]


def test_silver_and_gold_on_delta_equal_the_iceberg_run(lakes: dict[str, Any]) -> None:
    iceberg, delta = lakes["iceberg"][0], lakes["delta"][0]
    names = _tables(iceberg, "silver", "gold")
    assert names and _tables(delta, "silver", "gold") == names
    for name in names:
        got = _content(delta.warehouse.load(name).scan().to_arrow())
        assert got[0] > 0, name
        assert got == _content(iceberg.warehouse.load(name).scan().to_arrow()), name


def test_bronze_and_quarantine_counts_reconcile_as_on_iceberg(lakes: dict[str, Any]) -> None:
    (iceberg, ireport), (delta, dreport) = lakes["iceberg"], lakes["delta"]
    names = _tables(iceberg, "bronze", "quarantine")
    assert _tables(delta, "bronze", "quarantine") == names
    for name in names:
        rows = delta.warehouse.load(name).scan().to_arrow().num_rows
        assert rows == iceberg.warehouse.load(name).scan().to_arrow().num_rows, name
    for d, i in zip(dreport.ingest.sources, ireport.ingest.sources, strict=True):
        assert (d.source, d.rows_in, d.landed, d.quarantined) == (i.source, i.rows_in, i.landed, i.quarantined)
        assert d.rows_in == d.landed + d.quarantined


def test_tables_are_delta_tables_whose_commits_carry_the_checkpoint(lakes: dict[str, Any]) -> None:
    lake = lakes["delta"][0]
    root = lake.project.root / "warehouse"
    plain = deltalake.DeltaTable(str(root / "bronze" / "orders"))
    commit = plain.history()[0]  # newest first
    assert commit["lakestack.run-id"] == lakes["delta"][1].run_id
    assert '"ledger"' in commit["lakestack.state"]  # the file ledger's side file, carried forward
    assert plain.transaction_version("lakestack") == plain.version()  # the txn action of lakestack's commit
    ledger = commit["lakestack.state"].split('"path":"')[1].split('"')[0]
    assert "/_lakestack/" in ledger and Path(ledger.removeprefix("file://")).is_file()
    assert not list((lake.project.root / "warehouse").glob("*.db"))  # no Iceberg table folders


def test_a_second_ingest_lands_nothing(lakes: dict[str, Any]) -> None:
    lake = lakes["delta"][0]
    before = {t: lake.warehouse.load(t).version for t in _tables(lake, "bronze", "quarantine")}
    again = lake.ingest()
    assert again.landed == 0 and again.quarantined == 0
    assert {f.status for s in again.sources for f in s.files} == {"skipped"}
    assert {t: lake.warehouse.load(t).version for t in before} == before  # nothing committed


def test_delta_tables_open_in_plain_deltalake_and_polars(lakes: dict[str, Any]) -> None:
    lake = lakes["delta"][0]
    root = lake.project.root / "warehouse"
    for name in ("silver.orders", "gold.daily_order_metrics", "gold.fact_sales"):
        path = str(root.joinpath(*name.split(".")))
        ours = _content(lake.warehouse.load(name).scan().to_arrow())
        assert _content(pa.table(deltalake.DeltaTable(path).to_pyarrow_table())) == ours, name
        polars = pytest.importorskip("polars")
        assert _content(polars.read_delta(path).to_arrow()) == ours, name


def test_query_answers_the_same_on_both_formats(lakes: dict[str, Any]) -> None:
    sql = (
        "SELECT o.customer_id, count(*) AS n, sum(o.quantity) AS q FROM silver.orders o "
        "JOIN silver.customers c USING (customer_id) GROUP BY 1 ORDER BY 1"
    )
    iceberg, delta = lakes["iceberg"][0], lakes["delta"][0]
    got = delta.query(sql)
    assert got.num_rows > 0 and got.to_pylist() == iceberg.query(sql).to_pylist()


def _late_orders(root: Path) -> set[int]:
    """A new orders file: two earlier order lines re-delivered as returned, and one new order on a
    new day. The days (since 1970-01-01) of their `order_ts`: the Silver partitions they touch."""
    import csv
    from datetime import date, datetime

    landing = root / "landing" / "orders"
    rows = []
    for name in ("orders_20260102.csv", "orders_20260105.csv"):
        with (landing / name).open(newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows.append({**next(reader), "status": "returned", "updated_at": "2026-01-20T00:00:00Z"})
    rows.append({**rows[0], "order_id": "ORD-99999999", "order_ts": "2026-01-20T08:00:00Z", "status": "placed"})
    with (landing / "orders_20260120.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)
    epoch = date(1970, 1, 1)
    return {(datetime.fromisoformat(r["order_ts"].replace("Z", "+00:00")).date() - epoch).days for r in rows}


def _files(table: Any) -> dict[str, int]:
    return {t.file.file_path: t.file.partition[0] for t in table.scan().plan_files()}


def test_late_updates_merge_only_their_partitions_and_still_equal_iceberg(lakes: dict[str, Any]) -> None:
    iceberg, delta = lakes["iceberg"][0], lakes["delta"][0]
    days = _late_orders(delta.project.root)
    assert _late_orders(iceberg.project.root) == days  # the same files: the projects were generated alike
    before = _files(delta.warehouse.load("silver.orders"))
    for lake in (iceberg, delta):
        report = lake.run()
        merged = next(p for p in report.promoted if p.dataset == "silver.orders")
        assert (merged.inserted, merged.updated) == (1, 2)
    after = _files(delta.warehouse.load("silver.orders"))
    gone = {day for path, day in before.items() if path not in after}
    new = {day for path, day in after.items() if path not in before}
    assert gone | new == days and len(days) == 3  # only the touched day partitions were rewritten
    for name in _tables(iceberg, "silver", "gold"):
        got = _content(delta.warehouse.load(name).scan().to_arrow())
        assert got == _content(iceberg.warehouse.load(name).scan().to_arrow()), name

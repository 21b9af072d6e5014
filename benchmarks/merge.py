"""Silver MERGE benchmarks: lakestack's partition rewrite vs pyiceberg upsert vs delta-rs merge."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CONTRACT = """\
source: orders
version: 1
key: [order_id]
event_time: order_ts
file: {pattern: "orders_{date:%Y%m%d}.csv", format: csv}
columns:
  - {name: order_id, type: string, nullable: false}
  - {name: customer_id, type: string, nullable: false}
  - {name: quantity, type: integer, nullable: false}
  - {name: unit_price, type: "decimal(12,2)", nullable: false}
  - {name: currency, type: string, nullable: false}
  - {name: status, type: string, nullable: false}
  - {name: order_ts, type: timestamp, nullable: false}
  - {name: updated_at, type: timestamp, nullable: false}
"""
PROJECT = """\
name: bench
sources:
  orders: {contract: orders}
datasets:
  orders: {layer: silver, order_by: [updated_at], normalize: {trim: false}}
"""
START = datetime(2026, 1, 1, tzinfo=UTC)


def orders(ids: np.ndarray, days: int, rng: np.random.Generator, day_offset: int = 0, version: int = 0) -> pa.Table:
    """Bronze-shaped order rows (contract columns + lineage) for the given integer ids."""
    n = len(ids)
    seconds = rng.integers(0, 86_400, n) + 86_400 * (day_offset + rng.integers(0, days, n))
    ts = pa.array(
        (np.datetime64(START.replace(tzinfo=None), "us") + seconds.astype("timedelta64[s]")).astype("datetime64[us]"),
        pa.timestamp("us", tz="UTC"),
    )
    updated = pc.add(ts, pa.scalar(timedelta(hours=version), pa.duration("us")))
    price = pc.round(pa.array(rng.integers(100, 50_000, n) / 100.0), 2).cast(pa.decimal128(12, 2))
    return pa.table(
        {
            "order_id": pc.binary_join_element_wise("ORD-", pc.utf8_lpad(pa.array(ids).cast(pa.string()), 10, "0"), ""),
            "customer_id": pc.binary_join_element_wise(
                "C", pa.array(rng.integers(0, 100_000, n)).cast(pa.string()), ""
            ),
            "quantity": pa.array(rng.integers(1, 20, n), pa.int64()),
            "unit_price": price,
            "currency": pa.array(np.array(["USD", "EUR", "GBP"])[rng.integers(0, 3, n)]),
            "status": pa.array(np.array(["placed", "paid", "shipped"])[rng.integers(0, 3, n)]),
            "order_ts": ts,
            "updated_at": updated,
            "_ingested_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
            "_source_file": pa.array(["bench.csv"] * n),
            "_source_line": pa.array(np.arange(n), pa.int64()),
        }
    )


def change_set(
    base: pa.Table,
    n_updates: int,
    n_inserts: int,
    first_new_id: int,
    days: int,
    insert_day: int,
    rng: np.random.Generator,
    update_pool: pa.Table | None = None,
) -> pa.Table:
    """Updates (existing keys, same event time, newer version) plus inserts (new keys)."""
    pool = update_pool if update_pool is not None else base
    picked = pool.take(pa.array(rng.choice(pool.num_rows, n_updates, replace=False)))
    updates = picked.set_column(picked.schema.get_field_index("status"), "status", pa.array(["delivered"] * n_updates))
    updates = updates.set_column(
        updates.schema.get_field_index("updated_at"),
        "updated_at",
        pc.add(updates["updated_at"], pa.scalar(timedelta(days=1), pa.duration("us"))),
    )
    inserts = orders(np.arange(first_new_id, first_new_id + n_inserts), days, rng, day_offset=insert_day)
    return pa.concat_tables([updates, inserts])


def lakestack_silver(root: Path, base: pa.Table, properties: dict[str, str] | None = None) -> Any:
    """The benchmark's Silver table loaded with `base`; `properties`: table properties set first
    (e.g. the Parquet codec)."""
    from lakestack import Lake
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "orders.v1.yaml").write_text(CONTRACT)
    (root / "lakestack.yaml").write_text(PROJECT)
    lake = Lake.open(root)
    model = model_from_config("orders", lake.project)
    if properties:
        with lake.warehouse.silver_table(model).transaction() as tx:
            tx.set_properties(properties)
    SilverPromotion(model, lake.warehouse, "load").merge_arrow(base, "base-load")
    return lake, model


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_merge(base_rows: int, change_rows: int, repeat: int, peers: bool = True) -> list[dict[str, Any]]:
    from lakestack.pipeline.silver import SilverPromotion

    rng = np.random.default_rng(42)
    days = 30
    base = orders(np.arange(base_rows), days, rng)
    changes = change_set(base, change_rows // 2, change_rows - change_rows // 2, base_rows, days, 0, rng)
    label = f"{change_rows:,} into {base_rows:,}"
    rows = []
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            lake, model = lakestack_silver(Path(tmp) / "p", base)
            seconds, result = timed(
                lambda lake=lake, model=model: SilverPromotion(model, lake.warehouse, "bench").merge_arrow(
                    changes, "bench"
                )
            )
            assert (result.inserted, result.updated) == (change_rows - change_rows // 2, change_rows // 2), result
            assert lake.table_info("silver.orders").rows == base_rows + result.inserted
            times.append(seconds)
    rows.append(_row("merge", f"lakestack MERGE ({label})", statistics.median(times), change_rows, repeat))
    if not peers:
        return rows
    rows.append(_pyiceberg_upsert(base, changes, label, change_rows))
    rows.append(_delta_merge(base, changes, label, change_rows, repeat))
    base_s = rows[0]["median_s"]
    for row in rows:
        row["vs_lakestack"] = round(row["median_s"] / base_s, 1)
    return rows


def bench_merge_large(base_rows: int, repeat: int) -> list[dict[str, Any]]:
    """1 % change into a large table: updates of the last week's orders plus today's new orders."""
    from lakestack.pipeline.silver import SilverPromotion

    rng = np.random.default_rng(7)
    days = 365
    base = orders(np.arange(base_rows), days, rng)
    recent = base.filter(
        pc.greater_equal(base["order_ts"], pa.scalar(START + timedelta(days=days - 7), pa.timestamp("us", tz="UTC")))
    )
    change_rows = base_rows // 100
    changes = change_set(
        base, change_rows // 2, change_rows - change_rows // 2, base_rows, 1, days - 1, rng, update_pool=recent
    )
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            lake, model = lakestack_silver(Path(tmp) / "p", base)
            seconds, result = timed(
                lambda lake=lake, model=model: SilverPromotion(model, lake.warehouse, "bench").merge_arrow(
                    changes, "bench"
                )
            )
            assert result.updated == change_rows // 2, result
            times.append(seconds)
    return [
        _row(
            "merge",
            f"lakestack MERGE 1% ({change_rows:,}) into {base_rows:,}, last week touched",
            statistics.median(times),
            change_rows,
            repeat,
        )
    ]


def _pyiceberg_upsert(base: pa.Table, changes: pa.Table, label: str, change_rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        lake, _ = lakestack_silver(Path(tmp) / "p", base)
        table = lake.warehouse.load("silver.orders")
        target = table.schema().as_arrow()
        data = changes.append_column("_run_id", pa.array(["bench"] * changes.num_rows)).select(target.names)
        seconds, _ = timed(lambda: table.upsert(data.cast(target), join_cols=["order_id"]))
    return _row("merge", f"pyiceberg upsert ({label})", seconds, change_rows, 1)


def _delta_merge(base: pa.Table, changes: pa.Table, label: str, change_rows: int, repeat: int) -> dict[str, Any]:
    from deltalake import DeltaTable, write_deltalake

    def with_day(t: pa.Table) -> pa.Table:
        return t.append_column("order_day", pc.cast(t["order_ts"], pa.date32()))

    times = []
    for _ in range(repeat):
        path = Path(tempfile.mkdtemp())
        try:
            write_deltalake(str(path), with_day(base), partition_by=["order_day"])
            dt = DeltaTable(str(path))
            seconds, _ = timed(
                lambda dt=dt: (
                    dt.merge(with_day(changes), predicate="t.order_id = s.order_id", source_alias="s", target_alias="t")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                )
            )
            assert DeltaTable(str(path)).to_pyarrow_table(columns=["order_id"]).num_rows == base.num_rows + (
                change_rows - change_rows // 2
            )
            times.append(seconds)
        finally:
            shutil.rmtree(path, ignore_errors=True)
    return _row("merge", f"delta-rs merge ({label})", statistics.median(times), change_rows, repeat)


def _row(bench: str, tool: str, seconds: float, n: int, repeats: int) -> dict[str, Any]:
    return {
        "benchmark": bench,
        "tool": tool,
        "median_s": round(seconds, 3),
        "per_s": round(n / seconds),
        "repeats": repeats,
    }

"""Gold build benchmark: Northwind's fact_sales and daily_order_metrics over a large silver.orders."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

START = datetime(2026, 1, 1, tzinfo=UTC)
CURRENCIES = np.array(["USD", "EUR", "GBP", "JPY"])


def _orders(n: int, days: int, rng: np.random.Generator) -> pa.Table:
    seconds = rng.integers(0, 86_400 * days, n)
    ts = pa.array(
        (np.datetime64(START.replace(tzinfo=None), "us") + seconds.astype("timedelta64[s]")).astype("datetime64[us]"),
        pa.timestamp("us", tz="UTC"),
    )
    ids = pa.array(np.arange(n) // 2).cast(pa.string())
    return pa.table(
        {
            "order_id": pc.binary_join_element_wise("ORD-", pc.utf8_lpad(ids, 8, "0"), ""),
            "order_line": pa.array(np.arange(n) % 2 + 1, pa.int64()),
            "customer_id": pc.binary_join_element_wise(
                "C", pa.array(rng.integers(100_000, 999_999, n)).cast(pa.string()), ""
            ),
            "product_id": pc.binary_join_element_wise(
                "P", pa.array(rng.integers(10_000, 99_999, n)).cast(pa.string()), ""
            ),
            "quantity": pa.array(rng.integers(1, 20, n), pa.int64()),
            "unit_price": pc.round(pa.array(rng.integers(100, 50_000, n) / 100.0), 2).cast(pa.decimal128(12, 2)),
            "currency": pa.array(CURRENCIES[rng.integers(0, 4, n)]),
            "status": pa.array(np.array(["placed", "paid", "shipped", "cancelled"])[rng.integers(0, 4, n)]),
            "order_ts": ts,
            "updated_at": ts,
            "channel": pa.array(np.array(["web", "mobile", "store"])[rng.integers(0, 3, n)]),
            "ship_country": pa.array(np.array(["US", "GB", "DE"])[rng.integers(0, 3, n)]),
            "_ingested_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
            "_source_file": pa.array(["bench.csv"] * n),
            "_source_line": pa.array(np.arange(n), pa.int64()),
        }
    )


def _fx(days: int) -> pa.Table:
    rows = []
    for d in range(days):
        day = (START + timedelta(days=d)).date()
        for base, rate in (("EUR", "1.08"), ("GBP", "1.27"), ("JPY", "0.0067")):
            rows.append(
                {
                    "rate_date": day,
                    "base_currency": base,
                    "quote_currency": "USD",
                    "rate": rate,
                    "published_at": START + timedelta(days=d, hours=16),
                }
            )
    table = pa.Table.from_pylist(rows)
    return (
        table.set_column(3, "rate", table["rate"].cast(pa.decimal128(18, 8)))
        .append_column("_ingested_at", pa.array([datetime.now(UTC)] * len(rows), pa.timestamp("us", tz="UTC")))
        .append_column("_source_file", pa.array(["fx.csv"] * len(rows)))
        .append_column("_source_line", pa.array(range(len(rows))))
    )


def bench_gold(rows: int, repeat: int) -> list[dict[str, Any]]:
    import statistics

    from lakestack import Lake
    from lakestack.pipeline.scaffold import copy_example
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    rng = np.random.default_rng(5)
    days = 365
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_example("northwind", Path(tmp) / "northwind")
        lake = Lake.open(root)
        for name, data in (("orders", _orders(rows, days, rng)), ("fx_rates", _fx(days))):
            model = model_from_config(name, lake.project)
            SilverPromotion(model, lake.warehouse, "load").merge_arrow(data, f"load-{name}")
        times: dict[str, list[float]] = {"fact_sales": [], "daily_order_metrics": []}
        for _ in range(repeat):
            for model_name in ("fact_sales", "daily_order_metrics"):
                t0 = time.perf_counter()
                [result] = lake.build([model_name], full_refresh=True)
                times[model_name].append(time.perf_counter() - t0)
                assert result.rows_written > 0
    return [
        {
            "benchmark": "gold",
            "tool": f"lakestack build {name} (full, over {rows:,} silver.orders rows)",
            "median_s": round(statistics.median(t), 3),
            "per_s": round(rows / statistics.median(t)),
            "repeats": repeat,
        }
        for name, t in times.items()
    ]

"""Quality benchmark: the Northwind check suite of silver.orders over a large table."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def bench_quality(rows: int, repeat: int) -> list[dict[str, Any]]:
    import pyarrow as pa
    from gold import _orders

    from lakestack import Lake
    from lakestack.pipeline.scaffold import copy_example
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    rng = np.random.default_rng(9)
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_example("northwind", Path(tmp) / "northwind")
        lake = Lake.open(root)
        orders = _orders(rows, 365, rng)
        SilverPromotion(model_from_config("orders", lake.project), lake.warehouse, "load").merge_arrow(orders, "o")
        ids = pa.compute.unique(orders["customer_id"])
        customers = pa.table(
            {
                "customer_id": ids,
                "first_name": pa.nulls(len(ids), pa.string()),
                "last_name": pa.nulls(len(ids), pa.string()),
                "email": pa.nulls(len(ids), pa.string()),
                "phone": pa.nulls(len(ids), pa.string()),
                "country": pa.array(["GB"] * len(ids)),
                "segment": pa.array(["consumer"] * len(ids)),
                "marketing_opt_in": pa.array([True] * len(ids)),
                "created_at": orders["order_ts"].slice(0, len(ids)),
                "updated_at": orders["order_ts"].slice(0, len(ids)),
                "_ingested_at": orders["_ingested_at"].slice(0, len(ids)),
                "_source_file": orders["_source_file"].slice(0, len(ids)),
                "_source_line": orders["_source_line"].slice(0, len(ids)),
            }
        )
        SilverPromotion(model_from_config("customers", lake.project), lake.warehouse, "load").merge_arrow(
            customers, "c"
        )
        times, count = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            results = lake.check(["silver.orders"])
            times.append(time.perf_counter() - t0)
            count = len(results)
            assert not any(r.status == "error" for r in results), results
    return [
        {
            "benchmark": "quality",
            "tool": f"lakestack check silver.orders ({count} checks, {rows:,} rows)",
            "median_s": round(statistics.median(times), 3),
            "per_s": round(rows / statistics.median(times)),
            "repeats": repeat,
        }
    ]

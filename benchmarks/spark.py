"""DuckDB vs Spark local[2], both through lakestack, same data, same run: the Silver MERGE
(`--spark-change` into `--spark-base`) and the two Northwind Gold builds (fact_sales,
daily_order_metrics, full) over `--spark-gold` silver.orders rows. Medians of `repeat`.
The Spark session is started once, before the timings (its ~15 s start is reported apart)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np


def _spark_environment() -> Any:
    return SimpleNamespace(engine="spark", spark=SimpleNamespace(master="local[2]", app_name="bench", conf={}))


def bench_spark(base_rows: int, change_rows: int, gold_rows: int, repeat: int) -> list[dict[str, Any]]:
    from lakestack.engine.spark_session import get_session, stop_session

    t0 = time.perf_counter()
    get_session(_spark_environment())
    started = time.perf_counter() - t0
    rows = [{"benchmark": "spark", "tool": "Spark local[2] session start", "median_s": round(started, 3), "per_s": 0}]
    try:
        rows += _merge(base_rows, change_rows, repeat)
        rows += _gold(gold_rows, repeat)
    finally:
        stop_session()
    return rows


def _merge(base_rows: int, change_rows: int, repeat: int) -> list[dict[str, Any]]:
    from merge import CONTRACT, PROJECT, change_set, orders

    from lakestack.pipeline.silver import SilverPromotion

    rng = np.random.default_rng(42)
    days = 30
    base = orders(np.arange(base_rows), days, rng)
    changes = change_set(base, change_rows // 2, change_rows - change_rows // 2, base_rows, days, 0, rng)
    out = []
    for engine, environment in (("DuckDB", None), ("Spark local[2]", _spark_environment())):
        times = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                lake, model = _silver(Path(tmp) / "p", base, CONTRACT, PROJECT)
                t0 = time.perf_counter()
                result = SilverPromotion(model, lake.warehouse, "bench", environment).merge_arrow(changes, "bench")
                times.append(time.perf_counter() - t0)
                assert (result.inserted, result.updated) == (change_rows - change_rows // 2, change_rows // 2)
        out.append(_row(f"{engine}: Silver MERGE ({change_rows:,} into {base_rows:,})", times, change_rows))
        print(f"    {out[-1]}", flush=True)
    return _ratio(out)


def _silver(root: Path, base: Any, contract: str, project: str) -> Any:
    """benchmarks/merge.py's project, with its Bronze table (Silver promotion checks its contract version)."""
    from lakestack import Lake
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "orders.v1.yaml").write_text(contract)
    (root / "lakestack.yaml").write_text(project)
    lake = Lake.open(root)
    lake.warehouse.bronze_table(lake.project.contract("orders"))
    model = model_from_config("orders", lake.project)
    SilverPromotion(model, lake.warehouse, "load").merge_arrow(base, "base-load")
    return lake, model


def _gold(rows: int, repeat: int) -> list[dict[str, Any]]:
    import yaml
    from gold import _fx, _orders

    from lakestack import Lake
    from lakestack.pipeline.scaffold import copy_example
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    rng = np.random.default_rng(5)
    days = 365
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_example("northwind", Path(tmp) / "northwind")
        config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
        config["environments"]["spark"] = {**config["environments"]["dev"], "engine": "spark"}
        (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        lake = Lake.open(root)
        for name, data in (("orders", _orders(rows, days, rng)), ("fx_rates", _fx(days))):
            lake.warehouse.bronze_table(lake.project.contract(name))  # Silver promotion reads its contract version
            model = model_from_config(name, lake.project)
            SilverPromotion(model, lake.warehouse, "load").merge_arrow(data, f"load-{name}")
        for engine, env in (("DuckDB", "dev"), ("Spark local[2]", "spark")):
            on = Lake.open(root, env)
            times: dict[str, list[float]] = {"fact_sales": [], "daily_order_metrics": []}
            for _ in range(repeat):
                for model_name in times:
                    t0 = time.perf_counter()
                    [result] = on.build([model_name], full_refresh=True)
                    times[model_name].append(time.perf_counter() - t0)
                    assert result.rows_written > 0
            for model_name, t in times.items():
                out.append(_row(f"{engine}: Gold build {model_name} (full, {rows:,} silver.orders rows)", t, rows))
                print(f"    {out[-1]}", flush=True)
    return _ratio(out)


def _row(tool: str, times: list[float], n: int) -> dict[str, Any]:
    median = statistics.median(times)
    return {
        "benchmark": "spark",
        "tool": tool,
        "median_s": round(median, 3),
        "per_s": round(n / median),
        "repeats": len(times),
    }


def _ratio(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each Spark row with its time over DuckDB's for the same work (rows come DuckDB, Spark pairs)."""
    half = len(rows) // 2
    for duck, spark in zip(rows[:half], rows[half:], strict=True):
        spark["vs_duckdb"] = round(spark["median_s"] / duck["median_s"], 1)
    return rows

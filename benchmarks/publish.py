"""Publish benchmark: N Gold rows to PostgreSQL, `lakestack publish` against its peers, same run.

- lakestack: `Lake.publish` of a Gold table (Iceberg, read through the sandbox in Arrow batches as
  the `engineer` role), ADBC ingest into a staging table, swap in one transaction (rename away,
  rename in, drop the old one, state row). The state row is deleted between repeats so every
  repeat publishes in full. Once without a key (the like-for-like row) and once with a primary key
  built before the swap (what a real block declares).
- ADBC `adbc_ingest` of the same rows as one in-memory Arrow table (read from the Iceberg table
  before timing), `mode="replace"`, committed.
- psycopg 3 `COPY ... FROM STDIN (FORMAT csv)` of the same Arrow table, encoded to CSV by pyarrow
  (inside the timing: it is part of what a COPY publisher pays), into a fresh table, committed.

Medians of `repeat` runs each, interleaved. Needs PostgreSQL at LAKESTACK_TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/test). Run alone: `python benchmarks/publish.py 1000000`.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

SCHEMA = "lakestack_bench_publish"


def _data(n: int) -> Any:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    ids = np.arange(n)
    days = [date(2026, 1, 1) + timedelta(days=int(d)) for d in range(365)]
    return pa.table(
        {
            "order_id": pa.array(ids, pa.int64()),
            "order_date": pa.array([days[i % 365] for i in range(n)], pa.date32()),
            "customer_id": pa.array([f"C{c:06d}" for c in rng.integers(0, 50_000, n)]),
            "currency": pa.array(np.array(["USD", "EUR", "GBP"])[rng.integers(0, 3, n)]),
            "quantity": pa.array(rng.integers(1, 20, n), pa.int64()),
            "amount": pa.array(rng.random(n) * 500, pa.float64()),
            "is_revenue": pa.array(rng.random(n) > 0.1),
        }
    )


def _project(root: Path, url_env: str, primary_key: bool) -> Path:
    (root / "models" / "gold").mkdir(parents=True, exist_ok=True)
    (root / "models" / "gold" / "sales.sql").write_text("SELECT 1 AS x\n")
    block = "{primary_key: [order_id]}" if primary_key else "{}"
    (root / "lakestack.yaml").write_text(
        f"name: bench_publish\npublish:\n  pg:\n    url: {{secret: {url_env}}}\n    schema: {SCHEMA}\n"
        f"    role: engineer\n    datasets:\n      gold.sales: {block}\n"
    )
    return root


def bench_publish(n_rows: int, repeat: int) -> list[dict[str, Any]]:
    import adbc_driver_postgresql.dbapi as adbc
    import psycopg
    import pyarrow.csv as pacsv

    from lakestack import Lake

    url = os.environ.get("LAKESTACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    os.environ["BENCH_PUBLISH_URL"] = url
    data = _data(n_rows)
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
    times: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = _project(Path(tmp) / "p", "BENCH_PUBLISH_URL", primary_key=False)
            with Lake.open(root) as lake:
                lake.warehouse.catalog.create_table("gold.sales", schema=data.schema).append(data)
            arrow = Lake.open(root).warehouse.load("gold.sales").scan().to_arrow()  # the peers' input

            def forget() -> None:
                with psycopg.connect(url, autocommit=True) as con:
                    con.execute(f"DROP TABLE IF EXISTS {SCHEMA}.lakestack_publish_state")

            def lakestack(primary_key: bool) -> Callable[[], int]:
                _project(root, "BENCH_PUBLISH_URL", primary_key)

                def go() -> int:
                    with Lake.open(root) as lake:
                        result = lake.publish()
                    assert result.tables[0].status == "published", result
                    return int(result.tables[0].rows or 0)

                return go

            def adbc_ingest() -> int:
                with adbc.connect(url) as con, con.cursor() as cur:
                    count = cur.adbc_ingest("peer_adbc", arrow, mode="replace", db_schema_name=SCHEMA)
                    con.commit()
                return int(count)

            def psycopg_copy() -> int:
                buffer = io.BytesIO()
                pacsv.write_csv(arrow, buffer, pacsv.WriteOptions(include_header=False))
                with psycopg.connect(url) as con:
                    con.execute(f"DROP TABLE IF EXISTS {SCHEMA}.peer_copy")
                    con.execute(
                        f"CREATE TABLE {SCHEMA}.peer_copy (order_id bigint, order_date date, customer_id text, "
                        "currency text, quantity bigint, amount double precision, is_revenue boolean)"
                    )
                    with con.cursor().copy(f"COPY {SCHEMA}.peer_copy FROM STDIN (FORMAT csv)") as copy:
                        copy.write(buffer.getbuffer())
                return n_rows

            runs: dict[str, Callable[[], int]] = {
                "ADBC adbc_ingest (Arrow in memory)": adbc_ingest,
                "psycopg COPY (CSV)": psycopg_copy,
            }
            for _ in range(repeat):
                for label, fn in runs.items():
                    times.setdefault(label, []).append(_timed(fn))
                for label, pk in (
                    ("lakestack publish (replace + swap)", False),
                    ("lakestack publish + primary key", True),
                ):
                    go = lakestack(pk)
                    forget()
                    times.setdefault(label, []).append(_timed(go))
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    adbc_s = statistics.median(times["ADBC adbc_ingest (Arrow in memory)"])
    rows = []
    for label, seconds in times.items():
        median = statistics.median(seconds)
        rows.append(
            {
                "benchmark": "publish",
                "tool": f"{label}, {n_rows:,} rows",
                "rows": n_rows,
                "median_s": round(median, 3),
                "per_s": round(n_rows / median),
                "vs_lakestack": None,
                "throughput_vs_adbc": round(adbc_s / median, 2),
                "repeats": repeat,
                "all_s": [round(s, 3) for s in seconds],
            }
        )
    for r in rows:
        r["lakestack_speedup"] = r["throughput_vs_adbc"]
    return rows


def _timed(fn: Callable[[], int]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import show

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    show(bench_publish(n, 3))

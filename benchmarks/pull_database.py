"""Database pull benchmark: an N-row PostgreSQL table into Bronze, `kind: database` against its peers.

- lakestack: `lakestack ingest` of a `kind: database` source in `full` mode (ADBC's streamed COPY,
  batches of 50,000 rows validated against the contract, typed Arrow + `_raw` JSON + lineage
  columns, two Bronze commits of 500,000 rows with the mark), into a fresh warehouse each repeat.
- the floor: a bare ADBC read of the same SELECT, every Arrow batch touched (no validation, no
  write).
- dlt 1.x `sql_database` source into its `duckdb` destination (a fresh pipeline folder each
  repeat), with the `pyarrow` backend (its fastest) and, up to 200,000 rows, the default
  `sqlalchemy` backend (about 2,000 rows/s here: a million rows would take minutes per repeat).

Medians of `repeat` runs each, interleaved. Needs PostgreSQL at LAKESTACK_TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/test) and dlt (the `bench` extra) for its rows.
Run alone: `python benchmarks/pull_database.py 1000000 3`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = "lakestack_bench_pull"
CONTRACT = """\
source: orders
version: 1
key: [order_id]
file: {pattern: "orders_*.parquet", format: parquet}
columns:
  - {name: order_id, type: integer, nullable: false}
  - {name: customer_id, type: string, nullable: false}
  - {name: status, type: string, nullable: false, enum: [placed, paid, shipped]}
  - {name: quantity, type: integer, nullable: false, min: 1}
  - {name: amount, type: "decimal(12,2)", nullable: false}
  - {name: updated_at, type: timestamp, nullable: false}
"""


def _table(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        con.execute(
            f"CREATE TABLE {SCHEMA}.orders AS SELECT i::bigint AS order_id, 'C' || lpad((i % 50000)::text, 6, '0') "
            "AS customer_id, (ARRAY['placed','paid','shipped'])[1 + i % 3] AS status, (1 + i % 20)::int AS quantity, "
            "round((i % 100000) / 7.0, 2)::numeric(12,2) AS amount, "
            "timestamptz '2026-01-01' + (i || ' seconds')::interval AS updated_at "
            f"FROM generate_series(1, {n}) AS i"
        )
        con.execute(f"ALTER TABLE {SCHEMA}.orders ADD PRIMARY KEY (order_id)")
        con.execute(f"ANALYZE {SCHEMA}.orders")


def _project(root: Path) -> Path:
    (root / "contracts").mkdir(parents=True, exist_ok=True)
    (root / "contracts" / "orders.v1.yaml").write_text(CONTRACT)
    (root / "lakestack.yaml").write_text(
        "name: bench_pull\nsources:\n  orders:\n    kind: database\n    contract: orders\n"
        f"    database: {{url: {{secret: BENCH_PULL_URL}}, table: {SCHEMA}.orders, mode: full}}\n"
    )
    return root


def bench_pull_database(n_rows: int, repeat: int) -> list[dict[str, Any]]:
    url = os.environ.get("LAKESTACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    os.environ["BENCH_PULL_URL"] = url
    _table(url, n_rows)
    times: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = _runs(url, Path(tmp), n_rows)
            for i in range(repeat):
                for label, fn in runs.items():
                    t0 = time.perf_counter()
                    got = fn(i)
                    times.setdefault(label, []).append(time.perf_counter() - t0)
                    assert got == n_rows, f"{label}: {got} rows, expected {n_rows}"
                    print(f"  {label}: {times[label][-1]:.2f} s", file=sys.stderr)
    finally:
        import psycopg

        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    return _rows(times, n_rows, repeat)


def _runs(url: str, tmp: Path, n_rows: int) -> dict[str, Callable[[int], int]]:
    from lakestack import Lake

    def lakestack(i: int) -> int:
        root = _project(tmp / f"lakestack{i}")
        with Lake.open(root) as lake:
            return lake.ingest().landed

    def adbc(i: int) -> int:
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(url) as con, con.cursor() as cur:
            cur.execute(
                f"SELECT order_id, customer_id, status, quantity, amount, updated_at FROM {SCHEMA}.orders "
                "ORDER BY order_id"
            )
            return sum(batch.num_rows for batch in cur.fetch_record_batch())

    runs: dict[str, Callable[[int], int]] = {
        "lakestack ingest (kind: database, full) → Bronze": lakestack,
        "bare ADBC read (the floor)": adbc,
    }
    try:
        import dlt  # noqa: F401
    except ImportError:
        print("  dlt is not installed (pip install 'lakestack[bench]'): its rows are left out", file=sys.stderr)
        return runs

    def dlt_run(backend: str) -> Callable[[int], int]:
        def go(i: int) -> int:
            import dlt
            from dlt.sources.sql_database import sql_database

            folder = tmp / f"dlt-{backend}-{i}"
            os.environ["DLT_DATA_DIR"] = str(folder / "data")
            sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            source = sql_database(sa_url, schema=SCHEMA, table_names=["orders"], backend=backend)
            pipeline = dlt.pipeline(
                pipeline_name=f"bench_{backend}_{i}",
                pipelines_dir=str(folder / "pipelines"),
                destination=dlt.destinations.duckdb(str(folder / "out.duckdb")),
                dataset_name="bronze",
            )
            pipeline.run(source)
            with pipeline.sql_client() as client:
                return int(client.execute_sql("SELECT count(*) FROM orders")[0][0])

        return go

    runs["dlt sql_database (pyarrow backend) → duckdb"] = dlt_run("pyarrow")
    if n_rows <= 200_000:  # about 2,000 rows/s here: 1M rows would take 8 minutes a repeat
        runs["dlt sql_database (sqlalchemy backend, its default) → duckdb"] = dlt_run("sqlalchemy")
    return runs


def _rows(times: dict[str, list[float]], n_rows: int, repeat: int) -> list[dict[str, Any]]:
    floor = statistics.median(times["bare ADBC read (the floor)"])
    ours = statistics.median(times["lakestack ingest (kind: database, full) → Bronze"])
    out = []
    for label, seconds in times.items():
        median = statistics.median(seconds)
        out.append(
            {
                "benchmark": "pull_database",
                "tool": f"{label}, {n_rows:,} rows",
                "rows": n_rows,
                "median_s": round(median, 3),
                "per_s": round(n_rows / median),
                "vs_floor": round(median / floor, 1),
                "lakestack_speedup": round(median / ours, 2),
                "repeats": repeat,
                "all_s": [round(s, 3) for s in seconds],
            }
        )
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import show

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    show(bench_pull_database(n, reps))

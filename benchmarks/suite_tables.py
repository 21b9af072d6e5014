"""Benchmarks over tables: Silver MERGE, a Gold build, an interactive query, publishing to PostgreSQL.

Every tool's `setup(size, work, data)` runs in the harness's child process (untimed) and returns
`prepare`; what `prepare()` returns is timed. See harness.py.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness import Benchmark, Prepare, Tool

NORTHWIND = Path(__file__).parent.parent / "examples" / "northwind"


def _fresh(work: Path) -> Path:
    for old in work.glob("rep-*"):
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="rep-", dir=work))


# -- MERGE ------------------------------------------------------------------------------------------
# size = changed rows (half updates of existing keys, half inserts), merged into 5x as many rows;
# the change touches every one of the 30 daily partitions.
BASE_FACTOR = 5
DAYS = 30


def _merge_data(size: int) -> tuple[Any, Any]:
    import numpy as np
    from merge import change_set, orders

    rng = np.random.default_rng(42)
    base_rows = size * BASE_FACTOR
    base = orders(np.arange(base_rows), DAYS, rng)
    changes = change_set(base, size // 2, size - size // 2, base_rows, DAYS, 0, rng)
    return base, changes


def _lakestack_merge(environment: Any = None, properties: dict[str, str] | None = None) -> Any:
    def setup(size: int, work: Path, data: Path) -> Prepare:
        from merge import lakestack_silver

        from lakestack.pipeline.silver import SilverPromotion

        base, changes = _merge_data(size)
        env = environment() if environment else None

        def prepare() -> Any:
            lake, model = lakestack_silver(_fresh(work) / "p", base, properties)

            def go() -> int:
                result = SilverPromotion(model, lake.warehouse, "bench", env).merge_arrow(changes, "bench")
                assert (result.inserted, result.updated) == (size - size // 2, size // 2), result
                return size

            return go

        return prepare

    return setup


def _spark_environment() -> Any:
    from types import SimpleNamespace

    from lakestack.engine.spark_session import get_session, stop_session

    env = SimpleNamespace(engine="spark", spark=SimpleNamespace(master="local[2]", app_name="bench", conf={}))
    get_session(env)  # the ~15 s session start is setup, not MERGE
    atexit.register(stop_session)
    return env


def _spark_available() -> bool:
    return shutil.which("java") is not None


def _pyiceberg_upsert(size: int, work: Path, data: Path) -> Prepare:
    import pyarrow as pa
    from merge import lakestack_silver

    base, changes = _merge_data(size)

    def prepare() -> Any:
        lake, _ = lakestack_silver(_fresh(work) / "p", base)
        table = lake.warehouse.load("silver.orders")
        target = table.schema().as_arrow()
        rows = changes.append_column("_run_id", pa.array(["bench"] * changes.num_rows)).select(target.names)
        rows = rows.cast(target)

        def go() -> int:
            result = table.upsert(rows, join_cols=["order_id"])
            assert (result.rows_inserted, result.rows_updated) == (size - size // 2, size // 2), result
            return size

        return go

    return prepare


def _with_day(t: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return t.append_column("order_day", pc.cast(t["order_ts"], pa.date32()))


def _delta_merge(size: int, work: Path, data: Path) -> Prepare:
    from deltalake import DeltaTable, write_deltalake

    base, changes = _merge_data(size)
    base, changes = _with_day(base), _with_day(changes)

    def prepare() -> Any:
        path = str(_fresh(work) / "delta")
        write_deltalake(path, base, partition_by=["order_day"])
        table = DeltaTable(path)

        def go() -> int:
            metrics = (
                table.merge(
                    changes,
                    predicate="t.order_day = s.order_day AND t.order_id = s.order_id",
                    source_alias="s",
                    target_alias="t",
                    streamed_exec=False,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            assert metrics["num_target_rows_inserted"] == size - size // 2, metrics
            assert metrics["num_target_rows_updated"] == size // 2, metrics
            return size

        return go

    return prepare


def _merge_floor(size: int, work: Path, data: Path) -> Prepare:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base, changes = _merge_data(size)
    merged = pa.concat_tables([base, changes.slice(size // 2)])  # the result's row count and shape

    def prepare() -> Any:
        out = _fresh(work) / "merged.parquet"

        def go() -> int:
            pq.write_table(merged, out)
            return size

        return go

    return prepare


MERGE = Benchmark(
    name="merge",
    description=f"Silver MERGE of a change set (half updates of existing keys, half new keys) into {BASE_FACTOR}x "
    f"as many rows, the table partitioned by day over {DAYS} days, every partition touched; size = changed rows",
    unit="changed rows",
    sizes=(6_000, 20_000, 60_000, 200_000),
    tools=(
        Tool(
            "lakestack MERGE",
            "SilverPromotion.merge_arrow (DuckDB engine): read the touched partitions, rank by key and updated_at, "
            "overwrite those partitions in one Iceberg commit",
            _lakestack_merge(),
            role="lakestack",
        ),
        Tool(
            "lakestack MERGE, snappy",
            "the same, the table's Parquet codec set to snappy (write.parquet.compression-codec), the codec delta-rs "
            "writes by default: the same bytes to compress as delta-rs (lakestack's default is zstd at level 1, "
            "Arrow's default level, the files about a third smaller)",
            _lakestack_merge(properties={"write.parquet.compression-codec": "snappy"}),
            role="lakestack",
        ),
        Tool(
            "delta-rs merge",
            "deltalake DeltaTable.merge (its default codec, snappy) on a table partitioned by order_day, predicate "
            "`t.order_day = s.order_day AND t.order_id = s.order_id` (the partition column in it, so files are "
            "pruned), streamed_exec=False (source in memory: its stats prune early), when_matched_update_all + "
            "when_not_matched_insert_all",
            _delta_merge,
        ),
        Tool(
            "pyiceberg upsert",
            "Table.upsert(join_cols=['order_id']) on the same Iceberg table lakestack merges into. Very slow: "
            "sizes up to 20,000, one repetition",
            _pyiceberg_upsert,
            max_size=20_000,
            repeat=1,
        ),
        Tool(
            "lakestack MERGE on Spark local[2]",
            "the same SilverPromotion with engine spark (local[2], session started before timing); Spark reads "
            "and writes Parquet, lakestack commits. Slow to measure here (about 19 s a MERGE even at 400 rows on "
            "the shared 2 cores): sizes up to 20,000, 2 repetitions; docs/scaling.md has 200,000 into 1,000,000",
            _lakestack_merge(_spark_environment),
            max_size=20_000,
            repeat=2,
        ),
        Tool(
            "floor: Parquet write of the result",
            "pyarrow.parquet.write_table of as many rows as the merged table holds (one file): the write every "
            "partition-touching MERGE must at least do, without reading, ranking or committing",
            _merge_floor,
            role="floor",
        ),
    ),
)


# -- Gold build and query over Northwind's silver.orders -------------------------------------------------
def _northwind_silver(size: int, folder: Path) -> None:
    """Northwind with `size` silver.orders rows over 365 days and a year of FX rates (deterministic)."""
    import numpy as np
    from gold import _fx, _orders

    from lakestack import Lake
    from lakestack.pipeline.scaffold import copy_example
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    rng = np.random.default_rng(5)
    root = copy_example("northwind", folder / "northwind")
    lake = Lake.open(root)
    for name, data in (("orders", _orders(size, 365, rng)), ("fx_rates", _fx(365))):
        model = model_from_config(name, lake.project)
        SilverPromotion(model, lake.warehouse, "load").merge_arrow(data, f"load-{name}")
    planned = {}
    for table in ("silver.orders", "silver.fx_rates"):
        scan = lake.warehouse.load(table).scan()
        planned[table] = [t.file.file_path.removeprefix("file://") for t in scan.plan_files()]
    (folder / "files.json").write_text(json.dumps(planned))


def _files(root: Path, table: str) -> list[str]:
    """The table's data files, planned once when the data was made (so the peers' processes do not
    import lakestack or pyiceberg, and their peak memory is their own)."""
    return list(json.loads((root.parent / "files.json").read_text())[table])


def _fact_sales_sql() -> str:
    text = (NORTHWIND / "models" / "gold" / "fact_sales.sql").read_text()
    return re.sub(r"/\*.*?\*/", "", text, count=1, flags=re.S).strip()


def _lakestack_build(size: int, work: Path, data: Path) -> Prepare:
    from lakestack import Lake

    root = data / "northwind"

    def go() -> int:
        [result] = Lake.open(root).build(["fact_sales"], full_refresh=True)
        return int(result.rows_written)

    return lambda: go


def _parquet_list(files: list[str]) -> str:
    """A DuckDB list literal of file paths (a view cannot take a prepared parameter)."""
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def _duckdb_views(con: Any, orders: list[str], fx: list[str]) -> None:
    con.execute("CREATE SCHEMA silver")
    con.execute(f"CREATE VIEW silver.orders AS SELECT * FROM read_parquet({_parquet_list(orders)})")
    con.execute(f"CREATE VIEW silver.fx_rates AS SELECT * FROM read_parquet({_parquet_list(fx)})")


def _duckdb_build(size: int, work: Path, data: Path) -> Prepare:
    import duckdb

    root, sql = data / "northwind", _fact_sales_sql()
    orders, fx = _files(root, "silver.orders"), _files(root, "silver.fx_rates")

    def prepare() -> Any:
        out = _fresh(work) / "fact_sales.parquet"

        def go() -> int:
            con = duckdb.connect()
            _duckdb_views(con, orders, fx)
            con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
            n = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()
            con.close()
            return int(n[0]) if n else 0

        return go

    return prepare


def _polars_fact_sales(orders: list[str], fx: list[str]) -> Any:
    import polars as pl

    rates = (
        pl.scan_parquet(fx)
        .filter(pl.col("quote_currency") == "USD")
        .select("rate_date", "base_currency", "rate")
        .sort("rate_date")
    )
    lines = (
        pl.scan_parquet(orders)
        .select(
            pl.col("order_ts").dt.date().alias("order_date"),
            "order_id",
            "order_line",
            "customer_id",
            "product_id",
            "status",
            "channel",
            "ship_country",
            "currency",
            "quantity",
            "unit_price",
            (pl.col("quantity").cast(pl.Decimal(18, 0)) * pl.col("unit_price")).cast(pl.Decimal(18, 2)).alias("amount"),
            "order_ts",
            "updated_at",
        )
        .sort("order_date")
    )
    usd = pl.col("currency") == "USD"
    rate = pl.when(usd).then(pl.lit(1).cast(pl.Decimal(18, 8))).otherwise(pl.col("rate"))
    return (
        lines.join_asof(rates, left_on="order_date", right_on="rate_date", by_left="currency", by_right="base_currency")
        .with_columns(
            rate.alias("usd_rate"),
            (pl.col("amount") * rate).cast(pl.Decimal(18, 2)).alias("amount_usd"),
            (~pl.col("status").is_in(["cancelled", "returned"])).alias("is_revenue"),
        )
        .drop("rate_date", "rate")
    )


def _polars_build(size: int, work: Path, data: Path) -> Prepare:
    import polars as pl

    root = data / "northwind"
    orders, fx = _files(root, "silver.orders"), _files(root, "silver.fx_rates")

    def prepare() -> Any:
        out = _fresh(work) / "fact_sales.parquet"

        def go() -> int:
            _polars_fact_sales(orders, fx).sink_parquet(out)
            return int(pl.scan_parquet(out).select(pl.len()).collect().item())

        return go

    return prepare


def _gold_floor(size: int, work: Path, data: Path) -> Prepare:
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect()
    root = data / "northwind"
    _duckdb_views(con, _files(root, "silver.orders"), _files(root, "silver.fx_rates"))
    result = con.execute(_fact_sales_sql()).to_arrow_table()

    def prepare() -> Any:
        out = _fresh(work) / "fact_sales.parquet"

        def go() -> int:
            pq.write_table(result, out)
            return int(result.num_rows)

        return go

    return prepare


GOLD = Benchmark(
    name="gold",
    description="Northwind's gold.fact_sales built in full from silver.orders (size rows over 365 days) and a year "
    "of FX rates: a projection, decimal arithmetic and an ASOF join per currency; the result written",
    unit="rows",
    sizes=(30_000, 100_000, 300_000, 1_000_000),
    data=_northwind_silver,
    tools=(
        Tool(
            "lakestack build",
            "Lake.open(project).build(['fact_sales'], full_refresh=True): plan Silver's files, run the model in "
            "the sandboxed DuckDB, write and commit the Iceberg table, run record and lineage",
            _lakestack_build,
            role="lakestack",
        ),
        Tool(
            "DuckDB on the Parquet files",
            "duckdb.connect(), views over read_parquet of the same Silver data files (planned once, untimed), the "
            "same SQL, COPY … TO one Parquet file",
            _duckdb_build,
        ),
        Tool(
            "Polars",
            "the same model in the lazy API (scan_parquet of the same files, join_asof by currency, Decimal "
            "arithmetic), sink_parquet to one file",
            _polars_build,
        ),
        Tool(
            "floor: Parquet write of the result",
            "pyarrow.parquet.write_table of the fact_sales rows (computed before timing)",
            _gold_floor,
            role="floor",
        ),
    ),
)

QUERY_SQL = (
    "SELECT currency, status, count(*) AS n, sum(quantity) AS units, sum(quantity * unit_price) AS amount "
    "FROM silver.orders GROUP BY ALL"
)


def _lakestack_query(size: int, work: Path, data: Path) -> Prepare:
    from lakestack import Lake

    root = data / "northwind"

    def go() -> int:
        result = Lake.open(root).query(QUERY_SQL)
        return int(sum(result.column("n").to_pylist()))

    return lambda: go


def _duckdb_query(size: int, work: Path, data: Path) -> Prepare:
    import duckdb

    files = _files(data / "northwind", "silver.orders")
    sql = QUERY_SQL.replace("silver.orders", "read_parquet(?)")

    def go() -> int:
        con = duckdb.connect()
        result = con.execute(sql, [files]).to_arrow_table()
        con.close()
        return int(sum(result.column("n").to_pylist()))

    return lambda: go


def _polars_query(size: int, work: Path, data: Path) -> Prepare:
    import polars as pl

    files = _files(data / "northwind", "silver.orders")

    def go() -> int:
        result = (
            pl.scan_parquet(files)
            .group_by("currency", "status")
            .agg(
                pl.len().alias("n"),
                pl.col("quantity").sum().alias("units"),
                (pl.col("quantity").cast(pl.Decimal(18, 0)) * pl.col("unit_price")).sum().alias("amount"),
            )
            .collect()
        )
        return int(result["n"].sum())

    return lambda: go


QUERY = Benchmark(
    name="query",
    description="An interactive GROUP BY (count, sum, sum of quantity × decimal price by currency and status) over "
    "silver.orders, from a cold start of the library call (open, plan, read, aggregate)",
    unit="rows scanned",
    sizes=(30_000, 100_000, 300_000, 1_000_000),
    data=_northwind_silver,
    tools=(
        Tool(
            "lakestack query",
            "Lake.open(project).query(sql): parse, plan only the table named, sandboxed DuckDB over its Parquet "
            "files, Arrow result (the library path under `lakestack query`)",
            _lakestack_query,
            role="lakestack",
        ),
        Tool(
            "floor: DuckDB on the Parquet files",
            "duckdb.connect() and the same SQL over read_parquet of the same files (file list planned before "
            "timing): lakestack's own engine without the catalog, the planning and the sandbox, so the floor",
            _duckdb_query,
            role="floor",
        ),
        Tool(
            "Polars",
            "scan_parquet of the same files, group_by + agg (the same aggregates), collect",
            _polars_query,
        ),
    ),
)


# -- publish ----------------------------------------------------------------------------------------
def _pg_url() -> str:
    return os.environ.get("LAKESTACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_unavailable() -> str | None:
    parsed = urlparse(_pg_url())
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=2):
            return None
    except OSError as exc:
        where = f"{parsed.hostname}:{parsed.port}"
        return f"PostgreSQL is not reachable at {where} ({exc}); set LAKESTACK_TEST_POSTGRES_URL"


def _pg_schema() -> str:
    """A schema of this child's own, dropped when it exits."""
    import psycopg

    schema = f"lakestack_bench_{os.getpid()}"
    with psycopg.connect(_pg_url(), autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(_pg_url(), autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    atexit.register(drop)
    return schema


def _lakestack_publish(size: int, work: Path, data: Path) -> Prepare:
    import psycopg
    from publish import _data

    from lakestack import Lake

    schema = _pg_schema()
    os.environ["BENCH_PUBLISH_URL"] = _pg_url()
    root = work / "p"
    (root / "models" / "gold").mkdir(parents=True)
    (root / "models" / "gold" / "sales.sql").write_text("SELECT 1 AS x\n")
    (root / "lakestack.yaml").write_text(
        f"name: bench_publish\npublish:\n  pg:\n    url: {{secret: BENCH_PUBLISH_URL}}\n    schema: {schema}\n"
        "    role: engineer\n    datasets:\n      gold.sales: {}\n"
    )
    with Lake.open(root) as lake:
        rows = _data(size)
        lake.warehouse.catalog.create_table("gold.sales", schema=rows.schema).append(rows)

    def prepare() -> Any:
        with psycopg.connect(_pg_url(), autocommit=True) as con:  # every repetition publishes in full
            con.execute(f"DROP TABLE IF EXISTS {schema}.lakestack_publish_state")

        def go() -> int:
            with Lake.open(root) as lake:
                result = lake.publish()
            assert result.tables[0].status == "published", result
            return int(result.tables[0].rows or 0)

        return go

    return prepare


def _adbc_publish(size: int, work: Path, data: Path) -> Prepare:
    import adbc_driver_postgresql.dbapi as adbc
    from publish import _data

    schema, rows = _pg_schema(), _data(size)

    def go() -> int:
        with adbc.connect(_pg_url()) as con, con.cursor() as cur:
            count = cur.adbc_ingest("peer_adbc", rows, mode="replace", db_schema_name=schema)
            con.commit()
        return int(count)

    return lambda: go


def _copy_publish(size: int, work: Path, data: Path) -> Prepare:
    import io

    import psycopg
    import pyarrow.csv as pacsv
    from publish import _data

    schema, rows = _pg_schema(), _data(size)

    def go() -> int:
        buffer = io.BytesIO()
        pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
        with psycopg.connect(_pg_url()) as con:
            con.execute(f"DROP TABLE IF EXISTS {schema}.peer_copy")
            con.execute(
                f"CREATE TABLE {schema}.peer_copy (order_id bigint, order_date date, customer_id text, "
                "currency text, quantity bigint, amount double precision, is_revenue boolean)"
            )
            with con.cursor().copy(f"COPY {schema}.peer_copy FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getbuffer())
        return size

    return lambda: go


PUBLISH = Benchmark(
    name="publish",
    description="A Gold table (7 columns: ids, a date, text, a double, a boolean) published to PostgreSQL in full",
    unit="rows",
    sizes=(10_000, 30_000, 100_000, 300_000),
    available=_pg_unavailable,
    tools=(
        Tool(
            "lakestack publish",
            "Lake.publish() of gold.sales (Iceberg, read in Arrow batches through the sandbox as engineer): ADBC "
            "ingest into a staging table, swap in one transaction, state row; the state row is dropped before "
            "each repetition so each publishes in full",
            _lakestack_publish,
            role="lakestack",
        ),
        Tool(
            "psycopg COPY (CSV)",
            "pyarrow CSV encoding of the in-memory Arrow table (timed: a COPY publisher pays it) then psycopg 3 "
            "COPY … FROM STDIN (FORMAT csv) into a fresh table, committed",
            _copy_publish,
        ),
        Tool(
            "floor: ADBC adbc_ingest",
            "adbc_driver_postgresql adbc_ingest(mode='replace') of the same rows as one in-memory Arrow table "
            "(binary COPY underneath), committed: no read from the lake, no swap",
            _adbc_publish,
            role="floor",
        ),
    ),
)

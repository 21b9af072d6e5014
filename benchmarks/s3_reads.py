"""How DuckDB reads Iceberg data files on S3 without its httpfs extension (ADR 25).

A moto server on 127.0.0.1 serves 4 Parquet files (1M rows, 3 columns). The same two queries run
over them through: (a) DuckDB `read_parquet(['s3://…'])` with pyarrow's S3FileSystem registered as
an fsspec filesystem (what lakestack does), (b) a pyarrow dataset over the same files registered as
a DuckDB relation, (c) the files read whole into Arrow first (`pq.read_table`, as pyiceberg's
`scan().to_arrow()` does), and (d) the same files on local disk through plain `read_parquet`.
Each row is the median of `repeat` runs, methods taking turns within a repeat.

    .venv/bin/python benchmarks/run.py --only s3_reads
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

QUERIES = {
    "group by (2 of 3 columns, every row)": "SELECT b, count(*), sum(a) FROM t GROUP BY b ORDER BY b",
    "point filter (1 row)": "SELECT * FROM t WHERE a = 777777",
}


def bench_s3_reads(rows: int = 1_000_000, repeat: int = 5) -> list[dict[str, Any]]:
    import boto3
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from moto.server import ThreadedMotoServer

    from lakestack.config import S3Config
    from lakestack.storage.filesystems import _wrapper, arrow_filesystem

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(Bucket="bench")
        fs: pafs.S3FileSystem = arrow_filesystem(S3Config(endpoint_url=endpoint, region="us-east-1"))
        table = pa.table({"a": range(rows), "b": [i % 10 for i in range(rows)], "c": [f"v{i}" for i in range(rows)]})
        local = Path(tempfile.mkdtemp())
        part = rows // 4
        keys = []
        for i in range(4):
            piece = table.slice(i * part, part if i < 3 else rows - 3 * part)
            pq.write_table(piece, f"bench/wh/f{i}.parquet", filesystem=fs)
            pq.write_table(piece, local / f"f{i}.parquet")
            keys.append(f"bench/wh/f{i}.parquet")
        s3_paths = [f"s3://{k}" for k in keys]
        local_paths = [str(local / f"f{i}.parquet") for i in range(4)]

        def con() -> Any:
            c = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
            return c

        def fsspec_view() -> Any:
            c = con()
            c.register_filesystem(_wrapper("s3", fs))
            c.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({s3_paths})")
            return c

        def dataset_view() -> Any:
            c = con()
            c.register("t", ds.dataset(keys, filesystem=fs, format="parquet"))
            return c

        def arrow_whole() -> Any:
            c = con()
            c.register("t", pa.concat_tables(pq.read_table(k, filesystem=fs) for k in keys))
            return c

        def local_view() -> Any:
            c = con()
            c.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({local_paths})")
            return c

        methods = {
            "DuckDB read_parquet + pyarrow S3 as fsspec (lakestack)": fsspec_view,
            "pyarrow dataset registered in DuckDB": dataset_view,
            "whole files to Arrow first (scan().to_arrow())": arrow_whole,
            "local disk read_parquet (reference)": local_view,
        }
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeat):
            for qname, sql in QUERIES.items():
                for mname, make in methods.items():
                    t0 = time.perf_counter()
                    c = make()
                    c.execute(sql).fetchall()
                    times.setdefault((qname, mname), []).append(time.perf_counter() - t0)
                    c.close()
        out = []
        for (qname, mname), values in times.items():
            out.append(
                {
                    "bench": "s3_reads",
                    "query": qname,
                    "method": mname,
                    "rows": rows,
                    "median_s": round(statistics.median(values), 4),
                    "repeat": repeat,
                }
            )
        return out
    finally:
        server.stop()


if __name__ == "__main__":
    for row in bench_s3_reads():
        print(f"{row['query']:<40} {row['method']:<58} {row['median_s']:.4f} s")

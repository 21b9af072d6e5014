"""lakestack benchmarks, side by side with their peers. Run with `make bench`."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


RESULTS = Path(__file__).parent / "results"
# the benchmarks the harness runs at several sizes with their peers (benchmarks/suite.py); the
# sections below them are single-size and run only when named with --only
SUITE_NAMES = (
    "validation",
    "ingest_csv",
    "ingest_ndjson",
    "memory",
    "merge",
    "gold",
    "query",
    "cli_query",
    "publish",
)
GROUPS = {"ingest": ("ingest_csv", "ingest_ndjson")}
LEGACY = (
    "merge_1m",
    "gold_10m",
    "quality",
    "http",
    "kafka",
    "kinesis",
    "nats",
    "maintenance",
    "listeners",
    "masking",
    "publish_1m",
    "catalog_commits",
    "s3_reads",
    "spark",
    "pull_database",
)


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def run_suite(names: list[str], repeat: int, sizes: tuple[int, ...] | None, smallest: int, out: Path) -> list[Path]:
    """The harness's benchmarks: each tool at each size in a child process; results/<name>.json."""
    from harness import run_benchmark, write_result
    from suite import SUITE

    written = []
    for name in names:
        bench = SUITE[name]
        chosen = sizes or (bench.sizes[:smallest] if smallest else None)
        t0 = time.perf_counter()
        print(f"{name}: {bench.description}", flush=True)
        result = run_benchmark(bench, repeat=repeat, sizes=chosen, log=lambda line: print(line, flush=True))
        written.append(write_result(result, out))
        print(f"{name}: {time.perf_counter() - t0:.0f} s → {written[-1]}", flush=True)
    return written


def show(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lakestack benchmarks (medians)")
    for col in ("benchmark", "tool", "median_s", "per_s", "ratio"):
        table.add_column(col, justify="left" if col in ("benchmark", "tool") else "right")
    for r in rows:
        speed = r.get("lakestack_speedup") or r.get("vs_lakestack") or r.get("ratio")
        tool = r["tool"] + (f" · p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms" if "p99_ms" in r else "")
        table.add_row(r["benchmark"], tool, f"{r['median_s']:.3f}", f"{r['per_s']:,}", f"{speed}×" if speed else "")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "bench",
        nargs="*",
        help=f"benchmarks to run (none: the whole suite): {', '.join(SUITE_NAMES)}, ingest (both); "
        f"single-size sections: {', '.join(LEGACY)}",
    )
    parser.add_argument("--only", help="the same as naming one benchmark")
    parser.add_argument("--sizes", help="comma-separated sizes for the suite's benchmarks (default: each one's own)")
    parser.add_argument("--smallest", type=int, default=0, help="only each benchmark's N smallest sizes")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the suite writes <name>.json")
    parser.add_argument("--maintenance-commits", type=int, default=2000)
    parser.add_argument("--http-seconds", type=float, default=20.0)
    parser.add_argument("--stream-events", type=int, default=200_000)
    parser.add_argument("--listener-lines", type=int, default=1_000_000)
    parser.add_argument("--quality-rows", type=int, default=1_000_000)
    parser.add_argument("--gold-rows", type=int, default=10_000_000)
    parser.add_argument("--merge-base", type=int, default=1_000_000)
    parser.add_argument("--merge-large", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--masking-rows", type=int, default=1_000_000)
    parser.add_argument("--publish-rows", type=int, default=1_000_000)
    parser.add_argument("--commit-seconds", type=float, default=5.0)
    parser.add_argument("--spark-base", type=int, default=1_000_000)
    parser.add_argument("--spark-change", type=int, default=200_000)
    parser.add_argument("--spark-gold", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    names = [*args.bench, *([args.only] if args.only else [])] or list(SUITE_NAMES)
    names = [n for name in names for n in GROUPS.get(name, (name,))]
    unknown = [n for n in names if n not in SUITE_NAMES and n not in LEGACY]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join((*SUITE_NAMES, *LEGACY))}")
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else None
    run_suite([n for n in names if n in SUITE_NAMES], args.repeat, sizes, args.smallest, args.results)
    legacy = {n for n in names if n in LEGACY}
    if legacy:
        run_legacy(legacy, args)


def run_legacy(legacy: set[str], args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    if "merge_1m" in legacy:
        from merge import bench_merge, bench_merge_large

        print("  merge · lakestack, pyiceberg upsert, delta-rs merge ...", flush=True)
        rows += bench_merge(args.merge_base, args.merge_base // 5, args.repeat)
        print("  merge · 1% into a large table ...", flush=True)
        rows += bench_merge_large(args.merge_large, args.repeat)
    if "gold_10m" in legacy:
        from gold import bench_gold

        print("  gold · fact_sales and daily_order_metrics ...", flush=True)
        rows += bench_gold(args.gold_rows, args.repeat)
    if "quality" in legacy:
        from quality import bench_quality

        print("  quality · the Northwind checks of silver.orders ...", flush=True)
        rows += bench_quality(args.quality_rows, args.repeat)
    if "http" in legacy:
        from stream_http import bench_http

        rows += bench_http(args.http_seconds, repeat=args.repeat)
    for kind in ("kafka", "kinesis", "nats"):
        if kind in legacy:
            module = __import__(f"stream_{kind}")
            print(f"  {kind} → bronze · {args.stream_events:,} events ...", flush=True)
            n = min(args.stream_events, 50_000) if kind == "kinesis" else args.stream_events  # moto is slow
            rows += getattr(module, f"bench_{kind}")(n, args.repeat)
    if "maintenance" in legacy:
        from maintenance import bench_maintenance

        rows += bench_maintenance(args.maintenance_commits, max(args.repeat, 5))
    if "listeners" in legacy:
        from listeners import bench_listeners

        print(f"  listeners · lakestack run of Northwind, {args.listener_lines:,} order lines, with and without")
        print("  OpenLineage (the run-records listener cannot be switched off: it is in both) ...", flush=True)
        rows += bench_listeners(args.listener_lines, args.repeat)
    if "masking" in legacy:
        from masking import bench_masking

        print("  masking · Lake.query on Gold with PII, in clear and masked, the same queries ...", flush=True)
        rows += bench_masking(args.masking_rows, args.repeat)
    if "publish_1m" in legacy:
        from publish import bench_publish

        print(
            f"  publish · {args.publish_rows:,} Gold rows to PostgreSQL: lakestack, ADBC, psycopg COPY ...", flush=True
        )
        rows += bench_publish(args.publish_rows, args.repeat)
    if "catalog_commits" in legacy:
        from catalog_commits import bench_catalog_commits

        print("  catalog_commits · SQLite and PostgreSQL catalogs, 1/2/4/8 writer processes ...", flush=True)
        rows += bench_catalog_commits(args.commit_seconds, args.repeat)
    if "s3_reads" in legacy:
        from s3_reads import bench_s3_reads

        print("  s3_reads · DuckDB over Parquet on moto S3: fsspec-wrapped pyarrow, dataset, Arrow, local", flush=True)
        rows += bench_s3_reads(args.rows, max(args.repeat, 5))
    if "pull_database" in legacy:
        from pull_database import bench_pull_database

        print(f"  pull_database · {args.rows:,} PostgreSQL rows to Bronze: lakestack, ADBC, dlt ...", flush=True)
        rows += bench_pull_database(args.rows, args.repeat)
    if "spark" in legacy:
        from spark import bench_spark

        print("  spark · Silver MERGE and Gold builds, DuckDB vs Spark local[2] through lakestack ...", flush=True)
        rows += bench_spark(args.spark_base, args.spark_change, args.spark_gold, args.repeat)
    show(rows)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()

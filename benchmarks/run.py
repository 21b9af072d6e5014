"""lakestack benchmarks, side by side with their peers. Run with `make bench`."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from data import EVENT_SCHEMA, make_events, write_orders_csv, write_orders_ndjson

RESULTS = Path(__file__).parent / "results"


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_validation(n_events: int, repeat: int) -> list[dict[str, Any]]:
    import fastjsonschema
    import jsonschema

    from lakestack.contracts.jsonschema import load_event_contract
    from lakestack.contracts.validate import RecordValidator

    raws = make_events(n_events)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.v1.json"
        path.write_text(json.dumps(EVENT_SCHEMA))
        validator = RecordValidator(load_event_contract(path, "events", 1, "events.v1.json"))

    def lakestack_run() -> int:
        return len(validator.validate_json(raws).valid)

    fast = fastjsonschema.compile(EVENT_SCHEMA)

    def fast_run() -> int:
        ok = 0
        for raw in raws:
            try:
                fast(json.loads(raw))
                ok += 1
            except fastjsonschema.JsonSchemaException:
                pass
        return ok

    checker = jsonschema.Draft202012Validator(EVENT_SCHEMA, format_checker=jsonschema.FormatChecker())

    def jsonschema_run() -> int:
        return sum(1 for raw in raws if checker.is_valid(json.loads(raw)))

    rows = []
    for name, fn, reps in (
        ("lakestack", lakestack_run, repeat),
        ("fastjsonschema", fast_run, repeat),
        ("jsonschema", jsonschema_run, 1),
    ):
        print(f"  validation · {name} ...", flush=True)
        seconds, valid = median_time(fn, reps)
        rows.append(
            {
                "benchmark": "validation",
                "tool": name,
                "events": n_events,
                "valid": valid,
                "median_s": round(seconds, 3),
                "per_s": round(n_events / seconds),
                "repeats": reps,
            }
        )
    base = rows[0]["per_s"]
    for row in rows:
        row["lakestack_speedup"] = round(base / row["per_s"], 1)
    assert len({r["valid"] for r in rows}) == 1, f"validators disagree on valid counts: {rows}"
    return rows


def _project(root: Path, fmt: str) -> None:
    from lakestack.pipeline.scaffold import init_project

    init_project("bench", root)
    shutil.copyfile(
        Path(__file__).parent / "contracts" / f"orders_{fmt}.v1.yaml", root / "contracts" / "orders.v1.yaml"
    )
    (root / "lakestack.yaml").write_text(
        (root / "lakestack.yaml")
        .read_text()
        .replace(
            "  events:\n    kind: files\n    landing: landing/events\n    contract: events\n",
            "  orders:\n    kind: files\n    landing: landing/orders\n    contract: orders\n",
        )
    )


def bench_ingest(n_rows: int, repeat: int) -> list[dict[str, Any]]:
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson

    from lakestack import Lake
    from lakestack.storage.warehouse import append

    rows = []
    for fmt, writer in (("csv", write_orders_csv), ("ndjson", write_orders_ndjson)):
        with tempfile.TemporaryDirectory() as tmp:
            landing = Path(tmp) / "landing"
            files = writer(landing, n_rows, files=10)

            def lakestack_run(fmt: str = fmt, landing: Path = landing, tmp: str = tmp) -> int:
                root = Path(tempfile.mkdtemp(dir=tmp))
                _project(root, fmt)
                shutil.copytree(landing, root / "landing" / "orders")
                report = Lake.open(root).ingest(["orders"])
                assert report.rows_in == report.landed + report.quarantined == n_rows
                return int(report.landed)

            def floor_run(fmt: str = fmt, files: list[Path] = files, tmp: str = tmp) -> int:
                root = Path(tempfile.mkdtemp(dir=tmp))
                _project(root, fmt)
                lake = Lake.open(root)
                table = lake.warehouse.bronze_table(lake.project.contract("orders"))
                target = table.schema().as_arrow()
                reader = pacsv.read_csv if fmt == "csv" else pajson.read_json
                import pyarrow as pa

                parts = [reader(f) for f in files]
                data = pa.concat_tables(parts, promote_options="permissive")
                n = data.num_rows
                filler = {
                    "_ingested_at": datetime.now(UTC),
                    "_source": "orders",
                    "_run_id": "floor",
                    "_contract_version": 1,
                }
                full = pa.table(
                    {
                        f.name: data[f.name].cast(f.type, safe=False)
                        if f.name in data.column_names
                        else pa.array([filler.get(f.name)] * n, f.type)
                        for f in target
                    }
                )
                append(table, full, run_id="floor", batch_id="floor")
                return int(data.num_rows)

            for name, fn in (
                (f"lakestack ingest ({fmt})", lakestack_run),
                (f"pyarrow read + pyiceberg append, no validation ({fmt})", floor_run),
            ):
                print(f"  ingest · {name} ...", flush=True)
                seconds, landed = median_time(fn, repeat)
                rows.append(
                    {
                        "benchmark": "ingest",
                        "tool": name,
                        "rows": n_rows,
                        "landed": landed,
                        "median_s": round(seconds, 3),
                        "per_s": round(n_rows / seconds),
                        "repeats": repeat,
                    }
                )
    return rows


def show(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lakestack benchmarks (medians)")
    for col in ("benchmark", "tool", "median_s", "per_s", "ratio"):
        table.add_column(col, justify="left" if col in ("benchmark", "tool") else "right")
    for r in rows:
        speed = r.get("lakestack_speedup") or r.get("vs_lakestack")
        tool = r["tool"] + (f" · p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms" if "p99_ms" in r else "")
        table.add_row(r["benchmark"], tool, f"{r['median_s']:.3f}", f"{r['per_s']:,}", f"{speed}×" if speed else "")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only", choices=["validation", "ingest", "merge", "gold", "quality", "http", "kafka", "kinesis", "nats"]
    )
    parser.add_argument("--http-seconds", type=float, default=20.0)
    parser.add_argument("--stream-events", type=int, default=200_000)
    parser.add_argument("--quality-rows", type=int, default=1_000_000)
    parser.add_argument("--gold-rows", type=int, default=10_000_000)
    parser.add_argument("--merge-base", type=int, default=1_000_000)
    parser.add_argument("--merge-large", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    if args.only in (None, "validation"):
        rows += bench_validation(args.events, args.repeat)
    if args.only in (None, "ingest"):
        rows += bench_ingest(args.rows, args.repeat)
    if args.only in (None, "merge"):
        from merge import bench_merge, bench_merge_large

        print("  merge · lakestack, pyiceberg upsert, delta-rs merge ...", flush=True)
        rows += bench_merge(args.merge_base, args.merge_base // 5, args.repeat)
        print("  merge · 1% into a large table ...", flush=True)
        rows += bench_merge_large(args.merge_large, args.repeat)
    if args.only in (None, "gold"):
        from gold import bench_gold

        print("  gold · fact_sales and daily_order_metrics ...", flush=True)
        rows += bench_gold(args.gold_rows, args.repeat)
    if args.only in (None, "quality"):
        from quality import bench_quality

        print("  quality · the Northwind checks of silver.orders ...", flush=True)
        rows += bench_quality(args.quality_rows, args.repeat)
    if args.only in (None, "http"):
        from stream_http import bench_http

        rows += bench_http(args.http_seconds, repeat=args.repeat)
    for kind in ("kafka", "kinesis", "nats"):
        if args.only in (None, kind):
            module = __import__(f"stream_{kind}")
            print(f"  {kind} → bronze · {args.stream_events:,} events ...", flush=True)
            n = min(args.stream_events, 50_000) if kind == "kinesis" else args.stream_events  # moto is slow
            rows += getattr(module, f"bench_{kind}")(n, args.repeat)
    show(rows)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()

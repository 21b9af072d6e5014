"""File ingest before and after the vectorised path (issue 19): the same files ingested record by
record (LAKESTACK_VECTORISED=0), vectorised, and by the no-validation floor (pyarrow read +
pyiceberg append), for narrow CSV and NDJSON rows and a 20-column CSV.

    .venv/bin/python benchmarks/vectorised.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from data import write_orders_csv, write_orders_ndjson

WIDE_COLUMNS = [
    ("id", "string", 'nullable: false, regex: "^W[0-9]{9}$"'),
    ("name", "string", "max_length: 40"),
    ("country", "string", "enum: [DE, FR, GB, US, JP]"),
    ("city", "string", "min_length: 2"),
    ("qty", "integer", "min: 0, max: 10000"),
    ("units", "integer", ""),
    ("year", "integer", "min: 1900, max: 2100"),
    ("stock", "integer", "nullable: false"),
    ("price", "double", "min: 0"),
    ("weight", "double", ""),
    ("lat", "double", "min: -90, max: 90"),
    ("lon", "double", "min: -180, max: 180"),
    ("amount", '"decimal(12,2)"', "min: 0"),
    ("tax", '"decimal(8,3)"', ""),
    ("order_day", "date", ""),
    ("ship_day", "date", ""),
    ("created_at", "timestamp", "nullable: false"),
    ("updated_at", "timestamp", ""),
    ("paid", "boolean", ""),
    ("gift", "boolean", ""),
]


def _contract(fmt: str, wide: bool) -> str:
    if not wide:
        return (Path(__file__).parent / "contracts" / f"orders_{fmt}.v1.yaml").read_text()
    cols = "\n".join(f"  - {{name: {n}, type: {t}{', ' + extra if extra else ''}}}" for n, t, extra in WIDE_COLUMNS)
    return (
        "source: orders\nversion: 1\nkey: [id]\n"
        f'file: {{pattern: "orders_{{date:%Y%m%d}}.csv", format: csv}}\ncolumns:\n{cols}\n'
    )


def write_wide_csv(folder: Path, n: int, files: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(5)
    per, out = -(-n // files), []
    for f in range(files):
        path = folder / f"orders_202601{f + 1:02d}.csv"
        with path.open("w") as fh:
            fh.write(",".join(c[0] for c in WIDE_COLUMNS) + "\n")
            for i in range(f * per, min(n, (f + 1) * per)):
                row = [
                    f"W{i:09d}", f"name {rnd.randrange(10**6)}", rnd.choice(["DE", "FR", "GB", "US"]),
                    rnd.choice(["Berlin", "Paris", "Leeds"]), str(rnd.randrange(10000)), str(rnd.randrange(-50, 50)),
                    str(1950 + i % 70), str(i % 1000), f"{rnd.random() * 100:.2f}", f"{rnd.random():.6f}",
                    f"{rnd.uniform(-90, 90):.5f}", f"{rnd.uniform(-180, 180):.5f}", f"{rnd.random() * 9999:.2f}",
                    f"{rnd.random() * 99:.3f}", f"2026-01-{1 + i % 28:02d}",
                    "" if i % 7 == 0 else f"2026-02-{1 + i % 28:02d}",
                    f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z", f"2026-02-01T10:{i % 60:02d}:00",
                    rnd.choice(["true", "false"]), rnd.choice(["1", "0", ""]),
                ]  # fmt: skip
                fh.write(",".join(row) + "\n")
        out.append(path)
    return out


def _project(root: Path, fmt: str, wide: bool) -> None:
    from lakestack.pipeline.scaffold import init_project

    init_project("bench", root)
    (root / "contracts" / "orders.v1.yaml").write_text(_contract(fmt, wide))
    text = (root / "lakestack.yaml").read_text()
    patched = text.replace(
        "  events:\n    kind: files\n    landing: landing/events\n    contract: events\n",
        "  orders:\n    kind: files\n    landing: landing/orders\n    contract: orders\n",
    )
    assert patched != text, "the scaffolded project changed: update benchmarks/vectorised.py"
    (root / "lakestack.yaml").write_text(patched)


def _lakestack(landing: Path, tmp: str, fmt: str, wide: bool, vectorised: bool, n: int) -> int:
    from lakestack import Lake

    os.environ["LAKESTACK_VECTORISED"] = "1" if vectorised else "0"
    root = Path(tempfile.mkdtemp(dir=tmp))
    _project(root, fmt, wide)
    shutil.copytree(landing, root / "landing" / "orders")
    report = Lake.open(root).ingest(["orders"])
    assert report.rows_in == report.landed + report.quarantined == n, (report.rows_in, report.landed)
    return int(report.landed)


def _floor(files: list[Path], tmp: str, fmt: str, wide: bool) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson

    from lakestack import Lake
    from lakestack.storage.warehouse import append

    root = Path(tempfile.mkdtemp(dir=tmp))
    _project(root, fmt, wide)
    lake = Lake.open(root)
    table = lake.warehouse.bronze_table(lake.project.contract("orders"))
    target = table.schema().as_arrow()
    reader = pacsv.read_csv if fmt == "csv" else pajson.read_json
    data = pa.concat_tables([reader(f) for f in files], promote_options="permissive")
    n = data.num_rows
    filler = {"_ingested_at": datetime.now(UTC), "_source": "orders", "_run_id": "floor", "_contract_version": 1}
    full = pa.table(
        {
            f.name: data[f.name].cast(f.type, safe=False)
            if f.name in data.column_names
            else pa.array([filler.get(f.name)] * n, f.type)
            for f in target
        }
    )
    append(table, full, run_id="floor", batch_id="floor")
    return int(n)


def run(rows: int, repeat: int, files: int, only: str | None = None, after_only: bool = False) -> list[dict[str, Any]]:
    out = []
    for label, fmt, wide, writer in (
        ("csv narrow (7 columns)", "csv", False, write_orders_csv),
        ("ndjson narrow (7 columns)", "ndjson", False, write_orders_ndjson),
        ("csv wide (20 columns)", "csv", True, write_wide_csv),
    ):
        if only is not None and only not in label:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            landing = Path(tmp) / "landing"
            written = writer(landing, rows, files=files)
            size = sum(p.stat().st_size for p in written)
            args = (landing, tmp, fmt, wide)
            runs = {
                "record by record (before)": lambda a=args: _lakestack(*a, False, rows),
                "vectorised (after)": lambda a=args: _lakestack(*a, True, rows),
                "floor: pyarrow read + pyiceberg append": lambda w=written, a=args: _floor(w, *a[1:]),
            }
            if after_only:
                del runs["record by record (before)"]
            result: dict[str, Any] = {"data": label, "rows": rows, "files": files, "mb": round(size / 1e6, 1)}
            for tool, fn in runs.items():
                fn()  # warm-up
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t0)
                median = statistics.median(times)
                result[tool] = {"median_s": round(median, 3), "rows_per_s": round(rows / median), "all_s": times}
                print(f"  {label} · {tool}: {median:.3f} s, {rows / median:,.0f} rows/s", flush=True)
            floor = result["floor: pyarrow read + pyiceberg append"]["median_s"]
            for tool in [t for t in ("record by record (before)", "vectorised (after)") if t in result]:
                result[tool]["of_floor"] = round(floor / result[tool]["median_s"], 2)
            out.append(result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", default=None, help="one data set: narrow, ndjson, wide (a word of its label)")
    parser.add_argument("--after-only", action="store_true", help="skip the record-by-record runs")
    args = parser.parse_args()
    results = run(args.rows, args.repeat, args.files, args.only, args.after_only)
    text = json.dumps({"machine_cpus": os.cpu_count(), "results": results}, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

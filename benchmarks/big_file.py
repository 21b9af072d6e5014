"""One big landing file ingested whole by one reading worker, or in segments by two (ADR 42).

    python benchmarks/big_file.py csv 3500000 3      # rows, pairs
    python benchmarks/big_file.py ndjson 2000000 3

Generates one file of the benchmark order rows (benchmarks/data.py's columns, vectorised, all
valid) in a temporary folder, then runs `Lake.open(project).ingest(["orders"])` in a child
process per run, interleaved: whole (LAKESTACK_SPLIT_BYTES=0), split (the default), whole,
split, ... with LAKESTACK_INGEST_WORKERS=2. Per run: the ingest's wall time and rows/s (timed in
the child), the largest process's peak RSS (ru_maxrss through wait4: the ingesting process or a
worker) and the peak PSS of the whole process tree (sampled from /proc every 0.1 s: the
ingesting process and its workers together, shared pages counted once). Medians of the pairs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MAX_FILE_BYTES = str(4 << 30)


def write_ndjson_fast(path: Path, n: int, seed: int = 11) -> None:
    """`n` valid order rows as NDJSON (data.write_orders_ndjson's shape, vectorised)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    from suite_memory import write_orders_csv_fast

    tmp = path.with_suffix(".csv.tmp")
    write_orders_csv_fast(tmp, n, seed)
    types = {c: pa.string() for c in ("order_id", "customer_id", "unit_price", "currency", "status", "order_ts")}
    reader = pacsv.open_csv(tmp, convert_options=pacsv.ConvertOptions(column_types=types))
    with path.open("wb") as out:
        for batch in reader:
            parts: list[object] = []
            for i, name in enumerate(batch.schema.names):
                quote = "" if name == "quantity" else '"'
                parts += [("{" if i == 0 else ",") + f'"{name}":{quote}', pc.cast(batch[name], pa.string()), quote]
            parts[-1] = str(parts[-1]) + "}\n"
            lines = pc.binary_join_element_wise(*parts, "")
            offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + len(lines) + 1]
            out.write(memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])])
    tmp.unlink()


def _project(root: Path, fmt: str, data: Path) -> None:
    from suite_files import _project as make

    make(root, fmt)
    landing = root / "landing" / "orders"
    landing.mkdir(parents=True, exist_ok=True)
    os.link(data, landing / data.name)


def child(root: str) -> None:
    import resource

    from lakestack import Lake
    from lakestack.ingest.files import FileSource

    read_segment = FileSource._read_segment

    def timed(self: FileSource, *args: object) -> tuple[object, ...]:
        started = time.process_time()
        try:
            return read_segment(self, *args)  # type: ignore[arg-type]
        finally:  # the worker's CPU for its segment, on this run's stdout (a line per segment)
            print(json.dumps({"segment_cpu": time.process_time() - started}), flush=True)

    FileSource._read_segment = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    report = Lake.open(Path(root)).ingest(["orders"])
    took = time.perf_counter() - started

    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    self_cpu = own.ru_utime + own.ru_stime
    cpu = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime  # the whole process, imports too
    result = {
        "rows": int(report.landed),
        "quarantined": int(report.quarantined),
        "seconds": took,
        "cpu_s": cpu,
        "self_cpu_s": self_cpu,
    }
    print(json.dumps({**result, "maxrss_mb": own.ru_maxrss / 1024, "worker_maxrss_mb": workers.ru_maxrss / 1024}))


def _tree_pss(pid: int) -> int:
    """PSS in kB of `pid` and its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def run(fmt: str, data: Path, work: Path, split: bool) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="rep-", dir=work)) / "p"
    _project(root, fmt, data)
    env = {
        **os.environ,
        "LAKESTACK_INGEST_WORKERS": "2",
        "LAKESTACK_MAX_DECOMPRESSED_BYTES": MAX_FILE_BYTES,
        "LAKESTACK_SPLIT_BYTES": "" if split else "0",
    }
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(root)], env=env, stdout=subprocess.PIPE, cwd=Path(__file__).parent
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else b""
    lines = [json.loads(line) for line in out.decode().strip().splitlines() if line.startswith("{")]
    result = lines[-1]
    # the CPU seconds on the longest path: the ingesting process plus its slowest segment (on an
    # idle host with a core per worker, about the wall time)
    segments = [line["segment_cpu"] for line in lines if "segment_cpu" in line]
    result["critical_cpu_s"] = result.get("self_cpu_s", 0.0) + max(segments, default=0.0)
    shutil.rmtree(root.parent, ignore_errors=True)
    return {**result, "tree_pss_mb": peak / 1024, "split": split}


def main() -> None:
    fmt, rows, pairs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    work = Path(tempfile.mkdtemp(prefix="bigfile-"))
    data = work / f"orders_20260101.{fmt}"
    started = time.perf_counter()
    if fmt == "csv":
        from suite_memory import write_orders_csv_fast

        write_orders_csv_fast(data, rows)
    else:
        write_ndjson_fast(data, rows)
    size = data.stat().st_size
    print(f"{fmt}: {rows:,} rows, {size / 1e6:,.0f} MB, generated in {time.perf_counter() - started:.0f} s", flush=True)
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    try:
        for n in range(pairs):
            for split in (False, True) if n % 2 == 0 else (True, False):
                r = run(fmt, data, work, split)
                assert r["rows"] == rows and r["quarantined"] == 0, r
                results[split].append(r)
                print(
                    f"  {'split' if split else 'whole'}: {r['seconds']:.1f} s, {rows / r['seconds']:,.0f} rows/s, "
                    f"tree PSS {r['tree_pss_mb']:,.0f} MB, RSS ingesting process {r['maxrss_mb']:,.0f} MB, "
                    f"largest worker {r['worker_maxrss_mb']:,.0f} MB, CPU {r['cpu_s']:.1f} s "
                    f"(longest path {r.get('critical_cpu_s', 0):.1f} s), "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for split, runs in results.items():
        secs = statistics.median(r["seconds"] for r in runs)
        pss = statistics.median(r["tree_pss_mb"] for r in runs)
        print(
            f"{'split' if split else 'whole'} median: {secs:.1f} s, {rows / secs:,.0f} rows/s, tree PSS {pss:,.0f} MB"
        )
    whole = statistics.median(r["seconds"] for r in results[False])
    split_s = statistics.median(r["seconds"] for r in results[True])
    print(f"speed-up (median whole / median split): {whole / split_s:.2f}x")


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()

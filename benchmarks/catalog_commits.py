"""Catalog commits per second: SQLite vs PostgreSQL catalogs, 1, 2, 4 and 8 writer processes
appending to the same table (issue 16 item 6, docs/scaling.md).

    python benchmarks/catalog_commits.py [SECONDS] [REPEAT]
    python benchmarks/run.py --only catalog_commits

Each writer is a process of its own (as a writer on another host would be): it opens the catalog
as lakestack does (`storage.catalog.open_catalog`: SQLite with WAL and a busy timeout, or
PostgreSQL), waits for the start signal, then appends one-row batches with lakestack's own
`storage.warehouse.append` (a batch id per commit, a conflict retried with jittered backoff from a
fresh read) until the time is up. A commit is counted when `append` returns; one that gave up
after its retries is counted as failed. Every run starts from a fresh, empty table, so runs
are alike; the table's metadata grows with its commits within a run, as it does in production
until `lakestack maintain` expires snapshots.

Reported per catalog and writer count: commits/s over the whole run (all writers together), the
median of REPEAT runs, p50/p99 commit latency of the median run, and how many tries conflicted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

WRITERS = (1, 2, 4, 8)
POSTGRES = os.environ.get("LAKESTACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = "_lakestack.bench_commits"


def _environment(uri: str, warehouse: Path) -> Any:
    from lakestack.config import CatalogConfig, EnvironmentConfig

    return EnvironmentConfig(warehouse=str(warehouse), catalog=CatalogConfig(type="sql", uri=uri))


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("writer", pa.int32(), nullable=False), pa.field("n", pa.int64(), nullable=False)])


def _open(uri: str, root: Path) -> Any:
    from lakestack.storage.catalog import open_catalog
    from lakestack.storage.warehouse import Warehouse

    return Warehouse(open_catalog(_environment(uri, root / "warehouse"), root, "bench"))


def worker(uri: str, root: str, index: int, seconds: float) -> None:
    """One writer: ready, wait for 'go' on stdin, append until the time is up, print the counts."""
    import logging

    import pyarrow as pa

    from lakestack.errors import CommitConflictError
    from lakestack.storage import warehouse as wh

    tries = [0]
    real = wh._fast_append

    def counted(*args: Any) -> None:  # every try reaches the catalog once: count them
        tries[0] += 1
        real(*args)

    setattr(wh, "_fast_append", counted)  # noqa: B010 (a module attribute mypy types)
    logging.disable(logging.INFO)
    warehouse = _open(uri, Path(root))
    table = warehouse.load(TABLE)
    run_id = f"bench-{index}"
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[float] = []
    failed = 0
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        data = pa.table({"writer": [index], "n": [n]}, schema=_schema())
        started = time.perf_counter()
        try:
            table = wh.append(table, data, run_id=run_id, batch_id=uuid.uuid4().hex)
            latencies.append(time.perf_counter() - started)
            n += 1
        except CommitConflictError:
            failed += 1
            table = table.refresh()
    print(json.dumps({"commits": n, "failed": failed, "tries": tries[0], "latencies": latencies}), flush=True)


def _prepare(catalog: str, root: Path) -> tuple[str, Any]:
    """A fresh catalog (an SQLite file or a new PostgreSQL database) with the empty table."""
    if catalog == "sqlite":
        uri = f"sqlite:///{root}/catalog.db"
        cleanup = None
    else:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from lake_support import create_database, drop_database

        uri = create_database(POSTGRES)
        cleanup = uri
    warehouse = _open(uri, root)
    warehouse.system_table(TABLE, _schema())
    if cleanup is not None:
        warehouse.catalog.engine.dispose()
        return uri, lambda: drop_database(cleanup)
    return uri, lambda: None


def run_once(catalog: str, writers: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lakestack-commits-") as tmp:
        root = Path(tmp)
        uri, cleanup = _prepare(catalog, root)
        try:
            procs = [
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", uri, str(root), str(i), str(seconds)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i in range(writers)
            ]
            for proc in procs:  # every writer has imported, opened the catalog and loaded the table
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            results = [json.loads(proc.communicate(timeout=seconds + 300)[0]) for proc in procs]
            if any(proc.returncode for proc in procs):
                raise RuntimeError(f"a writer failed: {[p.returncode for p in procs]}")
            committed = _committed(uri, root)
        finally:
            cleanup()
    commits = sum(r["commits"] for r in results)
    assert committed == commits, f"{catalog}: {committed} rows in the table, {commits} commits acknowledged"
    latencies = sorted(x for r in results for x in r["latencies"])
    tries = sum(r["tries"] for r in results)
    return {
        "per_s": commits / seconds,
        "commits": commits,
        "failed": sum(r["failed"] for r in results),
        "conflicts": tries - commits,
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)
        if latencies
        else None,
    }


def _committed(uri: str, root: Path) -> int:
    warehouse = _open(uri, root)
    rows = warehouse.load(TABLE).scan().to_arrow().num_rows
    if hasattr(warehouse.catalog, "engine"):
        warehouse.catalog.engine.dispose()
    return int(rows)


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES, connect_timeout=3):
            return True
    except Exception:
        return False


def requests_per_commit(commits: int = 200, sample: int = 20) -> list[dict[str, Any]]:
    """Object-store requests one append makes, counted at pyiceberg's FileIO (every file opened for
    reading is a GET, every file created a PUT, every size or existence probe a HEAD on S3), and the
    table metadata file's size, after 10 and after `commits` commits of one row into one day
    partition. A local warehouse: the same calls go to S3 with pyiceberg's S3 FileIO."""
    from datetime import datetime

    import pyarrow as pa
    from pyiceberg.io import pyarrow as pio
    from pyiceberg.transforms import DayTransform

    from lakestack.storage.warehouse import BRONZE_PROPERTIES, append

    counts = {"GET": 0, "PUT": 0, "HEAD": 0}

    def counting(method: Any, kind: str) -> Any:
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts[kind] += 1
            return method(self, *args, **kwargs)

        return wrapped

    patched = {
        "open": pio.PyArrowFile.open,
        "create": pio.PyArrowFile.create,
        "exists": pio.PyArrowFile.exists,
        "__len__": pio.PyArrowFile.__len__,
    }
    kinds = {"open": "GET", "create": "PUT", "exists": "HEAD", "__len__": "HEAD"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="lakestack-requests-") as tmp:
        root = Path(tmp)
        warehouse = _open(f"sqlite:///{root}/catalog.db", root)
        warehouse.ensure_namespaces()
        arrow = pa.schema([pa.field("ts", pa.timestamp("us", "UTC"), nullable=False), pa.field("n", pa.int64())])
        table = warehouse.catalog.create_table("bronze.requests", schema=arrow, properties=dict(BRONZE_PROPERTIES))
        with table.update_spec() as spec:
            spec.add_field("ts", DayTransform(), "ts_day")
        table = warehouse.load("bronze.requests")
        now = datetime.now().astimezone()
        done = 0
        for target in (10, commits):
            while done < target - sample:
                table = append(
                    table, pa.table({"ts": [now], "n": [done]}, schema=arrow), run_id="r", batch_id=f"b{done}"
                )
                done += 1
            for name, method in patched.items():
                setattr(pio.PyArrowFile, name, counting(method, kinds[name]))
            counts.update(GET=0, PUT=0, HEAD=0)
            try:
                for _ in range(sample):
                    table = append(
                        table, pa.table({"ts": [now], "n": [done]}, schema=arrow), run_id="r", batch_id=f"b{done}"
                    )
                    done += 1
            finally:
                for name, method in patched.items():
                    setattr(pio.PyArrowFile, name, method)
            metadata_file = Path(table.metadata_location.removeprefix("file://"))
            metadata = metadata_file.stat().st_size
            folder = sum(p.stat().st_size for p in metadata_file.parent.iterdir())  # every version kept
            rows.append(
                {
                    "benchmark": f"object-store requests per append · at {done} commits",
                    "tool": "lakestack append (one day partition, one row)",
                    "commits": done,
                    "median_s": 0.0,
                    "per_s": 0,
                    "get": round(counts["GET"] / sample, 2),
                    "put": round(counts["PUT"] / sample, 2),
                    "head": round(counts["HEAD"] / sample, 2),
                    "metadata_bytes": metadata,
                    "metadata_folder_bytes": folder,
                }
            )
            print(
                f"  requests per append at {done} commits: GET {rows[-1]['get']}, PUT {rows[-1]['put']}, "
                f"HEAD {rows[-1]['head']}; metadata.json {metadata:,} bytes, metadata folder {folder:,} bytes",
                flush=True,
            )
    return rows


def bench_catalog_commits(seconds: float = 5.0, repeat: int = 3) -> list[dict[str, Any]]:
    catalogs = ["sqlite"] + (["postgresql"] if _postgres_available() else [])
    if "postgresql" not in catalogs:
        print(f"  catalog_commits: no PostgreSQL at {POSTGRES}; SQLite only", flush=True)
    rows = []
    for catalog in catalogs:
        for writers in WRITERS:
            runs = [run_once(catalog, writers, seconds) for _ in range(repeat)]
            runs.sort(key=lambda r: r["per_s"])
            median = runs[len(runs) // 2]
            rows.append(
                {
                    "benchmark": f"catalog commits/s · {writers} writer{'s' if writers > 1 else ''}",
                    "tool": f"{catalog} catalog",
                    "catalog": catalog,
                    "writers": writers,
                    "seconds": seconds,
                    "median_s": round(1 / median["per_s"], 4) if median["per_s"] else 0.0,
                    "per_s": round(statistics.median(r["per_s"] for r in runs), 1),
                    "runs_per_s": [round(r["per_s"], 1) for r in runs],
                    "conflicts": median["conflicts"],
                    "failed": median["failed"],
                    "p50_ms": median["p50_ms"],
                    "p99_ms": median["p99_ms"],
                }
            )
            print(
                f"  {catalog:10} {writers} writers: {rows[-1]['per_s']:7.1f} commits/s "
                f"(runs {rows[-1]['runs_per_s']}), conflicts {median['conflicts']}, failed {median['failed']}, "
                f"p50 {median['p50_ms']} ms, p99 {median['p99_ms']} ms",
                flush=True,
            )
    return rows + requests_per_commit()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
        repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
        print(json.dumps(bench_catalog_commits(seconds, repeat), indent=2))

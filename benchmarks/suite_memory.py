"""Peak memory of a file ingest against the file's size: one CSV of ~215 MB and one of ~2.15 GB.

The files are generated on the fly (vectorised, deterministic: benchmarks/data.py's order rows, the
same contract) into the harness's temporary data folder and deleted with it; each repetition's
project links the file into its landing folder (a hard link, no copy). The point is the peak RSS of
the child process (rusage): bounded by the block being validated and written, it stays level from
the small file to the large one; holding the file's rows, it grows ten-fold.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from harness import Benchmark, Prepare, Tool
from suite_files import _fresh, _project

COLUMNS = ("order_id", "customer_id", "quantity", "unit_price", "currency", "status", "order_ts")
CHUNK = 1_000_000
# the default cap on one landing file is 512 MiB (the record path holds a file's rows); raised here
MAX_FILE_BYTES = 4 << 30


def write_orders_csv_fast(path: Path, n: int, seed: int = 11) -> None:
    """`n` valid order rows as one CSV (what data.write_orders_csv writes, vectorised; ~62 bytes a row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    stamps = pa.array(
        [f"2026-01-{1 + d:02d}T{h:02d}:{m:02d}:00Z" for d in range(28) for h in range(24) for m in range(60)]
    )
    currencies, statuses = pa.array(["USD", "EUR", "GBP"]), pa.array(["placed", "paid", "shipped"])

    def digits(values: Any, width: int) -> Any:
        return pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width, "0")

    with path.open("wb") as out:
        out.write((",".join(COLUMNS) + "\n").encode())  # unquoted, as landing files usually are
        writer = None
        for start in range(0, n, CHUNK):
            i = np.arange(start, min(n, start + CHUNK), dtype=np.int64)
            cents = rng.integers(0, 30_000, len(i))
            table = pa.table(
                {
                    "order_id": pc.binary_join_element_wise("ORD-", digits(i, 8), ""),
                    "customer_id": pc.binary_join_element_wise("C", digits(rng.integers(0, 1_000_000, len(i)), 6), ""),
                    "quantity": pa.array(1 + rng.integers(0, 20, len(i))),
                    "unit_price": pc.binary_join_element_wise(
                        pc.cast(pa.array(cents // 100), pa.string()), digits(cents % 100, 2), "."
                    ),
                    "currency": currencies.take(pa.array(rng.integers(0, 3, len(i)))),
                    "status": statuses.take(pa.array(rng.integers(0, 3, len(i)))),
                    "order_ts": stamps.take(pa.array(((i % 28) * 24 + i % 24) * 60 + i % 60)),
                }
            )
            if writer is None:
                writer = pacsv.CSVWriter(
                    out, table.schema, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none")
                )
            writer.write_table(table)
        if writer is not None:
            writer.close()


def _data(size: int, folder: Path) -> None:
    (folder / "landing").mkdir(parents=True, exist_ok=True)
    write_orders_csv_fast(folder / "landing" / "orders_20260101.csv", size)


def _linked(data: Path, landing: Path) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    for f in (data / "landing").iterdir():
        os.link(f, landing / f.name)


def _lakestack(size: int, work: Path, data: Path, table_format: str = "iceberg") -> Prepare:
    from lakestack import Lake

    os.environ["LAKESTACK_MAX_DECOMPRESSED_BYTES"] = str(MAX_FILE_BYTES)

    def prepare() -> Any:
        root = _fresh(work) / "p"
        _project(root, "csv")
        if table_format == "delta":  # the dev environment's tables are Delta tables (ADR 35)
            config = root / "lakestack.yaml"
            config.write_text(
                config.read_text().replace("    engine: duckdb\n", "    engine: duckdb\n    format: delta\n", 1)
            )
        _linked(data, root / "landing" / "orders")

        def go() -> int:
            report = Lake.open(root).ingest(["orders"])
            assert report.quarantined == 0, report
            return int(report.landed)

        return go

    return prepare


def _lakestack_delta(size: int, work: Path, data: Path) -> Prepare:
    return _lakestack(size, work, data, "delta")


def _streaming_floor(size: int, work: Path, data: Path) -> Prepare:
    """pyarrow's streaming CSV reader (typed) into one Parquet file, a batch at a time."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    files = sorted((data / "landing").iterdir())
    types = {"quantity": pa.int64(), "unit_price": pa.decimal128(12, 2), "order_ts": pa.timestamp("us", tz="UTC")}

    def prepare() -> Any:
        out = _fresh(work) / "orders.parquet"

        def go() -> int:
            rows = 0
            reader = pacsv.open_csv(files[0], convert_options=pacsv.ConvertOptions(column_types=types))
            with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            return rows

        return go

    return prepare


def _whole_file(size: int, work: Path, data: Path) -> Prepare:
    """pyarrow.csv.read_csv of the whole file, then one Parquet write: memory grows with the file."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    files = sorted((data / "landing").iterdir())

    def prepare() -> Any:
        out = _fresh(work) / "orders.parquet"

        def go() -> int:
            table = pacsv.read_csv(files[0])
            pq.write_table(table, out, compression="zstd")
            return int(table.num_rows)

        return go

    return prepare


def _disk_free() -> str | None:
    free = shutil.disk_usage(os.environ.get("TMPDIR", "/tmp")).free
    need = 8 << 30  # the two files, one Bronze copy of the large one, headroom
    return None if free > need else f"needs {need >> 30} GiB free in the temporary folder, {free >> 30} GiB are"


MEMORY = Benchmark(
    name="memory",
    description="Peak memory (child-process rusage) of ingesting one CSV landing file of ~215 MB and of "
    "~2.15 GB (7 narrow columns, all valid) to committed Bronze: bounded by the block, not the file",
    unit="rows",
    sizes=(3_500_000, 35_000_000),
    data=_data,
    available=_disk_free,
    tools=(
        Tool(
            "lakestack ingest (csv)",
            "Lake.open(project).ingest(['orders']) on a fresh project, the file hard-linked into its landing "
            f"folder; LAKESTACK_MAX_DECOMPRESSED_BYTES={MAX_FILE_BYTES} (the default cap is 512 MiB). One timed run",
            _lakestack,
            role="lakestack",
            repeat=1,
        ),
        Tool(
            "lakestack ingest (csv, format: delta)",
            "the same on a `format: delta` environment: blocks streamed into Parquet files in the Delta "
            "table's partition folder, added by path in one commit (ADR 37). One timed run",
            _lakestack_delta,
            repeat=1,
        ),
        Tool(
            "floor: pyarrow streaming read + Parquet write",
            "pyarrow.csv.open_csv (typed, default block size) written batch by batch with pq.ParquetWriter "
            "(zstd): no validation, no table format. One timed run",
            _streaming_floor,
            role="floor",
            repeat=1,
        ),
        Tool(
            "pyarrow read_csv whole file + Parquet write",
            "pyarrow.csv.read_csv of the whole file, pq.write_table (zstd): what holding the file costs. One timed run",
            _whole_file,
            repeat=1,
        ),
    ),
)

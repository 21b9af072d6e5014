"""Where a file ingest's time goes: `python benchmarks/ingest_profile.py [csv|ndjson] [ROWS] [REPEAT]`.

The ingest of suite_files.py (ROWS rows in 10 landing files, default 1,000,000), read in the
ingesting process (LAKESTACK_INGEST_WORKERS=1, so every phase is seen), timed phase by phase: the
reader's, validator's and storage's functions are wrapped with a timer (exclusive times: a phase
nested in another is not counted twice). Medians of REPEAT runs (3), each on a fresh project, after
a warm-up at 30,000 rows. Prints a Markdown table; `--json PATH` also writes the medians.

Run it against another checkout's code with PYTHONPATH=that/src (the phases it lacks stay at 0).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

PHASES = {
    "hash": "sha256 of each landing file (its identity in the file ledger; a read of its own)",
    "read": "block boundaries, line numbers, raw text, pyarrow's CSV/JSON parse of each block",
    "validate": "the column checks (vector.py) and the record path for rows they do not accept",
    "meta": "Bronze's lineage columns and the run stamp (_raw, _source_file, _ingested_at, ...)",
    "write": "Parquet data files (zstd)",
    "commit": "the Iceberg commits (manifests, metadata, catalog row) and the file ledger",
    "other": "opening the project and catalog, discovery, the run record, Python in between",
}


class Timer:
    """Exclusive time per phase: a phase running inside another is subtracted from the outer one."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([0.0])
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - t0
                nested = self._stack.pop()[0]
                self.spent[phase] += took - nested
                if self._stack:
                    self._stack[-1][0] += took

        return timed


def instrument(timer: Timer) -> None:
    import importlib

    targets = [
        ("lakestack.ingest.files", None, "_sha256", "hash"),
        ("lakestack.ingest.vectorised", None, "_parse", "read"),
        ("lakestack.ingest.vectorised", None, "_json_block", "read"),
        ("lakestack.ingest.vectorised", None, "_last_boundary", "read"),
        ("lakestack.contracts.vector", "ColumnValidator", "validate", "validate"),
        ("lakestack.ingest.files", "FileSource", "_with_meta", "meta"),
        ("lakestack.ingest.files", None, "stamp", "meta"),
        ("lakestack.storage.streamed", "StreamedFile", "write", "write"),
        ("lakestack.storage.streamed", "StreamedFile", "close", "write"),
        ("lakestack.storage.warehouse", None, "write_data_files", "write"),
        ("lakestack.storage.warehouse", None, "append", "commit"),
        ("lakestack.storage.streamed", None, "append_written", "commit"),
        ("lakestack.ingest.files", None, "_ledger", "commit"),
    ]
    for module_name, owner, name, phase in targets:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an older checkout without this module
            continue
        holder = getattr(module, owner) if owner else module
        if hasattr(holder, name):
            setattr(holder, name, timer.wrap(phase, getattr(holder, name)))
    files = importlib.import_module("lakestack.ingest.files")
    files.append = importlib.import_module("lakestack.storage.warehouse").append  # the wrapped one


def one_run(fmt: str, data: Path, timer: Timer | None) -> tuple[float, dict[str, float]]:
    from suite_files import _project

    from lakestack import Lake

    root = Path(tempfile.mkdtemp(prefix="ingest-profile-")) / "p"
    try:
        _project(root, fmt)
        shutil.copytree(data / "landing", root / "landing" / "orders")
        if timer is not None:
            timer.spent.clear()
        t0 = time.perf_counter()
        report = Lake.open(root).ingest(["orders"])
        total = time.perf_counter() - t0
        assert report.quarantined == 0, report
        spent = dict(timer.spent) if timer is not None else {}
        spent["other"] = total - sum(spent.values())
        return total, spent
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def main() -> None:
    from data import write_orders_csv, write_orders_ndjson

    args = [a for a in sys.argv[1:] if not a.startswith("--json")]
    out = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--json=")), None)
    fmt = args[0] if args else "csv"
    rows = int(args[1]) if len(args) > 1 else 1_000_000
    repeat = int(args[2]) if len(args) > 2 else 3
    os.environ["LAKESTACK_INGEST_WORKERS"] = "1"
    write = write_orders_csv if fmt == "csv" else write_orders_ndjson
    with tempfile.TemporaryDirectory(prefix="ingest-profile-data-") as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        write(small / "landing", 30_000, files=10)
        write(large / "landing", rows, files=10)
        timer = Timer()
        instrument(timer)
        one_run(fmt, small, timer)  # warm-up: imports, first catalog
        runs = [one_run(fmt, large, timer) for _ in range(repeat)]
    total = statistics.median(t for t, _ in runs)
    phases = {p: statistics.median(s.get(p, 0.0) for _, s in runs) for p in PHASES}
    print(f"{fmt}, {rows:,} rows, in-process, median of {repeat}: {total:.2f} s ({rows / total:,.0f} rows/s)")
    print("| phase | s | share | what |\n|---|---:|---:|---|")
    for p, what in PHASES.items():
        print(f"| {p} | {phases[p]:.2f} | {phases[p] / total:.0%} | {what} |")
    if out:
        Path(out).write_text(json.dumps({"format": fmt, "rows": rows, "total_s": total, "phases_s": phases}, indent=2))


if __name__ == "__main__":
    main()

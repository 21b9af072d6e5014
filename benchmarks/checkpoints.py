"""Checkpoint reads and the compact checkpoint's cost (ADR 18): the per-commit format walked back
through history (before) against the compact state on the newest snapshot (now), on the same tables.

    python benchmarks/checkpoints.py [COMMITS] [LEDGER_FILES...]

- resume: read every stream partition's position (a quiet one lives only in the oldest commit) from
  a table of COMMITS stream commits, per-commit walk vs compact state.
- ledger: read a file ledger of N files committed in batches of 200, walk vs Parquet side file;
  and what a commit pays to write that side file (median ms, bytes).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakestack.storage import checkpoint_files
from lakestack.storage import checkpoints as ck
from lakestack.storage.warehouse import Warehouse


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()  # real hashes: they do not compress


SCHEMA = pa.schema([pa.field("n", pa.int64(), nullable=False)])


def median_ms(fn: Callable[[], Any], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _table(root: Path, name: str) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    (root / "wh").mkdir(exist_ok=True)
    catalog = SqlCatalog("b", uri=f"sqlite:///{root / 'c.db'}", warehouse=f"file://{root / 'wh'}")
    return Warehouse(catalog).system_table(f"_lakestack.{name}", SCHEMA)


def _commit(table: Any, props: dict[str, str]) -> Any:
    with table.transaction() as tx:
        tx.append(pa.table({"n": pa.array([1], pa.int64())}, schema=SCHEMA), snapshot_properties=props)
    return table.refresh()


def _legacy(checkpoint: dict[str, Any]) -> dict[str, str]:
    return {ck.RUN_ID: "r", ck.BATCH_ID: str(time.time_ns()), ck.CHECKPOINT: json.dumps(checkpoint)}


def walk_positions(table: Any) -> dict[str, int]:
    """The reading before the typed API: newest first, every commit's summary, back to each partition."""
    out: dict[str, int] = {}
    for snap in reversed(table.metadata.snapshots):
        raw = (snap.summary.additional_properties if snap.summary else {}).get(ck.CHECKPOINT)
        for p, v in ((json.loads(raw) if raw else {}).get("stream") or {}).get("positions", {}).items():
            out.setdefault(p, int(v))
    return out


def walk_ledger(table: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for snap in table.metadata.snapshots:
        summary = snap.summary.additional_properties if snap.summary else {}
        raw = summary.get(ck.CHECKPOINT)
        for f in (json.loads(raw) if raw else {}).get("files", []):
            out.setdefault(f["sha256"], {"name": f["name"], "run": summary.get(ck.RUN_ID)})
    return out


def bench_resume(root: Path, commits: int) -> dict[str, Any]:
    old, new = _table(root, "old_stream"), _table(root, "new_stream")
    first = ck.StreamBatch("kafka", {"t/0": 0, "t/1": 0, "t/2": 0, "t/3": 0})
    old = _commit(old, _legacy(ck.encode(first)))
    new = _commit(new, ck.commit_properties(new, "r", "b", first))
    for i in range(1, commits):
        batch = ck.StreamBatch("kafka", {"t/0": i})  # t/1..t/3 stay quiet
        old = _commit(old, _legacy(ck.encode(batch)))
        new = _commit(new, ck.commit_properties(new, "r", f"b{i}", batch))
    assert walk_positions(old) == dict(ck.read_checkpoint(new, ck.StreamPositions).positions)
    return {
        "bench": "resume",
        "commits": commits,
        "walk_ms": median_ms(lambda: walk_positions(old)),
        "compact_ms": median_ms(lambda: ck.read_checkpoint(new, ck.StreamPositions)),
        "state_bytes": len(new.current_snapshot().summary.additional_properties[ck.STATE]),
    }


def bench_ledger(root: Path, files: int) -> dict[str, Any]:
    old, new = _table(root, f"old_files_{files}"), _table(root, f"new_files_{files}")
    write_ms: list[float] = []
    for start in range(0, files, 200):
        batch = ck.FileBatch(
            tuple(ck.BatchFile(f"f{i}.csv", _sha(i), "landed", 10, 0) for i in range(start, min(files, start + 200)))
        )
        old = _commit(old, _legacy(ck.encode(batch)))
        started = time.perf_counter()
        props = ck.commit_properties(new, "r", f"b{start}", batch)
        write_ms.append((time.perf_counter() - started) * 1000)
        new = _commit(new, props)
    assert len(walk_ledger(old)) == len(ck.read_checkpoint(new, ck.FileLedger)) == files
    checkpoint_files._CACHE.clear()
    path = json.loads(new.current_snapshot().summary.additional_properties[ck.STATE])["ledger"]["path"]

    def cold() -> None:
        checkpoint_files._CACHE.clear()
        ck.read_checkpoint(new, ck.FileLedger)

    return {
        "bench": "ledger",
        "files": files,
        "commits": len(write_ms),
        "walk_ms": median_ms(lambda: walk_ledger(old)),
        "side_file_cold_ms": median_ms(cold),
        "side_file_cached_ms": median_ms(lambda: ck.read_checkpoint(new, ck.FileLedger)),
        "commit_write_ms_median": statistics.median(write_ms),
        "commit_write_ms_last": write_ms[-1],
        "side_file_bytes": Path(path.removeprefix("file://")).stat().st_size,
        "inline_json_bytes": len(
            json.dumps(
                ck.encode(
                    ck.FileBatch(tuple(ck.BatchFile(f"f{i}.csv", _sha(i), "landed", 10, 0) for i in range(files)))
                )
            )
        ),
    }


def main(argv: list[str]) -> list[dict[str, Any]]:
    commits = int(argv[0]) if argv else 500
    sizes = [int(a) for a in argv[1:]] or [1_000, 10_000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in (lambda: bench_resume(Path(tmp), commits), *(lambda n=n: bench_ledger(Path(tmp), n) for n in sizes)):
            rows.append(run())
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

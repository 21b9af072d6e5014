"""Maintenance benchmark: a stream table of N small commits (the real StreamWriter, so checkpoints
are real), before and after `lakestack maintain`.

- Opening the table: catalog load + planning its data files (what every query and incremental read
  pays first), and a GROUP BY through `Lake.query` (the sandbox: planned Parquet files in DuckDB);
  medians before and after, and the ratio.
- Maintenance time: `lakestack maintain` (compaction, manifest rewrite, expiry with file deletion,
  orphan removal; one run, it changes the table) against pyiceberg's own `expire_snapshots` on the
  same table (registered a second time from the same metadata file, so the original is untouched:
  pyiceberg only rewrites metadata and deletes no file; median of repeats).

Run alone: `python benchmarks/maintenance.py 2000`.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GROUP_BY = "SELECT amount % 10 AS bucket, count(*) AS n, sum(amount) AS total FROM bronze.events GROUP BY 1 ORDER BY 1"
PARTITIONS = 4
PER_PARTITION = 5  # records per partition per commit: 20 events a commit


def _median(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _project(root: Path) -> Path:
    import yaml

    contract = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "x-lakestack-key": ["event_id"],
        "x-lakestack-event-time": "ts",
        "required": ["event_id", "ts", "amount"],
        "properties": {
            "event_id": {"type": "string"},
            "ts": {"type": "string", "format": "date-time"},
            "amount": {"type": "integer", "minimum": 0},
        },
    }
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "events.v1.json").write_text(json.dumps(contract))
    config = {
        "name": "bench_maintain",
        "environments": {
            "dev": {
                "warehouse": "./warehouse",
                "catalog": {"type": "sql", "uri": "sqlite:///.lakestack/catalog.db"},
                "maintenance": {"snapshot_retention": "0s", "orphan_min_age": "0s"},
            }
        },
        "sources": {
            "events": {"kind": "kafka", "contract": "events", "kafka": {"bootstrap_servers": "x:1", "topics": ["t"]}}
        },
    }
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _writer(root: Path) -> Any:
    from lakestack.config import StreamConfig
    from lakestack.ingest.stream import StreamWriter
    from lakestack.pipeline.lake import Lake

    lake = Lake.open(root)
    return StreamWriter(lake.warehouse, "events", lake.project.contract("events"), "kafka", StreamConfig(), "bench")


def _commit(writer: Any, c: int) -> None:
    from lakestack.ingest.stream import StreamRecord

    records = [
        StreamRecord(
            f"t/{p}",
            c * PER_PARTITION + i,
            json.dumps({"event_id": f"e{p}-{c}-{i}", "ts": "2026-12-01T10:00:00Z", "amount": c + i}).encode(),
        )
        for p in range(PARTITIONS)
        for i in range(PER_PARTITION)
    ]
    writer.add(records)
    writer.flush()


def _stream(root: Path, commits: int) -> float:
    writer = _writer(root)
    t0 = time.perf_counter()
    for c in range(commits):
        _commit(writer, c)
        if (c + 1) % 250 == 0:
            print(f"    {c + 1:,} commits, {time.perf_counter() - t0:.0f} s", flush=True)
    return time.perf_counter() - t0


def _commit_cost(root: Path, first: int, repeat: int) -> float:
    """Median seconds of one more stream commit (StreamWriter: fence, append with its checkpoint)."""
    writer = _writer(root)
    times = []
    for c in range(first, first + repeat):
        t0 = time.perf_counter()
        _commit(writer, c)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _open_and_plan(lake: Any) -> int:
    table = lake.warehouse.load("bronze.events")
    return len(list(table.scan().plan_files()))


def _costs(lake: Any, repeat: int) -> dict[str, Any]:
    open_s, files = _median(lambda: _open_and_plan(lake), repeat)
    query_s, result = _median(lambda: lake.query(GROUP_BY), repeat)
    table = lake.warehouse.load("bronze.events")
    return {
        "open_s": open_s,
        "files": files,
        "query_s": query_s,
        "result": result.to_pylist(),
        "snapshots": len(table.metadata.snapshots),
        "metadata_bytes": len(table.io.new_input(table.metadata_location).open().read()),
    }


def _pyiceberg_expire(lake: Any, repeat: int) -> float:
    """pyiceberg's expire_snapshots (every snapshot but the current one) on a second registration
    of the same table; the original keeps its own metadata pointer. Timed from loading the table."""
    catalog = lake.warehouse.catalog
    table = lake.warehouse.load("bronze.events")
    times = []
    for n in range(repeat):
        name = f"bronze.events_peer{n}"
        catalog.register_table(name, table.metadata_location)
        t0 = time.perf_counter()
        # older_than (not by_ids, which deep-copies the metadata once per id): every snapshot but the
        # current one, the branch head pyiceberg protects
        catalog.load_table(name).maintenance.expire_snapshots().older_than(datetime.now(UTC)).commit()
        times.append(time.perf_counter() - t0)
        assert len(catalog.load_table(name).metadata.snapshots) == 1
        catalog.drop_table(name)  # the catalog entry only; its files are the original's
    return statistics.median(times)


def bench_maintenance(commits: int, repeat: int) -> list[dict[str, Any]]:
    from lakestack.pipeline.lake import Lake

    with tempfile.TemporaryDirectory() as tmp:
        root = _project(Path(tmp) / "p")
        print(f"  maintenance · {commits:,} stream commits ...", flush=True)
        load_s = _stream(root, commits)
        commit_before = _commit_cost(root, commits, repeat)  # the table now has commits + repeat snapshots
        lake = Lake.open(root)
        before = _costs(lake, repeat)
        peer_s = _pyiceberg_expire(lake, min(repeat, 3))
        lake = Lake.open(root)
        t0 = time.perf_counter()
        result = lake.maintain(["bronze.events"])
        maintain_s = time.perf_counter() - t0
        report = result.tables[0]
        lake = Lake.open(root)
        after = _costs(lake, repeat)
        assert after["result"] == before["result"], "maintenance changed what the GROUP BY returns"
        commit_after = _commit_cost(root, commits + repeat, repeat)
    label = f"{commits:,} commits"

    def row(tool: str, seconds: float, ratio: float | None = None, **extra: Any) -> dict[str, Any]:
        out = {"benchmark": "maintenance", "tool": tool, "median_s": round(seconds, 4), "per_s": round(1 / seconds)}
        if ratio is not None:
            out["vs_lakestack"] = round(ratio, 1)
        return {**out, **extra}

    return [
        row(
            f"open + plan files before ({label}, {before['files']:,} files, {before['snapshots']:,} snapshots, "
            f"metadata {before['metadata_bytes'] / 1e6:.1f} MB)",
            before["open_s"],
            before["open_s"] / after["open_s"],
        ),
        row(
            f"open + plan files after ({after['files']} files, {after['snapshots']} snapshot, "
            f"metadata {after['metadata_bytes'] / 1e3:.1f} KB)",
            after["open_s"],
        ),
        row(f"GROUP BY through Lake.query before ({label})", before["query_s"], before["query_s"] / after["query_s"]),
        row("GROUP BY through Lake.query after", after["query_s"]),
        row(
            f"lakestack maintain (compact {report.compacted_files:,} → {report.written_files} files, expire "
            f"{report.expired:,}, delete {report.deleted_files:,} files; expire step "
            f"{report.stages.get('expire', 0):.2f} s; 1 run)",
            maintain_s,
            maintain_s / peer_s,
        ),
        row("pyiceberg expire_snapshots (metadata only, deletes no file)", peer_s),
        row(
            f"one more stream commit before ({commits:,} snapshots)",
            commit_before,
            commit_before / commit_after,
        ),
        row("one more stream commit after", commit_after),
        row(f"loading the table: {commits:,} StreamWriter commits (1 run)", load_s),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import show

    show(bench_maintenance(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, 5))

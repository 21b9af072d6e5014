"""Helpers for the maintenance tests: a stream table of many small commits made by the real stream
writer (so its checkpoints are real), the project's maintenance settings, and fingerprints."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from stream_support import payload, stream_project

PARTITIONS = 3
BAD_EVERY = 17  # every 17th event breaks the contract (amount < 0): quarantine gets commits too


def stream_table(root: Path, commits: int) -> Path:
    """A stream project whose source `events` got `commits` micro-batches (one record per partition each)."""
    stream_project(root, "kafka", {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]})
    stream_commits(root, 0, commits)
    return root


def event_number(position: int, partition: int) -> int:
    return position * PARTITIONS + partition


def stream_commits(root: Path, start: int, end: int, run_id: str = "load") -> None:
    """Commit positions start..end-1 of every partition, one micro-batch per position, through the
    StreamWriter (redelivered positions are dropped by it, as after a restart)."""
    from lakestack.config import StreamConfig
    from lakestack.ingest.stream import StreamRecord, StreamWriter
    from lakestack.pipeline.lake import Lake

    lake = Lake.open(root)
    writer = StreamWriter(lake.warehouse, "events", lake.project.contract("events"), "kafka", StreamConfig(), run_id)
    for position in range(start, end):
        records = []
        for partition in range(PARTITIONS):
            n = event_number(position, partition)
            body = payload(n, amount=-1) if n % BAD_EVERY == 0 else payload(n)
            records.append(StreamRecord(f"t/{partition}", position, body))
        writer.add(records)
        writer.flush()


def expected_ids(end: int) -> tuple[Counter[str], Counter[str]]:
    """Each valid event id once (Bronze) and each invalid one once (quarantine), positions 0..end-1."""
    good: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    for position in range(end):
        for partition in range(PARTITIONS):
            n = event_number(position, partition)
            (bad if n % BAD_EVERY == 0 else good)[f"e{n}"] += 1
    return good, bad


def quarantined_ids(root: Path) -> Counter[str]:
    import json

    from stream_support import quarantine_rows

    return Counter(str(json.loads(r["_raw"])["event_id"]) for r in quarantine_rows(root))


def set_maintenance(root: Path, **settings: Any) -> None:
    """Set keys of the dev environment's `maintenance:` block."""
    path = root / "lakestack.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    env = config["environments"][config.get("default_environment", "dev")]
    env.setdefault("maintenance", {}).update(settings)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def fingerprint(root: Path) -> dict[str, Any]:
    """Every file under the warehouse (size, mtime, content hash) and the catalog's table pointers."""
    files = {}
    for path in sorted((root / "warehouse").rglob("*")):
        if path.is_file():
            stat = path.stat()
            files[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, _sha(path))
    with sqlite3.connect(root / ".lakestack" / "catalog.db") as con:
        tables = sorted(con.execute("SELECT table_namespace, table_name, metadata_location FROM iceberg_tables"))
    return {"files": files, "tables": tables}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backdate(folder: Path, seconds: float) -> None:
    """Make every file under `folder` look `seconds` old."""
    import time

    when = time.time() - seconds
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))

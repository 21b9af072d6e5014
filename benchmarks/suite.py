"""The benchmark suite: every benchmark the harness runs, by name (`make bench BENCH=name`)."""

from __future__ import annotations

from harness import Benchmark
from suite_cli import CLI_QUERY
from suite_files import INGEST_CSV, INGEST_NDJSON, VALIDATION
from suite_memory import MEMORY
from suite_tables import GOLD, MERGE, PUBLISH, QUERY

SUITE: dict[str, Benchmark] = {
    b.name: b for b in (VALIDATION, INGEST_CSV, INGEST_NDJSON, MEMORY, MERGE, GOLD, QUERY, CLI_QUERY, PUBLISH)
}

"""Where a Silver MERGE's time goes: `python benchmarks/merge_profile.py [CHANGE] [REPEAT]`.

The MERGE of suite_tables.py (CHANGE changed rows, half updates, into 5x as many, 30 daily
partitions, all touched; default 200,000 into 1,000,000), timed phase by phase: the engine's and
storage's calls are wrapped with a timer on the promotion's own engine instance (exclusive times: a
phase nested in another is not counted twice). Medians of REPEAT runs (3), each on a fresh table.
Writes benchmarks/results/merge_profile.json; render.py puts it in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

PHASES = {
    "register_arrow": "hand the change set to DuckDB (Arrow, zero-copy)",
    "materialize incoming": "dedup the change set by key (incoming)",
    "touched": "plan the touched partitions (pyiceberg scan planning)",
    "rows": "counts (incoming, contested, won) and the touched days",
    "register_files": "register the touched partitions' Parquet files",
    "materialize contested": "read the key and ordering columns of the stored rows of incoming keys (semi-join)",
    "materialize won": "rank stored and incoming rows per key, keep the incoming rows that win (the ranking)",
    "write": "anti-join the keys incoming rows won, union those rows, write Parquet files (one DuckDB COPY, ADR 44)",
    "commit": "the Iceberg commit (manifests, metadata, catalog row)",
    "other": "everything else (sqlglot building, Python)",
}


class Timer:
    """Exclusive time per phase: a phase running inside another is subtracted from the outer one."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []

    def wrap(self, name: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([0.0])
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - t0
                nested = self._stack.pop()[0]
                self.spent[name(*args)] += took - nested
                if self._stack:
                    self._stack[-1][0] += took

        return timed


def profile_once(change: int) -> dict[str, float]:
    from merge import lakestack_silver
    from suite_tables import _merge_data

    import lakestack.storage.warehouse as storage
    from lakestack.pipeline.silver import SilverPromotion

    base, changes = _merge_data(change)
    with tempfile.TemporaryDirectory() as tmp:
        lake, model = lakestack_silver(Path(tmp) / "p", base)
        promotion = SilverPromotion(model, lake.warehouse, "profile")
        timer, engine = Timer(), promotion.engine
        engine.register_arrow = timer.wrap(lambda *a: "register_arrow", engine.register_arrow)
        engine.materialize = timer.wrap(lambda name, *a: f"materialize {name}", engine.materialize)
        engine.rows = timer.wrap(lambda *a: "rows", engine.rows)
        engine.register_files = timer.wrap(lambda *a: "register_files", engine.register_files)
        engine.write_data_files = timer.wrap(lambda *a: "write", engine.write_data_files)
        promotion._touched_files = timer.wrap(lambda *a: "touched", promotion._touched_files)  # type: ignore[method-assign]
        original = storage.replace_files
        storage.replace_files = timer.wrap(lambda *a: "commit", original)
        try:
            t0 = time.perf_counter()
            result = promotion.merge_arrow(changes, "profile")
            total = time.perf_counter() - t0
        finally:
            storage.replace_files = original
        assert (result.inserted, result.updated) == (change - change // 2, change // 2), result
    spent = dict(timer.spent)
    spent["other"] = total - sum(spent.values())
    spent["total"] = total
    return spent


def main() -> None:
    change = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    runs = [profile_once(change) for _ in range(repeat)]
    phases = {
        key: {
            "what": PHASES.get(key, key),
            "median_s": round(statistics.median(r.get(key, 0.0) for r in runs), 4),
            "all_s": [round(r.get(key, 0.0), 4) for r in runs],
        }
        for key in [*PHASES, "total"]
    }
    out = {
        "benchmark": "merge_profile",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "change_rows": change,
        "base_rows": change * 5,
        "repetitions": repeat,
        "phases": phases,
    }
    path = HERE / "results" / "merge_profile.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for key, p in phases.items():
        print(f"{p['median_s']:8.3f} s  {key}: {p['what']}")
    print(f"→ {path}")


if __name__ == "__main__":
    main()

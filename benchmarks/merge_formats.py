"""Silver MERGE on both table formats, same run, same data (issue 20): lakestack on Iceberg,
lakestack on Delta (`format: delta`), and a bare delta-rs `merge` on a table partitioned by day.

    .venv/bin/python benchmarks/merge_formats.py --base 1000000 --changes 200000 --repeat 3

Each timed case starts from a fresh copy of the loaded base table (the load is not timed); the
medians are printed as a table and, with --json, written to a file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge import CONTRACT, PROJECT, change_set, orders, timed


def _project(root: Path, fmt: str) -> Path:
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "orders.v1.yaml").write_text(CONTRACT)
    env = f"environments:\n  dev:\n    format: {fmt}\n"
    (root / "lakestack.yaml").write_text(PROJECT + env)
    return root


def _lakestack(
    fmt: str, base: pa.Table, work: Path, changes: pa.Table, expect: tuple[int, int], repeat: int
) -> list[float]:
    """Per run: a fresh project whose silver.orders holds `base` (merged once, not timed), then the
    timed MERGE of `changes`."""
    from lakestack import Lake
    from lakestack.pipeline.silver import SilverPromotion, model_from_config

    times = []
    for n in range(repeat):
        lake = Lake.open(_project(work / f"{fmt}-{n}", fmt))
        model = model_from_config("orders", lake.project)
        SilverPromotion(model, lake.warehouse, "load").merge_arrow(base, "base-load")
        promotion = SilverPromotion(model, lake.warehouse, "bench")
        seconds, result = timed(lambda p=promotion, n=n: p.merge_arrow(changes, f"bench-{n}"))
        assert (result.inserted, result.updated) == expect, result
        assert lake.table_info("silver.orders").rows == base.num_rows + expect[0]
        times.append(seconds)
        lake.close()
    return times


def _delta_rs(base: pa.Table, changes: pa.Table, work: Path, expect_rows: int, repeat: int) -> list[float]:
    from deltalake import DeltaTable, write_deltalake

    def with_day(t: pa.Table) -> pa.Table:
        return t.append_column("order_day", pc.cast(t["order_ts"], pa.date32()))

    loaded = work / "bare-delta"
    write_deltalake(str(loaded), with_day(base), partition_by=["order_day"])
    times = []
    for n in range(repeat):
        path = work / f"bare-delta-{n}"
        shutil.copytree(loaded, path)
        table = DeltaTable(str(path))
        seconds, _ = timed(
            lambda t=table: (
                t.merge(with_day(changes), predicate="t.order_id = s.order_id", source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
        )
        assert DeltaTable(str(path)).to_pyarrow_table(columns=["order_id"]).num_rows == expect_rows
        times.append(seconds)
    return times


def run(base_rows: int, change_rows: int, repeat: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(42)
    base = orders(np.arange(base_rows), 30, rng)
    changes = change_set(base, change_rows // 2, change_rows - change_rows // 2, base_rows, 30, 0, rng)
    expect = (change_rows - change_rows // 2, change_rows // 2)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = [
            ("lakestack MERGE on Iceberg", lambda: _lakestack("iceberg", base, work, changes, expect, repeat)),
            ("lakestack MERGE on Delta", lambda: _lakestack("delta", base, work, changes, expect, repeat)),
            ("bare delta-rs merge", lambda: _delta_rs(base, changes, work, base_rows + expect[0], repeat)),
        ]
        for tool, case in cases:
            times = case()
            out.append(
                {"tool": tool, "median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = run(args.base, args.changes, args.repeat)
    print(f"Silver MERGE, {args.changes:,} changed rows (half updates) into {args.base:,}; medians of {args.repeat}")
    for row in rows:
        print(f"  {row['tool']:<28} {row['median_s']:>7.2f} s   runs {row['runs_s']}")
    if args.json:
        args.json.write_text(json.dumps({"base": args.base, "changes": args.changes, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Listener overhead: `lakestack run` of Northwind with and without OpenLineage.

Each variant runs the real CLI in its own process on a fresh copy of the same landing files,
interleaved (none, file, none, file, ...), so the machine's noise falls on both alike:

- `transport: none`: no optional listener. The run-records listener (`_lakestack.runs`, one commit
  per run) is part of every run and cannot be switched off, so it is in both.
- `transport: file` (the default): OpenLineage events built on a background thread (column
  lineage of every Gold model with sqlglot) and appended to `<warehouse>/_lakestack/lineage/`.

Reported per variant: the median wall time of the whole process (what a user waits for, the
lineage flush at exit included), the median duration of the run itself (from `--json`), and the
median CPU time of the process and its workers (user + system: steadier than wall time on a
shared machine, and what the lineage thread adds shows there).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = {
    "none": "no optional listener (openlineage: {transport: none}; run records on)",
    "file": "OpenLineage file transport (the default; run records on)",
}


def _configure(root: Path, transport: str) -> None:
    import yaml

    path = root / "lakestack.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    env = config["environments"][config.get("default_environment", "dev")]
    env["openlineage"] = {"transport": transport}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _run_once(pristine: Path, work: Path, transport: str) -> tuple[float, float, float, int]:
    """(process wall seconds, run seconds, CPU seconds, lineage events) of one `lakestack run` on a fresh copy."""
    root = work / f"nw-{transport}"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(pristine, root)
    _configure(root, transport)
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(root), "run", "--json"],
        capture_output=True,
        text=True,
        timeout=7200,
    )
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    assert proc.returncode in (0, 4), proc.stderr[-2000:]  # 4: a gate blocked a model (still a full run)
    report = json.loads(proc.stdout)
    lineage = list((root / "warehouse" / "_lakestack" / "lineage").glob("*.ndjson"))
    events = sum(len(p.read_text().splitlines()) for p in lineage)
    assert (events > 0) == (transport != "none"), (transport, events)
    shutil.rmtree(root)
    return wall, float(report["duration_s"]), cpu, events


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children, theirs included
    return usage.ru_utime + usage.ru_stime


def bench_listeners(order_lines: int, repeat: int) -> list[dict[str, Any]]:
    from lakestack.examples.northwind import generate_northwind
    from lakestack.pipeline.scaffold import copy_example

    with tempfile.TemporaryDirectory() as tmp:
        pristine = Path(tmp) / "pristine"
        copy_example("northwind", pristine)
        generate_northwind(pristine, orders=order_lines, seed=42, days=14)
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
        events = 0
        for round_ in range(repeat):
            for variant in VARIANTS if round_ % 2 == 0 else reversed(VARIANTS):
                print(f"  listeners · {variant} · round {round_ + 1}/{repeat} ...", flush=True)
                wall, run, cpu, n = _run_once(pristine, Path(tmp), variant)
                print(f"    {wall:.2f} s (run {run:.2f} s, CPU {cpu:.2f} s, {n} lineage events)", flush=True)
                walls[variant].append(wall)
                runs[variant].append(run)
                cpus[variant].append(cpu)
                events = max(events, n)
    base_wall, base_run = statistics.median(walls["none"]), statistics.median(runs["none"])
    base_cpu = statistics.median(cpus["none"])
    rows = []
    for variant, label in VARIANTS.items():
        wall, run, cpu = (statistics.median(t[variant]) for t in (walls, runs, cpus))
        rows.append(
            {
                "benchmark": "listeners",
                "tool": f"lakestack run, {label}" + (f", {events} events" if variant == "file" else ""),
                "order_lines": order_lines,
                "median_s": round(wall, 3),
                "run_median_s": round(run, 3),
                "per_s": round(order_lines / wall),
                "vs_lakestack": round(wall / base_wall, 3),
                "overhead_pct": round(100 * (wall / base_wall - 1), 2),
                "run_overhead_pct": round(100 * (run / base_run - 1), 2),
                "cpu_median_s": round(cpu, 3),
                "cpu_overhead_pct": round(100 * (cpu / base_cpu - 1), 2),
                "walls_s": [round(t, 2) for t in walls[variant]],
                "cpus_s": [round(t, 2) for t in cpus[variant]],
                "repeats": repeat,
            }
        )
    return rows


if __name__ == "__main__":
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(__doc__.split("\n\n")[1].strip())
    for row in bench_listeners(lines, int(sys.argv[2]) if len(sys.argv) > 2 else 3):
        print(row)

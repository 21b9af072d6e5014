"""The benchmark harness: every tool of a benchmark, at every size, on the same deterministic data,
in the same run; each measured case in its own child process (a warm-up run, then N timed
repetitions), its peak memory read from the child's rusage (`ru_maxrss`, through `os.wait4`).

A `Benchmark` names its tools (lakestack, its peers, one floor). A `Tool.setup(size, work, data)`
runs in the child, untimed, and returns `prepare`: each repetition calls `prepare()` (untimed: a
fresh project, a fresh table) and times the zero-argument function it returns, which gives back
the number of rows it handled (checked against the size, so a tool that silently drops rows fails).

Results: one JSON per benchmark in benchmarks/results/<name>.json (machine, versions, sizes,
repetitions, per case the times, median, min/max, IQR, rows/s, peak MB and the ratios). Ratios are
of throughput: `ratio_to_floor` = floor median / tool median (1.0 = as fast as the floor), and for
lakestack `ratio_to[peer]` = peer median / lakestack median (> 1: lakestack is faster).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CHILD_TIMEOUT_S = 900

Prepare = Callable[[], Callable[[], int]]


@dataclass(frozen=True)
class Tool:
    name: str
    config: str  # how this tool was configured (written into the results and the docs)
    setup: Callable[[int, Path, Path], Prepare]  # (size, scratch dir, data dir) -> prepare
    role: str = "peer"  # "lakestack" | "peer" | "floor"
    max_size: int | None = None  # slow peers stop here (said in the results)
    repeat: int | None = None  # fewer repetitions for a very slow peer


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    unit: str  # what a "row" is: rows, events, changed rows
    sizes: tuple[int, ...]
    tools: tuple[Tool, ...]
    data: Callable[[int, Path], None] | None = None  # deterministic input files, written once per size
    available: Callable[[], str | None] = field(default=lambda: None)  # a reason to skip, or None

    def tool(self, name: str) -> Tool:
        return next(t for t in self.tools if t.name == name)

    @property
    def floor(self) -> str:
        return next(t.name for t in self.tools if t.role == "floor")

    @property
    def lakestack(self) -> list[str]:
        return [t.name for t in self.tools if t.role == "lakestack"]


# -- the child ------------------------------------------------------------------------------------
def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one case: a warm-up at `warmup_size`, then `repeat` timed repetitions at `size`."""
    import resource

    from suite import SUITE

    bench = SUITE[spec["bench"]]
    tool = bench.tool(spec["tool"])
    work = Path(spec["work"])
    data_root = Path(spec["data"])
    warm_dir = work / "warmup"
    warm_dir.mkdir(parents=True)
    warm_prepare = tool.setup(spec["warmup_size"], warm_dir, data_root / str(spec["warmup_size"]))
    warm_prepare()()
    shutil.rmtree(warm_dir, ignore_errors=True)
    run_dir = work / "run"
    run_dir.mkdir()
    prepare = tool.setup(spec["size"], run_dir, data_root / str(spec["size"]))
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, handled = [], []
    for _ in range(spec["repeat"]):
        go = prepare()
        t0 = time.perf_counter()
        n = go()
        times.append(time.perf_counter() - t0)
        handled.append(n)
    return {"times_s": times, "handled": handled, "base_mb": round(base_kb / 1024, 1), "hwm_mb": _vm_hwm_mb()}


def _vm_hwm_mb() -> float | None:
    """This process's own peak RSS (VmHWM: the address space made at exec, nothing inherited)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_case(bench: Benchmark, tool: Tool, size: int, repeat: int, data: Path, warmup: int) -> dict[str, Any]:
    """One case in a child process; its peak RSS from wait4's rusage (kB on Linux)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench.name}-") as work:
        out = Path(work) / "out.json"
        spec = {
            "bench": bench.name,
            "tool": tool.name,
            "size": size,
            "warmup_size": warmup,
            "repeat": repeat,
            "work": str(Path(work) / "w"),
            "data": str(data),
            "out": str(out),
        }
        env = {**os.environ, "PYTHONHASHSEED": "0", "RUNTIME__DLTHUB_TELEMETRY": "false"}
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(log.strip().splitlines()[-15:])
            return {"tool": tool.name, "size": size, "error": f"exit {proc.returncode}: {tail}"}
        result = json.loads(out.read_text())
    times = result["times_s"]
    if any(n != size for n in result["handled"]):
        return {"tool": tool.name, "size": size, "error": f"handled {result['handled']} rows, expected {size}"}
    case = summarise(tool.name, size, times, usage.ru_maxrss / 1024, result["base_mb"])
    case["vm_hwm_mb"] = result.get("hwm_mb")
    return case


def make_data(bench: Benchmark, size: int, folder: Path) -> None:
    """A benchmark's input at one size, written by a child process: the parent stays small, because a
    child's ru_maxrss starts at its parent's RSS (the pre-exec copy of its memory counts)."""
    spec = json.dumps({"bench": bench.name, "size": size, "dir": str(folder)})
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--data", spec],
        capture_output=True,
        text=True,
        check=False,
        timeout=CHILD_TIMEOUT_S,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{bench.name}: making the data at {size:,} failed:\n{tail}")


def summarise(tool: str, size: int, times: list[float], peak_mb: float, base_mb: float) -> dict[str, Any]:
    median = statistics.median(times)
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [median, median, median]
    return {
        "tool": tool,
        "size": size,
        "repeat": len(times),
        "times_s": [round(t, 6) for t in times],
        "median_s": round(median, 6),
        "min_s": round(min(times), 6),
        "max_s": round(max(times), 6),
        "iqr_s": round(q[2] - q[0], 6),
        "rows_per_s": round(size / median),
        "peak_mb": round(peak_mb, 1),
        "base_mb": base_mb,
    }


def add_ratios(bench: Benchmark, cases: list[dict[str, Any]]) -> None:
    """Throughput ratios at each size: every tool to the floor; lakestack to each peer."""
    by = {(c["tool"], c["size"]): c for c in cases if "median_s" in c}
    for c in cases:
        if "median_s" not in c:
            continue
        floor = by.get((bench.floor, c["size"]))
        c["ratio_to_floor"] = round(floor["median_s"] / c["median_s"], 3) if floor else None
        if c["tool"] in bench.lakestack:
            c["ratio_to"] = {
                t.name: round(by[(t.name, c["size"])]["median_s"] / c["median_s"], 3)
                for t in bench.tools
                if t.name != c["tool"] and (t.name, c["size"]) in by
            }


# -- the parent -----------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in (
        "lakestack",
        "pyarrow",
        "pyiceberg",
        "duckdb",
        "msgspec",
        "polars",
        "deltalake",
        "dlt",
        "pydantic",
        "jsonschema",
        "fastjsonschema",
        "psycopg",
        "adbc-driver-postgresql",
        "pyspark",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def run_benchmark(
    bench: Benchmark,
    *,
    repeat: int,
    sizes: tuple[int, ...] | None = None,
    roles: tuple[str, ...] = ("lakestack", "peer", "floor"),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every tool (of the given roles) at every size, sizes ascending, the tools of one size back to back."""
    sizes = sizes or bench.sizes
    result: dict[str, Any] = {
        "benchmark": bench.name,
        "description": bench.description,
        "unit": bench.unit,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "sizes": list(sizes),
        "repetitions": repeat,
        "warmup": f"one untimed run at {min(sizes):,} in the same child process before the timed runs",
        "floor": bench.floor,
        "lakestack": bench.lakestack,
        "tools": {
            t.name: {"role": t.role, "config": t.config, "max_size": t.max_size, "repeat": t.repeat}
            for t in bench.tools
        },
        "cases": [],
    }
    skip = bench.available()
    if skip:
        result["skipped"] = skip
        log(f"{bench.name}: skipped ({skip})")
        return result
    with tempfile.TemporaryDirectory(prefix=f"bench-data-{bench.name}-") as data:
        for size in sorted(sizes):
            if bench.data is not None:
                make_data(bench, size, Path(data) / str(size))
        for size in sizes:
            for tool in bench.tools:
                if tool.role not in roles or (tool.max_size is not None and size > tool.max_size):
                    continue
                t0 = time.perf_counter()
                case = run_case(bench, tool, size, min(repeat, tool.repeat or repeat), Path(data), min(sizes))
                result["cases"].append(case)
                took = time.perf_counter() - t0
                if "error" in case:
                    log(f"  {bench.name} {size:>9,} {tool.name}: FAILED {case['error']}")
                else:
                    log(
                        f"  {bench.name} {size:>9,} {tool.name}: {case['median_s']:.3f} s median "
                        f"({case['rows_per_s']:,}/s, peak {case['peak_mb']:.0f} MB; case {took:.0f} s)"
                    )
    add_ratios(bench, result["cases"])
    return result


def write_result(result: dict[str, Any], folder: Path = RESULTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result['benchmark']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.path.insert(0, str(HERE))
        spec = json.loads(sys.argv[2])
        Path(spec["out"]).write_text(json.dumps(child_main(spec)))
    elif len(sys.argv) == 3 and sys.argv[1] == "--data":
        sys.path.insert(0, str(HERE))
        from suite import SUITE

        spec = json.loads(sys.argv[2])
        make = SUITE[spec["bench"]].data
        assert make is not None
        make(spec["size"], Path(spec["dir"]))
    else:
        sys.exit("harness.py runs cases for benchmarks/run.py; run that instead")

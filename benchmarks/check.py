"""`make bench-check`: rerun a fast subset of the suite (each benchmark at its smallest size whose
floor takes at least 0.1 s, lakestack and the floor only) and fail when lakestack's throughput
ratio to the floor dropped by more than a margin (default 30 %) from the committed results in
benchmarks/results/.

A ratio to the floor, not a time, is compared: the floor runs in the same run on the same machine,
so a busier or slower machine moves both and the ratio stays put. The ratio is of the best of the
repetitions (floor's best time / lakestack's best time): on a shared machine the median of a case
of a few hundred milliseconds moves by more than the margin, its best run much less. A benchmark
that regresses is measured again, and fails only when it regresses both times.

    python benchmarks/check.py                       # measure, then compare (exit 1 on a regression)
    python benchmarks/check.py --fresh DIR           # compare results already in DIR, measure nothing
    python benchmarks/check.py --margin 0.2 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"
# what it measures is not a speed ratio (memory: peak RSS on a 215 MB and a 2 GB file, minutes a run)
NOT_CHECKED = frozenset({"memory"})
MARGIN = 0.30
MIN_FLOOR_S = 0.1
LOAD_GAP = 2.0  # a load-average difference worth a note


@dataclass(frozen=True)
class Verdict:
    checked: list[str]  # one line per comparison made
    regressions: list[str]  # one line per ratio that dropped past the margin, or a case that failed
    notes: list[str]  # what could not be compared (a benchmark skipped, no committed case at that size)


def load(folder: Path) -> dict[str, dict[str, Any]]:
    """The suite's result files in a folder, by benchmark name (other JSON files are ignored)."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"{path}: not a readable result file ({exc})") from None
        if isinstance(data, dict) and "benchmark" in data and "cases" in data:
            out[data["benchmark"]] = data
    return out


def _cases(result: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(c["tool"], c["size"]): c for c in result.get("cases", [])}


def ratio_to_floor(result: dict[str, Any], case: dict[str, Any]) -> float | None:
    """The floor's best time over the tool's best time at the case's size (best of the repetitions:
    on a shared machine the fastest run is the one least disturbed), else the median ratio."""
    floor = _cases(result).get((result.get("floor", ""), case["size"]), {})
    if case.get("min_s") and floor.get("min_s"):
        return float(floor["min_s"]) / float(case["min_s"])
    value = case.get("ratio_to_floor")
    return None if value is None else float(value)


def compare(committed: dict[str, dict[str, Any]], fresh: dict[str, dict[str, Any]], margin: float) -> Verdict:
    """Each fresh lakestack case against the committed case of the same benchmark, tool and size."""
    checked: list[str] = []
    regressions: list[str] = []
    notes: list[str] = []
    for name, new in sorted(fresh.items()):
        if new.get("skipped"):
            notes.append(f"{name}: skipped ({new['skipped']})")
            continue
        old = committed.get(name)
        if old is None:
            notes.append(f"{name}: no committed results to compare with")
            continue
        old_cases = _cases(old)
        load_then = old.get("machine", {}).get("load_average_at_start", [None])[0]
        load_now = new.get("machine", {}).get("load_average_at_start", [None])[0]
        if load_then is not None and load_now is not None and abs(load_now - load_then) >= LOAD_GAP:
            notes.append(
                f"{name}: load average {load_now:.1f} now, {load_then:.1f} when the committed results were measured: "
                "on a shared host a ratio to the floor moves with load (lakestack's longer, multi-step runs "
                "suffer more than a short floor), so a regression here may be the machine"
            )
        for (tool, size), case in sorted(_cases(new).items()):
            where = f"{name}: {tool} at {size:,} {new.get('unit', 'rows')}"
            if tool not in new.get("lakestack", []):
                if "error" in case:
                    regressions.append(f"{where}: the case failed: {case['error'].splitlines()[-1]}")
                continue
            if "error" in case:
                regressions.append(f"{where}: the case failed: {case['error'].splitlines()[-1]}")
                continue
            committed_case = old_cases.get((tool, size))
            before = ratio_to_floor(old, committed_case) if committed_case else None
            now = ratio_to_floor(new, case)
            if before is None or now is None:
                notes.append(f"{where}: no committed ratio to the floor at this size")
                continue
            change = now / before - 1
            line = f"{where}: {now:.3f}x the floor, committed {before:.3f}x ({change:+.0%})"
            checked.append(line)
            if now < before * (1 - margin):
                regressions.append(f"REGRESSION {line}, more than the {margin:.0%} margin")
    return Verdict(checked, regressions, notes)


def check_size(committed: dict[str, Any] | None, sizes: tuple[int, ...]) -> int:
    """The smallest size whose committed floor takes at least MIN_FLOOR_S (a floor of a few
    milliseconds is mostly scheduling noise on a shared machine); the largest when none does."""
    if committed:
        floors = {
            c["size"]: c.get("median_s", 0.0) for c in committed.get("cases", []) if c["tool"] == committed["floor"]
        }
        for size in sizes:
            if floors.get(size, 0.0) >= MIN_FLOOR_S:
                return size
        return sizes[-1]
    return sizes[0]


def measure(out: Path, repeat: int, committed: dict[str, dict[str, Any]], names: set[str] | None = None) -> None:
    """The fast subset: every benchmark (of `names`) at one small size (check_size), lakestack and
    the floor only."""
    sys.path.insert(0, str(HERE))
    from harness import run_benchmark, write_result
    from suite import SUITE

    for bench in SUITE.values():
        if names is not None and bench.name not in names:
            continue
        if bench.name in NOT_CHECKED:
            continue
        size = check_size(committed.get(bench.name), bench.sizes)
        result = run_benchmark(bench, repeat=repeat, sizes=(size,), roles=("lakestack", "floor"))
        write_result(result, out)


def confirm(committed: dict[str, dict[str, Any]], folder: Path, first: Verdict, args: argparse.Namespace) -> Verdict:
    """Measure the regressed benchmarks once more; a regression stands only when the second run
    regresses too (a shared database or a burst of load slows one run, rarely two in a row)."""
    names = {line.removeprefix("REGRESSION ").split(":", 1)[0] for line in first.regressions}
    print(f"bench-check: measuring {', '.join(sorted(names))} again to confirm", flush=True)
    again = folder / "again"
    measure(again, args.repeat, committed, names)
    second = compare(committed, load(again), args.margin)
    confirmed = [line for line in second.regressions if line.removeprefix("REGRESSION ").split(":", 1)[0] in names]
    return Verdict(first.checked + second.checked, confirmed, first.notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--committed", type=Path, default=RESULTS, help="the committed results (benchmarks/results)")
    parser.add_argument("--fresh", type=Path, help="compare the results in this folder; measure nothing")
    parser.add_argument("--margin", type=float, default=MARGIN, help="the drop that fails (0.30: 30 %%)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="also write the fresh results here")
    args = parser.parse_args(argv)
    committed = load(args.committed)
    if not committed:
        print(f"no committed results in {args.committed}; run `make bench` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        folder = args.fresh or Path(tmp)
        if args.fresh is None:
            measure(folder, args.repeat, committed)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for path in folder.glob("*.json"):
                    (args.keep / path.name).write_text(path.read_text())
        verdict = compare(committed, load(folder), args.margin)
        if args.fresh is None and verdict.regressions:
            verdict = confirm(committed, folder, verdict, args)
    for line in verdict.checked:
        print(f"  {line}")
    for line in verdict.notes:
        print(f"  note: {line}")
    for line in verdict.regressions:
        print(line)
    if verdict.regressions:
        print(f"bench-check: {len(verdict.regressions)} regression(s)")
        return 1
    within = f"within {args.margin:.0%} of the committed results"
    print(f"bench-check: {len(verdict.checked)} ratio(s) to the floor {within}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

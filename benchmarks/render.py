"""Render benchmarks/results/<name>.json into docs/benchmarks.md and docs/benchmarks/<name>.png.

    python benchmarks/render.py [--results DIR] [--out docs/benchmarks.md]

The page is generated: edit benchmarks/notes.md (appended verbatim under "Findings") instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
ORDER = ("validation", "ingest_csv", "ingest_ndjson", "memory", "merge", "gold", "query", "publish")


def _fmt_s(s: float) -> str:
    return f"{s:.3f}" if s >= 0.01 else f"{s * 1000:.2f} ms"


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return ""
    return f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×"


def _ok(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in result.get("cases", []) if "median_s" in c]


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    palette = iter(["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"])
    for tool, meta in result["tools"].items():
        points = sorted((c["size"], c["rows_per_s"]) for c in _ok(result) if c["tool"] == tool)
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        style = {"lakestack": dict(lw=2.6, color="#d62728"), "floor": dict(lw=1.5, ls="--", color="#555555")}
        ax.plot(xs, ys, marker="o", ms=4, label=tool, **style.get(meta["role"], dict(lw=1.3, color=next(palette))))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"size ({result['unit']})")
    ax.set_ylabel(f"{result['unit']} per second (median)")
    ax.set_title(f"{result['benchmark']}: throughput vs size", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def section(result: dict[str, Any], image: str) -> list[str]:
    name = result["benchmark"]
    load = ", ".join(str(x) for x in result["machine"]["load_average_at_start"])
    out = [
        f"## {name}",
        "",
        result["description"] + f". Measured {result['created']} (load average at the start: {load}), "
        f"{result['repetitions']} repetitions.",
        "",
    ]
    if result.get("skipped"):
        return [*out, f"Not measured in this run: {result['skipped']}.", ""]
    out += ["| tool | role | how it was configured |", "|---|---|---|"]
    for tool, meta in result["tools"].items():
        out.append(f"| {tool} | {meta['role']} | {meta['config']} |")
    out += ["", f"![{name}: throughput vs size]({image})", ""]
    out += [
        f"| size | tool | median s | min–max s | IQR s | {result['unit']}/s | peak MB | × floor |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in sorted(result["cases"], key=lambda c: (c["size"], list(result["tools"]).index(c["tool"]))):
        if "error" in c:
            first = c["error"].strip().splitlines()[-1][:120].replace("|", "/")
            out.append(f"| {c['size']:,} | {c['tool']} | failed: {first} | | | | | |")
            continue
        iqr = _fmt_s(c["iqr_s"]) if c["repeat"] > 1 else "1 run"
        out.append(
            f"| {c['size']:,} | {c['tool']} | {_fmt_s(c['median_s'])} | {_fmt_s(c['min_s'])}–{_fmt_s(c['max_s'])} | "
            f"{iqr} | {c['rows_per_s']:,} | {c['peak_mb']:.0f} | {_fmt_ratio(c.get('ratio_to_floor'))} |"
        )
    lake = [c for c in _ok(result) if c["tool"] in result["lakestack"]]
    peers = [t for t in result["tools"] if t not in result["lakestack"]]
    if lake:
        out += [
            "",
            "lakestack's throughput over each peer's (> 1: lakestack is faster):",
            "",
            "| size | " + " | ".join(peers) + " |",
            "|---:|" + "---:|" * len(peers),
        ]
        for c in sorted(lake, key=lambda c: c["size"]):
            ratios = c.get("ratio_to", {})
            out.append(f"| {c['size']:,} | " + " | ".join(_fmt_ratio(ratios.get(p)) for p in peers) + " |")
    return [*out, ""]


def profile(p: dict[str, Any]) -> list[str]:
    """benchmarks/merge_profile.py's breakdown of one MERGE."""
    total = p["phases"]["total"]["median_s"]
    out = [
        f"### Where a MERGE's time goes ({p['change_rows']:,} into {p['base_rows']:,})",
        "",
        f"`python benchmarks/merge_profile.py {p['change_rows']}`: the same MERGE, the engine's and storage's calls "
        f"timed on the promotion's own engine (exclusive times), medians of {p['repetitions']} runs "
        f"({p['created']}).",
        "",
        "| phase | what | median s | share |",
        "|---|---|---:|---:|",
    ]
    for key, phase in p["phases"].items():
        if key == "total":
            continue
        share = phase["median_s"] / total if total else 0
        out.append(f"| {key} | {phase['what']} | {phase['median_s']:.3f} | {share:.0%} |")
    return [*out, f"| total | the MERGE, end to end | {total:.3f} | |", ""]


def _over(cases: list[dict[str, Any]], peers: list[str]) -> str:
    """One lakestack tool's ratio to each peer at the largest size both ran."""
    top = max(x["size"] for x in cases)
    shown = []
    for peer in peers:
        at = [x for x in cases if peer in x.get("ratio_to", {})]
        if at:
            best = max(at, key=lambda x: x["size"])
            where = "" if best["size"] == top else f" (at {best['size']:,})"
            shown.append(f"{peer} {_fmt_ratio(best['ratio_to'][peer])}{where}")
    return ", ".join(shown)


def headline(results: list[dict[str, Any]]) -> list[str]:
    out = [
        "| benchmark | largest size | lakestack /s | × floor | lakestack over each peer (same size) |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        ours = list(r.get("lakestack", []))
        lake = [c for c in _ok(r) if ours and c["tool"] == ours[0]]  # the first is the default; others variants
        if not lake:
            out.append(f"| {r['benchmark']} | | | | {r.get('skipped', 'not measured')} |")
            continue
        c = max(lake, key=lambda c: c["size"])
        others = [t for t in r["tools"] if t not in ours and t != r["floor"]]
        parts = [_over(lake, others)]
        for variant in ours[1:]:  # a lakestack variant (another codec, format or engine): its own ratios
            cases = [x for x in _ok(r) if x["tool"] == variant]
            if cases:
                parts.append(f"{variant}: {_over(cases, others)}")
        peers = "; ".join(p for p in parts if p)
        out.append(
            f"| {r['benchmark']} | {c['size']:,} {r['unit']} | {c['rows_per_s']:,} | "
            f"{_fmt_ratio(c.get('ratio_to_floor'))} | {peers} |"
        )
    return out


def method(results: list[dict[str, Any]]) -> list[str]:
    first = results[0]
    m = first["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
    sizes = "; ".join(f"{r['benchmark']} {', '.join(f'{s:,}' for s in r['sizes'])}" for r in results)
    reps = sorted({r["repetitions"] for r in results})
    dates = sorted(r["created"] for r in results)
    return [
        "## Method",
        "",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, Python {m['python']}. "
        "Shared with other work while measuring (each benchmark says its load average at the start), so only "
        "medians are compared and spreads are shown. Measured "
        + (dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}")
        + ".",
        f"- **Versions:** {versions}.",
        f"- **Sizes:** {sizes}. Slow peers stop at a smaller size (their configuration says so); every benchmark "
        "spans at least 30×.",
        f"- **Repetitions:** {', '.join(map(str, reps))} timed runs per case (fewer where a tool's row says so), "
        "after one untimed warm-up run at the benchmark's smallest size in the same process. Reported: the "
        "median, min–max and the interquartile range of the timed runs.",
        "- **Isolation:** each (tool, size) case runs in its own child process (`benchmarks/harness.py`); its "
        "peak memory is the child's `ru_maxrss` from `wait4` (the interpreter, imports and the data it holds "
        "included; a JVM started by Spark is a grandchild and counted only as the largest process).",
        "- **Same data:** every tool of a benchmark reads the same deterministic input (seeded generators in "
        "`benchmarks/data.py`, `merge.py`, `gold.py`, `publish.py`; landing files written once per size), and "
        "every timed run is checked to have handled exactly `size` rows.",
        "- **Ratios** are of throughput: `× floor` = floor median time / tool median time (1.00× = as fast as "
        "the floor); lakestack over a peer = peer median / lakestack median (> 1: lakestack faster).",
        "- **Floor:** the least work any tool must do for the same result, named per benchmark.",
        "- Run it: `make bench` (all, then this page is rendered), `make bench BENCH=merge` (one), "
        "`make bench-check` (each benchmark at its smallest size whose floor takes ≥ 0.1 s, lakestack and the "
        "floor only; fails when the ratio of their best runs drops more than 30 % below the committed one).",
        "",
    ]


def render(results_dir: Path, out: Path) -> None:
    sys.path.insert(0, str(HERE))
    from check import load

    found = load(results_dir)
    results = [found[n] for n in ORDER if n in found] + [r for n, r in sorted(found.items()) if n not in ORDER]
    if not results:
        raise SystemExit(f"no results in {results_dir}; run `make bench` first")
    images = out.parent / out.stem
    lines = [
        "# Benchmarks",
        "",
        "<!-- generated by benchmarks/render.py from benchmarks/results/*.json; edit benchmarks/notes.md -->",
        "",
        "Each benchmark runs lakestack and its peers in the same run, on the same data, at several sizes. "
        "The tables are medians; the charts plot throughput against size per tool (log–log).",
        "",
        "## Headline",
        "",
        *headline(results),
        "",
        *method(results),
    ]
    notes = HERE / "notes.md"
    if notes.exists():
        lines += ["## Findings", "", notes.read_text().strip(), ""]
    for r in results:
        image = images / f"{r['benchmark']}.png"
        if _ok(r):
            chart(r, image)
        lines += section(r, f"{images.name}/{image.name}")
        if r["benchmark"] == "merge" and (results_dir / "merge_profile.json").exists():
            lines += profile(json.loads((results_dir / "merge_profile.json").read_text()))
    out.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {out} and {images}/*.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    render(args.results, args.out)


if __name__ == "__main__":
    main()

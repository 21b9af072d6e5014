"""`make bench-check` (benchmarks/check.py) on synthetic result files: no timing in here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CHECK = Path(__file__).resolve().parents[2] / "benchmarks" / "check.py"


def _check_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_check", CHECK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check = _check_module()


def _result(name: str, lakestack_ratio: float | None, *, error: str | None = None, size: int = 10_000) -> dict:
    lake: dict[str, Any] = {"tool": "lakestack", "size": size}
    if error:
        lake["error"] = error
    else:
        lake.update(median_s=1.0, ratio_to_floor=lakestack_ratio)
    return {
        "benchmark": name,
        "unit": "rows",
        "lakestack": ["lakestack"],
        "floor": "floor",
        "cases": [lake, {"tool": "floor", "size": size, "median_s": 0.5, "ratio_to_floor": 1.0}],
    }


def _write(folder: Path, *results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        (folder / f"{r['benchmark']}.json").write_text(json.dumps(r))
    (folder / "bench-20260101T000000Z.json").write_text("[]")  # a single-size section's output: ignored
    return folder


def test_a_drop_within_the_margin_passes(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed", _result("ingest_csv", 0.50), _result("merge", 2.0))
    fresh = _write(tmp_path / "fresh", _result("ingest_csv", 0.40), _result("merge", 2.6))  # -20 %, +30 %
    assert check.main(["--committed", str(committed), "--fresh", str(fresh)]) == 0


def test_a_drop_past_the_margin_fails_with_a_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    committed = _write(tmp_path / "committed", _result("ingest_csv", 0.50), _result("merge", 2.0))
    fresh = _write(tmp_path / "fresh", _result("ingest_csv", 0.30), _result("merge", 1.9))  # -40 %, -5 %
    assert check.main(["--committed", str(committed), "--fresh", str(fresh)]) == 1
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if x.startswith("REGRESSION")]
    assert "ingest_csv: lakestack at 10,000 rows: 0.300x the floor, committed 0.500x (-40%)" in line
    assert "bench-check: 1 regression(s)" in out


def test_the_margin_is_a_setting(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed", _result("ingest_csv", 0.50))
    fresh = _write(tmp_path / "fresh", _result("ingest_csv", 0.40))
    assert check.main(["--committed", str(committed), "--fresh", str(fresh), "--margin", "0.1"]) == 1


def test_a_failed_case_is_a_regression(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed", _result("gold", 0.8))
    fresh = _write(tmp_path / "fresh", _result("gold", None, error="exit 1: Traceback\nValueError: boom"))
    verdict = check.compare(check.load(committed), check.load(fresh), 0.3)
    assert verdict.regressions == ["gold: lakestack at 10,000 rows: the case failed: ValueError: boom"]


def test_skipped_or_uncommitted_benchmarks_are_notes_not_failures(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed", _result("merge", 1.0, size=6_000))
    skipped = {**_result("publish", 1.0), "skipped": "PostgreSQL is not reachable"}
    fresh = _write(tmp_path / "fresh", skipped, _result("merge", 1.0), _result("query", 0.2))
    verdict = check.compare(check.load(committed), check.load(fresh), 0.3)
    assert verdict.regressions == []
    assert verdict.checked == []
    assert any("publish: skipped" in n for n in verdict.notes)
    assert any("query: no committed results" in n for n in verdict.notes)
    assert any("merge: lakestack at 10,000 rows: no committed ratio" in n for n in verdict.notes)


def test_the_command_exits_1_on_a_regression(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed", _result("validation", 0.2))
    fresh = _write(tmp_path / "fresh", _result("validation", 0.1))
    done = subprocess.run(
        [sys.executable, str(CHECK), "--committed", str(committed), "--fresh", str(fresh)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "REGRESSION validation: lakestack at 10,000 rows" in done.stdout


def test_no_committed_results_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    assert check.main(["--committed", str(empty), "--fresh", str(empty)]) == 2


def test_the_ratio_is_of_the_best_runs_when_they_are_recorded(tmp_path: Path) -> None:
    """A floor whose median a busy machine doubled does not read as lakestack regressing."""

    def result(floor_min: float, floor_median: float) -> dict:
        r = _result("ingest_csv", None)
        r["cases"][0].update(min_s=0.40, median_s=0.45, ratio_to_floor=round(floor_median / 0.45, 3))
        r["cases"][1].update(min_s=floor_min, median_s=floor_median)
        return r

    committed = _write(tmp_path / "committed", result(0.040, 0.086))
    noisy = _write(tmp_path / "noisy", result(0.041, 0.043))  # the median ratio halves, the best does not
    slower = _write(tmp_path / "slower", result(0.020, 0.043))  # lakestack's best is now 2x the floor's worse
    assert check.compare(check.load(committed), check.load(noisy), 0.3).regressions == []
    [line] = check.compare(check.load(committed), check.load(slower), 0.3).regressions
    assert "0.050x the floor, committed 0.100x (-50%)" in line


def test_the_check_runs_at_the_smallest_size_whose_floor_takes_a_tenth_of_a_second() -> None:
    committed = {
        "floor": "floor",
        "cases": [
            {"tool": "floor", "size": 10, "median_s": 0.02},
            {"tool": "lakestack", "size": 20, "median_s": 0.5},
            {"tool": "floor", "size": 20, "median_s": 0.15},
            {"tool": "floor", "size": 30, "median_s": 0.4},
        ],
    }
    assert check.check_size(committed, (10, 20, 30)) == 20
    assert check.check_size({"floor": "floor", "cases": []}, (10, 20, 30)) == 30  # no floor that long: the largest
    assert check.check_size(None, (10, 20, 30)) == 10  # nothing committed: the smallest


def test_a_different_machine_load_is_noted(tmp_path: Path) -> None:
    quiet = {**_result("ingest_csv", 0.40), "machine": {"load_average_at_start": [0.8, 1.0, 1.0]}}
    busy = {**_result("ingest_csv", 0.20), "machine": {"load_average_at_start": [4.4, 4.0, 4.0]}}
    verdict = check.compare(check.load(_write(tmp_path / "c", quiet)), check.load(_write(tmp_path / "f", busy)), 0.3)
    assert len(verdict.regressions) == 1  # still a regression: the note explains, it does not excuse
    assert any("load average 4.4 now, 0.8 when the committed results were measured" in n for n in verdict.notes)

"""The Northwind example end to end: generated defects are quarantined exactly, counts reconcile."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lakestack import Lake
from lakestack.examples.northwind import generate_northwind
from lakestack.pipeline.scaffold import copy_example


@pytest.fixture(scope="module")
def northwind(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("nw") / "northwind"
    copy_example("northwind", root)
    report = generate_northwind(root, orders=3_000, seed=7, days=8)
    return root, report


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "landing").rglob("*"))
        if p.is_file()
    }


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_northwind(a, orders=500, seed=1, days=3)
    generate_northwind(b, orders=500, seed=1, days=3)
    generate_northwind(c, orders=500, seed=2, days=3)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_every_defect_is_where_the_report_says(northwind: tuple[Path, object]) -> None:
    root, report = northwind
    lake = Lake.open(root)
    result = lake.ingest()
    by_source = {s.source: s for s in result.sources}
    for source, rows in report.rows.items():  # type: ignore[attr-defined]
        got = by_source[source]
        defects = report.defects[source]  # type: ignore[attr-defined]
        assert got.rows_in == rows, source
        assert got.rows_in == got.landed + got.quarantined, source
        assert got.quarantined == defects["invalid_rows"], source
        assert got.count("rejected") == defects["malformed_files"], source
    assert report.defects["orders"]["duplicate_rows"] > 0  # type: ignore[attr-defined]
    assert report.defects["orders"]["late_rows"] > 0  # type: ignore[attr-defined]
    assert report.defects["orders"]["orphan_rows"] > 0  # type: ignore[attr-defined]

    rejected = {f.name: f.reason for s in result.sources for f in s.files if f.status == "rejected"}
    assert any("gzip stream is truncated" in r for r in rejected.values())  # type: ignore[operator]
    assert any("delimited by ','" in r for r in rejected.values())  # type: ignore[operator]

    customers = lake.warehouse.load("bronze.customers")
    assert customers.properties["lakestack.pii.email"] == "email"
    nested = lake.read("bronze.clickstream", limit=5).to_pylist()
    assert all(set(r["page"]) == {"url", "referrer"} for r in nested)

    again = lake.ingest()
    assert again.landed == 0 and again.quarantined == 0
    assert {f.status for s in again.sources for f in s.files} == {"skipped"}

"""Bronze compaction on Delta (ADR 35): `lakestack maintain` compacts Bronze with optimize, and
Silver's incremental read skips the files an optimize commit added (`dataChange: false`), so a
promote after a compaction reads no row twice: Silver and every promote's figures equal the
Iceberg run's, where a rewrite is a `replace` snapshot the reader skips.

optimize takes every small file of a partition, so Bronze's partition (the ingestion day) is
compacted on Delta only once every Silver reader has read all of it; Iceberg compacts the read
files of a partition and leaves the unread ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lake_support import copy_project, lake_contents, small_northwind
from lakestack import Lake

pytest.importorskip("deltalake")


def _drops(root: Path) -> list[Path]:
    held = root / "held"
    return sorted(held.iterdir())


def _land(root: Path, path: Path) -> None:
    path.rename(root / "landing" / "orders" / path.name)


def _figures(results: list[Any]) -> list[tuple[str, int, int, int]]:
    return [(r.dataset, r.bronze_rows, r.inserted, r.updated) for r in results]


def _scenario(root: Path) -> tuple[list[Any], list[int]]:
    """Ingest and promote drop by drop; compact Bronze between (a drop landed but not promoted yet,
    so part of Bronze is unread when maintain runs); promote twice more. The promotes' figures, and
    how many files maintain compacted in Bronze."""
    figures: list[Any] = []
    compacted: list[int] = []
    drops = _drops(root)
    lake = Lake.open(root)
    lake.ingest(["orders"])
    figures.append(_figures(lake.promote(["orders"])))
    for path in drops[:-2]:  # several small Bronze commits, each promoted
        _land(root, path)
        lake.ingest(["orders"])
        figures.append(_figures(lake.promote(["orders"])))
    _land(root, drops[-2])
    lake.ingest(["orders"])  # landed, not promoted: maintain must not fold it into read files
    reports = {r.table: r for r in Lake.open(root).maintain(["bronze.orders"]).tables}
    compacted.append(reports["bronze.orders"].compacted_files)
    lake = Lake.open(root)
    figures.append(_figures(lake.promote(["orders"])))
    figures.append(_figures(lake.promote(["orders"])))  # nothing new: reads nothing
    reports = {r.table: r for r in Lake.open(root).maintain(["bronze.orders"]).tables}
    compacted.append(reports["bronze.orders"].compacted_files)
    _land(root, drops[-1])
    lake = Lake.open(root)
    lake.ingest(["orders"])
    figures.append(_figures(lake.promote(["orders"])))
    return figures, compacted


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Northwind whose orders land in five drops (the first at once, four held back)."""
    root = small_northwind(tmp_path_factory.mktemp("bronze-compaction") / "pristine", orders=500, days=5)
    held = root / "held"
    held.mkdir()
    landing = sorted((root / "landing" / "orders").iterdir())
    for path in landing:
        if not path.name.endswith(".csv"):  # a re-delivery of a day (skipped by its hash): not a drop
            path.unlink()
    for path in sorted(p for p in landing if p.name.endswith(".csv"))[1:]:
        path.rename(held / path.name)
    return root


def test_a_promote_after_bronze_compaction_on_delta_reads_what_the_iceberg_run_reads(
    pristine: Path, tmp_path: Path
) -> None:
    delta = copy_project(pristine, tmp_path / "delta", table_format="delta")
    iceberg = copy_project(pristine, tmp_path / "iceberg")
    delta_figures, delta_compacted = _scenario(delta)
    iceberg_figures, iceberg_compacted = _scenario(iceberg)

    assert delta_compacted[0] == 0, "a partition holding an unread drop was compacted"
    assert delta_compacted[1] >= 2, "Bronze on Delta was not compacted once Silver had read it"
    assert iceberg_compacted[0] >= 2
    assert delta_figures == iceberg_figures  # no row read twice, nothing reprocessed
    assert delta_figures[-3][0][1] > 0 and delta_figures[-1][0][1] > 0  # the drops after each compaction
    assert delta_figures[-2][0][1] == 0  # the promote with nothing new read nothing
    silver = {k: v for k, v in lake_contents(delta).items() if k == "silver.orders"}
    assert silver == {k: v for k, v in lake_contents(iceberg).items() if k == "silver.orders"}
    bronze = Lake.open(delta).warehouse.load("bronze.orders")
    operations = [s.summary.operation.value for s in bronze.metadata.snapshots if s.summary.operation]
    assert "optimize" in operations

"""Bronze rows streamed into data files before the commit (ADR 37): one data file per landing
file, one `_ingested_at` per ingest, and no data file left behind by a file the column path
declined half way."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from lakestack import Lake

HEADER = "order_id,qty,price,currency,order_ts,email\n"
Land = Callable[[str, str, "str | bytes"], Path]


def _rows(start: int, n: int) -> list[str]:
    return [
        f"ORD-{i:04d},{1 + i % 5},{i % 90}.50,USD,2026-01-01T10:{i % 60:02d}:00Z,a{i}@example.com"
        for i in range(start, start + n)
    ]


def _data_files(lake: Lake, identifier: str) -> tuple[set[str], set[str]]:
    """(the data files the table's snapshot holds, the Parquet files in its data folder)."""
    table = lake.warehouse.load(identifier)
    planned = {t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()}
    folder = Path(table.location().removeprefix("file://")) / "data"
    return planned, {str(p) for p in folder.rglob("*.parquet")}


def test_each_landing_file_is_one_data_file_and_one_ingest_time(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKESTACK_INGEST_WORKERS", "2")
    for day in (1, 2, 3):
        land("orders", f"orders_2026010{day}.csv", HEADER + "\n".join(_rows(day * 100, 40)) + "\n")
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    source = report.sources[0]
    assert (source.rows_in, source.landed, source.quarantined) == (120, 120, 0)

    planned, on_disk = _data_files(lake, "bronze.orders")
    assert len(planned) == 3 and planned == on_disk
    bronze = lake.read("bronze.orders").to_pylist()
    assert len({r["_ingested_at"] for r in bronze}) == 1
    assert {r["_run_id"] for r in bronze} == {report.run_id}
    first = min((r for r in bronze if r["_source_file"] == "orders_20260102.csv"), key=lambda r: r["_source_line"])
    assert (first["_source_line"], first["_raw"]) == (2, _rows(200, 1)[0])


def test_a_file_declined_half_way_leaves_no_data_file(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lakestack.ingest import vectorised

    monkeypatch.setenv("LAKESTACK_INGEST_WORKERS", "1")  # read here, so the log is seen
    monkeypatch.setattr(vectorised, "BLOCK_BYTES", 512)  # many blocks: the stray quote is in a late one
    rows = _rows(0, 60)
    rows[50] = rows[50].replace("@example.com", '"@example.com')  # a quote RFC 4180 does not put there
    land("orders", "orders_20260101.csv", HEADER + "\n".join(rows) + "\n")
    lake = Lake.open(project)
    with caplog.at_level(logging.DEBUG, logger="lakestack.ingest.files"):
        report = lake.ingest(["orders"])
    assert any("read record by record" in r.getMessage() for r in caplog.records), "the column path declined"
    source = report.sources[0]
    assert source.rows_in == 60 and source.rows_in == source.landed + source.quarantined

    planned, on_disk = _data_files(lake, "bronze.orders")
    assert planned == on_disk  # the half-written file of the declined read was deleted
    lines = sorted(r["_source_line"] for r in lake.read("bronze.orders").to_pylist())
    assert len(lines) == source.landed and lines[:3] == [2, 3, 4]

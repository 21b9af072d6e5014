"""Bronze rows streamed into data files before the commit (ADR 37): one data file per landing
file, one `_ingested_at` per ingest, and no data file left behind by a file the column path
declined half way."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
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


def _delta(project: Path) -> None:
    text = (project / "lakestack.yaml").read_text()
    (project / "lakestack.yaml").write_text(text.replace("    warehouse:", "    format: delta\n    warehouse:", 1))


def test_on_delta_blocks_are_written_to_files_before_one_commit(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Delta ingest of several multi-block files: each file's blocks go into one Parquet file in
    Bronze's day partition before the commit; the commit adds them all in one version, and plain
    deltalake and DuckDB read every row once. A failed commit's files are orphans maintenance finds."""
    deltalake = pytest.importorskip("deltalake")
    import duckdb

    from lakestack import failpoints
    from lakestack.ingest import vectorised
    from lakestack.storage.delta_maintenance import find_orphans

    _delta(project)
    monkeypatch.setenv("LAKESTACK_INGEST_WORKERS", "2")  # written by the worker that read them
    monkeypatch.setattr(vectorised, "BLOCK_BYTES", 1024)  # several blocks per file
    for day in (1, 2, 3):
        land("orders", f"orders_2026010{day}.csv", HEADER + "\n".join(_rows(day * 1000, 200)) + "\n")
    lake = Lake.open(project)
    root = Path(lake.warehouse.uri("bronze.orders").removeprefix("file://"))

    with failpoints.armed("files.before_bronze_commit=raise"), pytest.raises(Exception, match="failpoint"):
        lake.ingest(["orders"])
    written = sorted(root.rglob("*.parquet"))
    assert len(written) == 3 and all(p.parent.name.startswith("__ingested_at_day=") for p in written)
    import pyarrow.parquet as pq

    assert all(pq.ParquetFile(p).metadata.num_row_groups > 1 for p in written)  # block by block
    assert lake.warehouse.load("bronze.orders").current_snapshot() is None  # nothing committed

    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    assert report.sources[0].landed == 600
    table = lake.warehouse.load("bronze.orders")
    versions = [s for s in table.snapshots() if s.summary.additional_properties.get("lakestack.batch-id")]
    assert len(versions) == 1 and len(table.file_paths()) == 3  # one commit added the three files
    props = versions[0].summary.additional_properties
    assert props["lakestack.run-id"] == report.run_id and "lakestack.checkpoint" in props

    plain = deltalake.DeltaTable(str(root))
    adds = pa.table(plain.get_add_actions(flatten=True)).to_pydict()
    assert sum(adds["num_records"]) == 600 and all(n == 0 for n in adds["null_count.order_id"])
    ids = pa.table(plain.to_pyarrow_table(columns=["order_id"]))["order_id"].to_pylist()
    assert sorted(ids) == sorted(f"ORD-{i:04d}" for d in (1, 2, 3) for i in range(d * 1000, d * 1000 + 200))
    files = [p.removeprefix("file://") for p in table.file_paths()]
    sql = f"SELECT count(*), count(DISTINCT order_id) FROM read_parquet({files!r})"
    counted = duckdb.connect().execute(sql).fetchone()
    assert counted == (600, 600)
    assert len(lake.query("SELECT order_id FROM bronze.orders").to_pylist()) == 600

    orphans = find_orphans(table, now_ms=10**15, min_age_ms=0)  # the failed run's three files
    assert sorted(Path(p) for p in orphans) == written


def test_on_delta_a_lost_race_is_retried_from_a_fresh_read(tmp_path: Path) -> None:
    """The commit adding streamed files is compare-and-swap: a rival version landing between the
    attempt's read and its commit makes it try again on the new version; the files land once, in
    one version with the batch id, and the rival's rows stay."""
    from datetime import UTC, datetime

    deltalake = pytest.importorskip("deltalake")
    from lakestack.storage import delta_streamed
    from lakestack.storage.delta import DeltaLakeTable
    from lakestack.storage.warehouse import history

    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    uri = (tmp_path / "bronze").as_uri()

    def rows(start: int, n: int, part: bool) -> pa.Table:
        data = {
            "id": pa.array(range(start, start + n), pa.int64()),
            "_ingested_at": pa.array([at] * n, pa.timestamp("us", tz="UTC")),
        }
        if part:
            data["__ingested_at_day"] = pa.array([20513] * n, pa.int32())
        return pa.table(data)

    deltalake.write_deltalake(uri, rows(0, 0, True), partition_by=["__ingested_at_day"])
    table = DeltaLakeTable("bronze.t", uri)
    to = delta_streamed.target(table, "_ingested_at")
    assert to is not None and to.partition == "__ingested_at_day"
    out = delta_streamed.DeltaStreamedFile(to, at)
    for start in (100, 200, 300):
        out.write(rows(start, 100, False))
    files = out.close()
    tries: list[int] = []

    def attempt(t: DeltaLakeTable) -> tuple[None, list[delta_streamed.DeltaFile], None]:
        tries.append(t.version)
        if len(tries) == 1:  # a rival commits after this try read the table
            deltalake.write_deltalake(uri, rows(0, 10, True), mode="append")
        return None, files, None

    table = delta_streamed.append_written(table, run_id="r1", batch_id="b1", attempt=attempt)
    assert tries == [0, 1]
    assert [c.batch_id for c in history(table)].count("b1") == 1
    ids = sorted(pa.table(deltalake.DeltaTable(uri).to_pyarrow_table(columns=["id"]))["id"].to_pylist())
    assert ids == list(range(10)) + list(range(100, 400))
    stats = [a for a in pa.table(table.delta.get_add_actions(flatten=True)).to_pylist() if a["num_records"] == 300]
    assert stats[0]["min.id"] == 100 and stats[0]["max.id"] == 399 and stats[0]["null_count.id"] == 0

"""One big landing file read in byte-range segments by several workers (ADR 42): every record
read once with its exact line, bad rows quarantined with their line and field in every segment,
the file's data files committed together in one snapshot or not at all, and the same Bronze and
quarantine rows as one reader gives."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakestack import Lake

HEADER = "order_id,qty,price,currency,order_ts,email\n"
Land = Callable[[str, str, "str | bytes"], Path]

EVENTS_CONTRACT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "x-lakestack-key": ["event_id"],
    "x-lakestack-event-time": "ts",
    "x-lakestack-file": {"pattern": "events_{date:%Y%m%d}.ndjson", "format": "ndjson"},
    "required": ["event_id", "ts", "kind"],
    "properties": {
        "event_id": {"type": "string", "minLength": 3},
        "ts": {"type": "string", "format": "date-time"},
        "kind": {"type": "string", "enum": ["view", "buy"]},
        "amount": {"type": "number", "minimum": 0},
    },
}


def _row(i: int) -> str:
    return f"ORD-{i:04d},{1 + i % 5},{i % 90}.50,USD,2026-01-01T10:{i % 60:02d}:00Z,a{i}@example.com"


def _split(monkeypatch: pytest.MonkeyPatch, workers: int, split_bytes: int) -> None:
    from lakestack.ingest import vectorised

    monkeypatch.setenv("LAKESTACK_INGEST_WORKERS", str(workers))
    monkeypatch.setenv("LAKESTACK_SPLIT_BYTES", str(split_bytes))
    monkeypatch.setattr(vectorised, "BLOCK_BYTES", 2048)  # several blocks in each segment


def _bronze(lake: Lake, identifier: str) -> list[tuple[Any, ...]]:
    rows = lake.read(identifier).to_pylist()
    return sorted((r["_source_line"], r["_raw"]) for r in rows)


def _quarantine(lake: Lake, identifier: str) -> list[tuple[Any, ...]]:
    rows = lake.read(identifier).to_pylist()
    return sorted((r["_source_line"], r["_raw"], tuple(e["path"] for e in r["_errors"])) for r in rows)


def _committed(lake: Lake, identifier: str) -> tuple[int, set[str], set[str]]:
    """(snapshots with a batch id, the data files the snapshot holds, the Parquet files on disk)."""
    table = lake.warehouse.load(identifier)
    batches = [s for s in table.snapshots() if s.summary.additional_properties.get("lakestack.batch-id")]
    planned = {t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()}
    folder = Path(table.location().removeprefix("file://")) / "data"
    return len(batches), planned, {str(p) for p in folder.rglob("*.parquet")}


def _one_reader(project: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> Lake:
    """The same landing files ingested by one reader, in a copy of the project."""
    import shutil

    copy = project.parent / "one-reader"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("warehouse", ".lakestack"))
    monkeypatch.setenv("LAKESTACK_SPLIT_BYTES", "0")
    lake = Lake.open(copy)
    lake.ingest([source])
    return lake


def test_a_csv_file_in_three_segments_keeps_exact_lines_and_commits_once(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_row(i) for i in range(900)]
    bad = {5: "qty", 320: "price", 640: "currency", 899: "order_id"}  # one or more in each segment
    rows[5] = rows[5].replace(",1,", ",0,", 1)  # qty 0 < min 1
    rows[320] = rows[320].replace(",50.50,", ",-1.00,", 1)
    rows[640] = rows[640].replace(",USD,", ",JPY,", 1)
    rows[899] = rows[899].replace("ORD-0899", "ORD-X", 1)
    text = HEADER + "\n".join(rows) + "\n"
    land("orders", "orders_20260101.csv", text)
    _split(monkeypatch, 3, len(text) // 2)
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    source = report.sources[0]
    assert (source.rows_in, source.landed, source.quarantined) == (900, 896, 4)

    commits, planned, on_disk = _committed(lake, "bronze.orders")
    assert commits == 1 and len(planned) == 3 and planned == on_disk  # three segments, one commit
    quarantined = _quarantine(lake, "quarantine.orders")
    assert [(line, fields) for line, _, fields in quarantined] == [
        (i + 2, (f"$.{bad[i]}",)) for i in sorted(bad)
    ]  # line: the header is line 1
    assert all(raw == rows[line - 2] for line, raw, _ in quarantined)
    bronze = _bronze(lake, "bronze.orders")
    assert bronze == sorted((i + 2, rows[i]) for i in range(900) if i not in bad)

    one = _one_reader(project, monkeypatch, "orders")
    assert _bronze(one, "bronze.orders") == bronze
    assert _quarantine(one, "quarantine.orders") == quarantined
    assert len(_committed(one, "bronze.orders")[1]) == 1  # not split: one data file

    again = Lake.open(project).ingest(["orders"]).sources[0]
    assert again.landed == 0 and len(_bronze(Lake.open(project), "bronze.orders")) == 896  # exactly once


def test_an_ndjson_file_in_segments_with_blank_lines_and_bad_rows(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "contracts" / "events.v1.json").write_text(json.dumps(EVENTS_CONTRACT))
    config = project / "lakestack.yaml"
    config.write_text(config.read_text() + "  events: {kind: files, landing: landing/events, contract: events}\n")
    lines = []
    for i in range(1200):
        event = {"event_id": f"e-{i:05d}", "ts": "2026-01-01T00:00:00Z", "kind": "view", "amount": i / 4}
        if i % 250 == 7:
            event["kind"] = "sell"  # not in the enum
        lines.append(json.dumps(event))
        if i % 300 == 0:
            lines.append("")  # a blank line: no record, but it counts as a line
    text = "\n".join(lines) + "\n"
    land("events", "events_20260101.ndjson", text)
    _split(monkeypatch, 2, len(text) // 3)
    lake = Lake.open(project)
    source = lake.ingest(["events"]).sources[0]
    assert (source.rows_in, source.landed, source.quarantined) == (1200, 1195, 5)
    assert source.rows_in == source.landed + source.quarantined

    commits, planned, on_disk = _committed(lake, "bronze.events")
    assert commits == 1 and len(planned) == 2 and planned == on_disk
    quarantined = _quarantine(lake, "quarantine.events")
    assert [line for line, _, _ in quarantined] == [n + 1 for n, t in enumerate(lines) if '"sell"' in t]
    assert all(fields == ("$.kind",) for _, _, fields in quarantined)
    bronze = _bronze(lake, "bronze.events")
    assert all(lines[line - 1] == raw for line, raw in bronze)

    one = _one_reader(project, monkeypatch, "events")
    assert _bronze(one, "bronze.events") == bronze
    assert _quarantine(one, "quarantine.events") == quarantined


def test_quoted_newlines_at_the_cut_are_never_split(project: Path, land: Land, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tenth record's email is quoted and spans lines (`"a\\n@x.com"`, longer than the
    contract allows, so it is quarantined with its first line): wherever the cut falls, a record
    is read whole and every line number is the one reader's."""
    rows = [_row(i) for i in range(600)]
    for i in range(0, 600, 10):
        rows[i] = rows[i].rsplit(",", 1)[0] + ',"a\nvery\nlong\naddress@example.com"'
    text = HEADER + "\n".join(rows) + "\n"
    land("orders", "orders_20260101.csv", text)
    for workers in (2, 3):
        _split(monkeypatch, workers, 1000)
        lake = Lake.open(project)
        source = lake.ingest(["orders"]).sources[0]
        assert (source.rows_in, source.landed, source.quarantined) == (600, 540, 60)
        assert len(_committed(lake, "bronze.orders")[1]) == workers  # split
        quarantined = _quarantine(lake, "quarantine.orders")
        first_lines = [2 + i + 3 * (i // 10) for i in range(0, 600, 10)]  # each quoted record adds 3 lines
        assert [line for line, _, _ in quarantined] == first_lines
        assert all(raw.startswith("ORD-") and raw.endswith('address@example.com"') for _, raw, _ in quarantined)
        bronze = _bronze(lake, "bronze.orders")
        one = _one_reader(project, monkeypatch, "orders")
        assert _bronze(one, "bronze.orders") == bronze
        assert _quarantine(one, "quarantine.orders") == quarantined
        for folder in (project / "warehouse", project / ".lakestack", project.parent / "one-reader"):
            import shutil

            shutil.rmtree(folder)


def test_a_stray_quote_in_one_segment_reads_the_file_again_whole(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quote where RFC 4180 puts none: the segment holding it declines, the other segments' data
    files are deleted and the file is read whole by one worker (the record path), as unsplit."""
    rows = [_row(i) for i in range(600)]
    rows[500] = rows[500].replace("@example.com", '"@example.com')
    text = HEADER + "\n".join(rows) + "\n"
    land("orders", "orders_20260101.csv", text)
    _split(monkeypatch, 2, 1000)
    lake = Lake.open(project)
    source = lake.ingest(["orders"]).sources[0]
    assert source.rows_in == 600 and source.rows_in == source.landed + source.quarantined
    commits, planned, on_disk = _committed(lake, "bronze.orders")
    assert commits == 1 and len(planned) == 1 and planned == on_disk  # the segments' files are gone
    one = _one_reader(project, monkeypatch, "orders")
    assert _bronze(one, "bronze.orders") == _bronze(lake, "bronze.orders")
    assert _quarantine(one, "quarantine.orders") == _quarantine(lake, "quarantine.orders")


def test_a_failed_commit_or_a_killed_segment_worker_commits_nothing_of_the_file(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakestack import failpoints
    from lakestack.errors import RunError

    rows = [_row(i) for i in range(800)]
    rows[700] = rows[700].replace(",USD,", ",JPY,", 1)
    text = HEADER + "\n".join(rows) + "\n"
    land("orders", "orders_20260101.csv", text)
    _split(monkeypatch, 2, 1000)

    with failpoints.armed("files.before_read=kill"), pytest.raises(RunError, match="died"):
        Lake.open(project).ingest(["orders"])  # the segments' workers are killed
    with failpoints.armed("files.before_bronze_commit=raise"), pytest.raises(Exception, match="failpoint"):
        Lake.open(project).ingest(["orders"])  # both segments written, then the commit fails
    lake = Lake.open(project)
    assert lake.warehouse.load("bronze.orders").current_snapshot() is None  # nothing of the file

    source = lake.ingest(["orders"]).sources[0]
    assert (source.landed, source.quarantined) == (799, 1)
    commits, planned, _ = _committed(lake, "bronze.orders")
    assert commits == 1 and len(planned) == 2
    bronze = _bronze(lake, "bronze.orders")
    assert bronze == sorted((i + 2, rows[i]) for i in range(800) if i != 700)
    quarantined = _quarantine(lake, "quarantine.orders")
    assert [(line, fields) for line, _, fields in quarantined] == [(702, ("$.currency",))]


def test_what_is_not_split(project: Path, land: Land, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gzip file, a file under the threshold and a one-worker run are read whole."""
    import gzip

    from lakestack.contracts.model import FileSpec
    from lakestack.ingest.segments import plan, splittable

    spec = FileSpec("*", "csv")
    monkeypatch.setenv("LAKESTACK_SPLIT_BYTES", "1000")
    assert splittable(spec, None, 1000, 2)
    assert not splittable(spec, ".gz", 10**9, 2)
    assert not splittable(spec, None, 999, 2)
    assert not splittable(spec, None, 10**9, 1)
    assert not splittable(FileSpec("*", "parquet"), None, 10**9, 2)
    monkeypatch.setenv("LAKESTACK_SPLIT_BYTES", "0")
    assert not splittable(spec, None, 10**9, 2)

    rows = [_row(i) for i in range(300)]
    land("orders", "orders_20260101.csv.gz", gzip.compress((HEADER + "\n".join(rows) + "\n").encode()))
    _split(monkeypatch, 2, 100)
    lake = Lake.open(project)
    assert lake.ingest(["orders"]).sources[0].landed == 300
    assert len(_committed(lake, "bronze.orders")[1]) == 1

    # a header the column reader refuses: not split (the one reader reports it)
    from lakestack.contracts.registry import ContractRegistry

    contract = ContractRegistry.load(project / "contracts").get("orders")
    bad_header = land("orders", "orders_20260102.csv", "order_id;qty\n" + "\n".join(rows) + "\n")
    assert plan(bad_header, spec, contract, 2) is None


def test_a_cut_inside_a_quoted_field_moves_past_the_record(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nominal cut (half the file) falls inside a quoted field of a thousand lines spanning
    several of the scan's reads: the second segment starts after that record, and knows the
    newlines before it."""
    from lakestack.contracts.model import FileSpec
    from lakestack.contracts.registry import ContractRegistry
    from lakestack.ingest import segments

    monkeypatch.setattr(segments, "_READ", 4096)  # the field spans reads: parity carried across
    long = '"' + "\n".join(f'line {n} of a ""quoted"" note' for n in range(1000)) + '"'
    rows = (
        [_row(i) for i in range(100)] + [_row(100).rsplit(",", 1)[0] + "," + long] + [_row(i) for i in range(101, 200)]
    )
    text = HEADER + "\n".join(rows) + "\n"
    path = land("orders", "orders_20260101.csv", text)
    data = text.encode()
    field_at = data.index(b'"')
    assert field_at < len(data) // 2 < field_at + len(long)  # the cut lies inside the field
    contract = ContractRegistry.load(project / "contracts").get("orders")
    found = segments.plan(path, FileSpec("*", "csv"), contract, 2)
    assert found is not None and len(found) == 2
    first, second = found
    assert (first.start, first.line, first.columns) == (0, 0, None)
    assert second.start == field_at + len(long) + 1  # just past the quoted record's newline
    assert second.line == data[: second.start].count(b"\n") == 1 + 101 + 999
    assert second.columns == tuple(HEADER.strip().split(",")) and second.end == len(data)
    assert data[second.start :].startswith(_row(101).encode())


def test_on_delta_the_segments_files_land_in_one_version(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("deltalake")
    text = (project / "lakestack.yaml").read_text()
    (project / "lakestack.yaml").write_text(text.replace("    warehouse:", "    format: delta\n    warehouse:", 1))
    rows = [_row(i) for i in range(700)]
    rows[600] = rows[600].replace(",USD,", ",JPY,", 1)
    land("orders", "orders_20260101.csv", HEADER + "\n".join(rows) + "\n")
    _split(monkeypatch, 2, 1000)
    lake = Lake.open(project)
    source = lake.ingest(["orders"]).sources[0]
    assert (source.rows_in, source.landed, source.quarantined) == (700, 699, 1)
    table = lake.warehouse.load("bronze.orders")
    versions = [s for s in table.snapshots() if s.summary.additional_properties.get("lakestack.batch-id")]
    assert len(versions) == 1 and len(table.file_paths()) == 2  # both segments' files, one version
    assert _bronze(lake, "bronze.orders") == sorted((i + 2, rows[i]) for i in range(700) if i != 600)
    assert [line for line, _, _ in _quarantine(lake, "quarantine.orders")] == [602]


def test_crlf_lines_split_as_one_reader_reads_them(project: Path, land: Land, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_row(i) for i in range(500)]
    rows[450] = rows[450].replace(",USD,", ",JPY,", 1)
    land("orders", "orders_20260101.csv", (HEADER.replace("\n", "\r\n") + "\r\n".join(rows) + "\r\n").encode())
    _split(monkeypatch, 2, 1000)
    lake = Lake.open(project)
    source = lake.ingest(["orders"]).sources[0]
    assert (source.landed, source.quarantined) == (499, 1)
    assert len(_committed(lake, "bronze.orders")[1]) == 2
    assert _bronze(lake, "bronze.orders") == sorted((i + 2, rows[i]) for i in range(500) if i != 450)
    assert [line for line, _, _ in _quarantine(lake, "quarantine.orders")] == [452]


def test_a_cut_with_no_record_end_near_it_is_dropped(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quoted field longer than the search window holds the only cut: the file is read whole."""
    from lakestack.contracts.model import FileSpec
    from lakestack.contracts.registry import ContractRegistry
    from lakestack.ingest import segments

    monkeypatch.setattr(segments, "_READ", 1024)
    monkeypatch.setattr(segments, "_SEARCH", 4096)
    long = '"' + "\n".join("x" * 60 for _ in range(200)) + '"'  # 12 KB of one field
    rows = [_row(0), _row(1).rsplit(",", 1)[0] + "," + long, _row(2)]
    path = land("orders", "orders_20260101.csv", HEADER + "\n".join(rows) + "\n")
    contract = ContractRegistry.load(project / "contracts").get("orders")
    assert segments.plan(path, FileSpec("*", "csv"), contract, 2) is None
    monkeypatch.setattr(segments, "_SEARCH", 1 << 20)  # a wider window finds the record's end
    found = segments.plan(path, FileSpec("*", "csv"), contract, 2)
    assert found is not None and path.read_bytes()[found[1].start :] == (_row(2) + "\n").encode()

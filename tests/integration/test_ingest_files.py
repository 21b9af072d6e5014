"""File ingestion into real Iceberg tables (SQLite catalog, local warehouse), read back with DuckDB."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from lakestack import Lake
from lakestack.errors import UnsafePathError
from lakestack.storage.warehouse import history
from tests_support import ORDERS as _  # noqa: F401  (keeps the support module importable)

HEADER = "order_id,qty,price,currency,order_ts,email\n"
GOOD = [
    "ORD-0001,2,9.99,USD,2026-01-01 10:00:00,ada@example.com",
    'ORD-0002,1,5.00,EUR,2026-01-01T11:00:00+01:00,"lovelace, ada"',
    "ORD-0003,3,0.50,,2026-01-01T12:00:00Z,",
]
BAD = [
    "ORD-1,2,9.99,USD,2026-01-01 10:00:00,",  # pattern
    "ORD-0004,x,-1,JPY,,",  # type, minimum, enum, not_null
    "ORD-0005,2,9.99",
]  # field count
Land = Callable[[str, str, "str | bytes"], Path]


def _csv(rows: list[str]) -> str:
    return HEADER + "\n".join(rows) + "\n"


def _outcomes(report: object) -> dict[str, object]:
    return {f.name: f for s in report.sources for f in s.files}  # type: ignore[attr-defined]


def test_mixed_file_lands_valid_rows_and_quarantines_the_rest(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", _csv([GOOD[0], BAD[0], GOOD[1], BAD[1], BAD[2], GOOD[2]]))
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    source = report.sources[0]
    assert (source.rows_in, source.landed, source.quarantined) == (6, 3, 3)
    assert source.rows_in == source.landed + source.quarantined

    bronze = lake.read("bronze.orders").sort_by("_source_line").to_pylist()
    assert [r["order_id"] for r in bronze] == ["ORD-0001", "ORD-0002", "ORD-0003"]
    assert [r["_source_line"] for r in bronze] == [2, 4, 7]
    assert bronze[1]["_raw"] == GOOD[1]
    assert bronze[1]["email"] == "lovelace, ada"
    assert bronze[1]["order_ts"].isoformat() == "2026-01-01T10:00:00+00:00"  # converted to UTC
    assert bronze[0]["order_ts"].isoformat() == "2026-01-01T10:00:00+00:00"  # naive read as UTC
    assert {r["_run_id"] for r in bronze} == {report.run_id}
    assert {str(r["_file_date"]) for r in bronze} == {"2026-01-01"}
    assert {r["_contract_version"] for r in bronze} == {1}

    bad = {r["_source_line"]: r for r in lake.read("quarantine.orders").to_pylist()}
    assert sorted(bad) == [3, 5, 6]
    assert [(e["path"], e["rule"]) for e in bad[5]["_errors"]] == [
        ("$.qty", "type"),
        ("$.price", "minimum"),
        ("$.currency", "enum"),
        ("$.order_ts", "not_null"),
    ]
    assert bad[3]["_errors"][0]["rule"] == "pattern"
    assert bad[6]["_errors"][0]["rule"] == "field_count"
    assert bad[6]["_raw"] == BAD[2]
    assert {r["_scope"] for r in bad.values()} == {"record"}
    assert {r["_source_file"] for r in bad.values()} == {"orders_20260101.csv"}


def test_reingest_lands_nothing_new_and_reports_duplicates(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", _csv(GOOD + BAD[:1]))
    lake = Lake.open(project)
    lake.ingest(["orders"])
    bronze = lake.warehouse.load("bronze.orders")
    snapshots_before = len(bronze.metadata.snapshots)

    again = lake.ingest(["orders"])
    assert again.landed == 0 and again.quarantined == 0
    assert [f.status for f in again.sources[0].files] == ["skipped"]
    assert len(lake.warehouse.load("bronze.orders").metadata.snapshots) == snapshots_before  # no new snapshot

    land("orders", "orders_20260102.csv", _csv(GOOD + BAD[:1]))  # same content, new name
    third = lake.ingest(["orders"])
    outcome = _outcomes(third)["orders_20260102.csv"]
    assert outcome.status == "skipped"  # type: ignore[attr-defined]
    assert "same content as orders_20260101.csv" in outcome.reason  # type: ignore[attr-defined]
    assert lake.table_info("bronze.orders").rows == 3
    assert lake.table_info("quarantine.orders").rows == 1


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("orders_20260101.csv", b"", "the file is empty (zero bytes)"),
        (
            "orders_20260101.csv",
            (HEADER + "ORD-0001,2,9.99,USD,2026-01-01,caf\xe9\n").encode("latin-1"),
            "not valid text in the contract's encoding",
        ),
        ("orders_20260101.csv.gz", gzip.compress(_csv(GOOD * 50).encode())[:-40], "the gzip stream is truncated"),
        ("orders_20260101.csv.gz", b"this is not gzip at all", "not a valid gzip file"),
        (
            "orders_20260101.csv",
            _csv(GOOD).replace(",", ";").encode(),
            "it looks delimited by ';', but the contract says ','",
        ),
        (
            "orders_20260101.csv",
            ("order_id,qty,price\n" + "ORD-0001,1,1.00\n").encode(),
            "missing column(s): currency, order_ts, email",
        ),
        (
            "orders_20260101.csv",
            (HEADER.strip() + ",coupon\n" + GOOD[0] + ",X\n").encode(),
            "column(s) not in the contract: coupon",
        ),
        ("orders_20260101.csv", (HEADER + 'ORD-0001,2,"9.99\n').encode(), "malformed CSV"),
    ],
)
def test_unreadable_files_are_quarantined_whole_and_others_go_on(
    project: Path, land: Land, name: str, content: bytes, reason: str
) -> None:
    land("orders", name, content)
    land("orders", "orders_20260105.csv", _csv(GOOD))
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    outcomes = _outcomes(report)
    assert outcomes[name].status == "rejected"  # type: ignore[attr-defined]
    assert reason in outcomes[name].reason  # type: ignore[attr-defined]
    assert outcomes["orders_20260105.csv"].landed == 3  # type: ignore[attr-defined]
    rows = lake.read("quarantine.orders").to_pylist()
    assert len(rows) == 1
    assert rows[0]["_scope"] == "file" and reason in rows[0]["_reason"]
    assert rows[0]["_source_file"] == name and rows[0]["_file_hash"] == outcomes[name].sha256  # type: ignore[attr-defined]
    # the rejected file is remembered: dropping it again is skipped, not quarantined twice
    assert [f.status for f in lake.ingest(["orders"]).sources[0].files] == ["skipped", "skipped"]


def test_file_names_that_escape_the_landing_folder_are_refused(project: Path, land: Land, tmp_path: Path) -> None:
    outside = tmp_path / "secret_orders_20260101.csv"
    outside.write_text(_csv(GOOD))
    os.symlink(outside, project / "landing" / "orders" / "orders_20260101.csv")
    land("orders", "orders_20260102.csv", _csv(GOOD))
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    outcomes = _outcomes(report)
    assert outcomes["orders_20260101.csv"].status == "refused"  # type: ignore[attr-defined]
    assert "links outside the landing folder" in outcomes["orders_20260101.csv"].reason  # type: ignore[attr-defined]
    assert report.landed == 3
    for name in ("../secret_orders_20260101.csv", str(outside), "a/../../x.csv"):
        with pytest.raises(UnsafePathError, match="escapes the landing folder"):
            lake.ingest(["orders"], files=[name])


def test_explicit_file_selection(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv", _csv(GOOD[:1]))
    land("orders", "orders_20260102.csv", _csv(GOOD[1:]))
    lake = Lake.open(project)
    report = lake.ingest(["orders"], files=["orders_20260102.csv", "notes.txt"])
    outcomes = _outcomes(report)
    assert outcomes["orders_20260102.csv"].landed == 2  # type: ignore[attr-defined]
    assert outcomes["notes.txt"].status == "refused"  # type: ignore[attr-defined]
    assert lake.status()[0].pending_files == 1


def test_ndjson_events_with_nested_fields(project: Path, land: Land) -> None:
    events = [
        {
            "event_id": "e-1",
            "ts": "2026-01-01T10:00:00Z",
            "kind": "view",
            "page": {"url": "/a", "ref": None},
            "items": ["p1", "p2"],
            "ip": "10.0.0.1",
        },
        {"event_id": "e-2", "ts": "2026-01-01T10:00:01+02:00", "kind": "buy"},
        {"event_id": "e-3", "ts": "2026-01-01T10:00:02Z", "kind": "refund", "extra": 1},
    ]
    lines = [json.dumps(e) for e in events] + ["", '{"event_id": "e-4", ', '{"event_id": "e-5", "event_id": "e-5"}']
    land("clicks", "clicks_20260101.ndjson", "\n".join(lines) + "\n")
    lake = Lake.open(project)
    report = lake.ingest(["clicks"])
    assert (report.rows_in, report.landed, report.quarantined) == (5, 2, 3)
    rows = lake.read("bronze.clicks").sort_by("event_id").to_pylist()
    assert rows[0]["page"] == {"url": "/a", "ref": None} and rows[0]["items"] == ["p1", "p2"]
    assert rows[1]["page"] is None and rows[1]["items"] is None
    assert rows[1]["ts"].isoformat() == "2026-01-01T08:00:01+00:00"
    assert json.loads(rows[0]["_raw"]) == events[0]
    bad = sorted(lake.read("quarantine.clicks").to_pylist(), key=lambda r: r["_source_line"])
    assert [r["_source_line"] for r in bad] == [3, 5, 6]
    assert [[e["rule"] for e in r["_errors"]] for r in bad] == [
        ["enum", "unknown_field"],
        ["json"],
        ["duplicate_key", "required", "required"],
    ]


def test_parquet_files(project: Path, land: Land) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    import pyarrow.parquet as pq

    (project / "contracts" / "orders.v1.yaml").write_text(
        (project / "contracts" / "orders.v1.yaml")
        .read_text()
        .replace("orders_{date:%Y%m%d}.csv", "orders_{date:%Y%m%d}.parquet")
        .replace("format: csv", "format: parquet")
    )
    table = pa.table(
        {
            "order_id": ["ORD-0001", "ORD-2"],
            "qty": [1, 2],
            "price": pa.array([Decimal("1.00"), Decimal("2.00")], pa.decimal128(8, 2)),
            "currency": ["USD", "EUR"],
            "order_ts": [datetime(2026, 1, 1, tzinfo=UTC)] * 2,
            "email": [None, "a@b.c"],
        }
    )
    path = project / "landing" / "orders" / "orders_20260101.parquet"
    pq.write_table(table, path)
    land("orders", "orders_20260102.parquet", b"PAR1 not really")
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    outcomes = _outcomes(report)
    assert outcomes["orders_20260101.parquet"].landed == 1  # type: ignore[attr-defined]
    assert outcomes["orders_20260101.parquet"].quarantined == 1  # type: ignore[attr-defined]
    assert outcomes["orders_20260102.parquet"].status == "rejected"  # type: ignore[attr-defined]
    bad = [r for r in lake.read("quarantine.orders").to_pylist() if r["_scope"] == "record"]
    assert bad[0]["_source_line"] == 2 and bad[0]["_errors"][0]["rule"] == "pattern"
    assert json.loads(bad[0]["_raw"])["order_id"] == "ORD-2"


def test_tables_are_readable_by_pyiceberg_and_duckdb(project: Path, land: Land) -> None:
    import duckdb

    land("orders", "orders_20260101.csv", _csv(GOOD))
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    table = lake.warehouse.load("bronze.orders")
    assert table.scan().to_arrow().num_rows == 3
    assert str(table.spec()).find("day(") >= 0 or "ingested_at_day" in str(table.spec())
    commit = list(history(table))[-1]
    assert commit.run_id == report.run_id
    assert commit.checkpoint is not None
    assert commit.checkpoint["files"][0]["name"] == "orders_20260101.csv"
    files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    count = duckdb.connect().execute(f"select count(*), sum(qty) from read_parquet({files!r})").fetchone()
    assert count == (3, 6)


def test_interrupted_batch_is_completed_without_duplicating_quarantine(
    project: Path, land: Land, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the quarantine commit and before the Bronze commit: the next run repairs it."""
    import lakestack.ingest.files as files

    land("orders", "orders_20260101.csv", _csv(GOOD + BAD))
    real_append = files.append

    def crash_on_bronze(table, data, **kw):  # type: ignore[no-untyped-def]
        if kw["batch_id"].endswith(":b"):
            raise KeyboardInterrupt("simulated crash between the two commits")
        return real_append(table, data, **kw)

    lake = Lake.open(project)
    monkeypatch.setattr(files, "append", crash_on_bronze)
    with pytest.raises(KeyboardInterrupt):
        lake.ingest(["orders"])
    monkeypatch.setattr(files, "append", real_append)
    assert lake.table_info("quarantine.orders").rows == 3
    assert lake.table_info("bronze.orders").rows == 0

    report = Lake.open(project).ingest(["orders"])
    assert report.landed == 3
    assert lake.table_info("bronze.orders").rows == 3
    assert lake.table_info("quarantine.orders").rows == 3  # not 6


def test_csv_options_headerless_latin1_and_bom(project: Path, land: Land) -> None:
    contract = project / "contracts" / "orders.v1.yaml"
    text = contract.read_text().replace(
        "format: csv", 'format: csv\n  csv: {header: false, delimiter: "|", encoding: latin-1}'
    )
    contract.write_text(text)
    land("orders", "orders_20260101.csv", "ORD-0001|2|9.99|USD|2026-01-01 10:00:00|café@x.fr\n".encode("latin-1"))
    lake = Lake.open(project)
    assert lake.ingest(["orders"]).landed == 1
    assert lake.read("bronze.orders").to_pylist()[0]["email"] == "café@x.fr"


def test_utf8_bom_and_quoted_newlines_keep_lines_right(project: Path, land: Land) -> None:
    body = HEADER + 'ORD-0001,2,9.99,USD,2026-01-01 10:00:00,"two\nlines"\n' + "ORD-1,2,9.99,USD,2026-01-01,\n"
    land("orders", "orders_20260101.csv", b"\xef\xbb\xbf" + body.encode())
    lake = Lake.open(project)
    report = lake.ingest(["orders"])
    assert (report.landed, report.quarantined) == (1, 1)
    good = lake.read("bronze.orders").to_pylist()[0]
    assert good["email"] == "two\nlines" and good["_source_line"] == 2
    assert good["_raw"] == 'ORD-0001,2,9.99,USD,2026-01-01 10:00:00,"two\nlines"'
    assert lake.read("quarantine.orders").to_pylist()[0]["_source_line"] == 4


# -- exact lines of encoding errors in big files (CSV decodes a block ahead of the parser) --------
def _orders_lines(total: int, bad_at: int) -> bytes:
    """A CSV of `total` lines (header included) whose line `bad_at` holds a byte UTF-8 cannot decode;
    rows vary, so a gzip of it stays within the default max_ratio."""
    rows = [HEADER.encode()]
    rows += [
        f"ORD-{i % 10_000:04d},{i % 97 + 1},{i % 1000}.25,USD,2026-01-01 10:00:00,u{i}@x.io\n".encode()
        for i in range(2, total + 1)
    ]
    rows[bad_at - 1] = rows[bad_at - 1].replace(b"@x.io", b"@\xff\xfe.io")
    return b"".join(rows)


@pytest.mark.parametrize(("total", "compression"), [(1_000_002, None), (200_002, ".gz")])
def test_csv_encoding_error_reports_its_exact_line(tmp_path: Path, total: int, compression: str | None) -> None:
    from conftest import ORDERS_CONTRACT
    from lakestack.contracts.batch import load_batch_contract
    from lakestack.ingest.readers import FileRejected, read_csv

    (tmp_path / "orders.v1.yaml").write_text(ORDERS_CONTRACT)
    contract = load_batch_contract(tmp_path / "orders.v1.yaml", "orders", 1, "orders.v1.yaml")
    assert contract.file is not None
    data = _orders_lines(total, total)
    path = tmp_path / f"orders.csv{compression or ''}"
    path.write_bytes(gzip.compress(data, 1) if compression else data)
    with pytest.raises(FileRejected) as caught:
        for _ in read_csv(path, compression, contract, contract.file):
            pass
    assert caught.value.line == total and "not valid text" in caught.value.reason


def test_csv_encoding_error_line_reaches_quarantine(project: Path, land: Land) -> None:
    land("orders", "orders_20260101.csv.gz", gzip.compress(_orders_lines(200_002, 150_001), 1))
    lake = Lake.open(project)
    outcome = lake.ingest(["orders"]).sources[0].files[0]
    assert (outcome.status, outcome.line) == ("rejected", 150_001)
    assert lake.read("quarantine.orders").to_pylist()[0]["_source_line"] == 150_001


@pytest.mark.parametrize(("total", "compression"), [(200_002, ".gz"), (100_002, None)])
def test_ndjson_encoding_error_is_quarantined_at_its_exact_line(
    project: Path, land: Land, total: int, compression: str | None
) -> None:
    lines = [
        json.dumps({"event_id": f"e{i:07d}", "ts": "2026-01-01T00:00:00Z", "kind": "view"}).encode() + b"\n"
        for i in range(1, total + 1)
    ]
    lines[total - 1] = lines[total - 1].replace(b'"view"', b'"vi\xffw"')
    data = b"".join(lines)
    name = f"clicks_20260101.ndjson{compression or ''}"
    land("clicks", name, gzip.compress(data, 1) if compression else data)
    lake = Lake.open(project)
    source = lake.ingest(["clicks"]).sources[0]
    assert (source.landed, source.quarantined) == (total - 1, 1)
    bad = lake.read("quarantine.clicks").to_pylist()
    assert [(r["_source_line"], r["_errors"][0]["rule"]) for r in bad] == [(total, "encoding")]

"""Null markers and CSV spelling options, ingested into real Iceberg tables, on both validation
paths (vectorised, and record by record with LAKESTACK_VECTORISED=0): the same rows land and the
same rows are quarantined with the same reasons."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lakestack import Lake
from lakestack.errors import ContractError

Land = Callable[[str, str, "str | bytes"], Path]


def _contract(csv: str = "", columns: str | None = None) -> str:
    return f"""\
source: orders
version: 1
file:
  pattern: "orders_{{date:%Y%m%d}}.csv"
  format: csv
  csv: {{{csv}}}
columns:
{
        columns
        or '''  - {name: order_id, type: string, nullable: false}
  - {name: qty, type: integer}
  - {name: note, type: string}'''
    }
"""


@pytest.fixture(params=["vectorised", "records"])
def path_kind(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[str]:
    monkeypatch.setenv("LAKESTACK_INGEST_WORKERS", "1")  # in this process, so its log is seen
    if request.param == "records":
        monkeypatch.setenv("LAKESTACK_VECTORISED", "0")
    caplog.set_level(logging.DEBUG, logger="lakestack.ingest.files")
    yield str(request.param)
    if request.param == "vectorised":  # the file really took the vectorised path
        assert "record by record" not in caplog.text


def _ingest(project: Path, land: Land, contract: str, body: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    (project / "contracts" / "orders.v1.yaml").write_text(contract)
    land("orders", "orders_20260101.csv", body)
    lake = Lake.open(project)
    lake.ingest(["orders"])
    bronze = lake.read("bronze.orders").sort_by("_source_line").to_pylist()
    quarantine = lake.read("quarantine.orders").sort_by("_source_line").to_pylist()
    return bronze, quarantine


BODY = "order_id,qty,note\nA,1,NA\nB,NA,fine\nC,,\nD,NULL,NULL\n"


def test_declared_marker_makes_an_integer_and_a_string_null(project: Path, land: Land, path_kind: str) -> None:
    bronze, quarantine = _ingest(project, land, _contract("null_values: ['', NA, 'NULL']"), BODY)
    assert quarantine == []
    assert [(r["order_id"], r["qty"], r["note"]) for r in bronze] == [
        ("A", 1, None),
        ("B", None, "fine"),
        ("C", None, None),
        ("D", None, None),
    ]
    assert bronze[1]["_raw"] == "B,NA,fine"  # the raw record keeps the marker as written


def test_undeclared_marker_quarantines_an_integer_and_stays_text_in_a_string(
    project: Path, land: Land, path_kind: str
) -> None:
    bronze, quarantine = _ingest(project, land, _contract(), BODY)
    # (`null` in any case is read as null in a number column even undeclared, as it always was)
    assert [(r["order_id"], r["qty"], r["note"]) for r in bronze] == [
        ("A", 1, "NA"),
        ("C", None, None),
        ("D", None, "NULL"),
    ]
    assert [(q["_source_line"], q["_reason"]) for q in quarantine] == [(3, "$.qty: 'NA' is not an integer")]
    assert quarantine[0]["_raw"] == "B,NA,fine"


def test_a_column_can_keep_a_marker_the_file_declares(project: Path, land: Land, path_kind: str) -> None:
    columns = """  - {name: order_id, type: string, nullable: false}
  - {name: qty, type: integer}
  - {name: note, type: string, null_values: []}"""
    bronze, quarantine = _ingest(project, land, _contract("null_values: ['', NA, 'NULL']", columns), BODY)
    assert quarantine == []
    # `null_values: []` on the column: its text is kept as written, the empty field included
    assert [(r["qty"], r["note"]) for r in bronze] == [(1, "NA"), (None, "fine"), (None, ""), (None, "NULL")]


def test_a_declared_marker_in_a_required_column_is_a_missing_value(project: Path, land: Land, path_kind: str) -> None:
    columns = """  - {name: order_id, type: string, nullable: false}
  - {name: qty, type: integer, nullable: false}
  - {name: note, type: string}"""
    bronze, quarantine = _ingest(
        project, land, _contract("null_values: ['', NA]", columns), "order_id,qty,note\nA,NA,x\n"
    )
    assert bronze == []
    assert [q["_reason"] for q in quarantine] == ["$.qty: must not be null"]


def test_boolean_words(project: Path, land: Land, path_kind: str) -> None:
    columns = """  - {name: order_id, type: string, nullable: false}
  - {name: paid, type: boolean, true_values: [Y, 'yes'], false_values: [N, 'no']}
  - {name: gift, type: boolean}"""
    body = "order_id,paid,gift\nA,Y,true\nB,no,0\nC,true,N\nD,maybe,1\n"
    bronze, quarantine = _ingest(project, land, _contract("", columns), body)
    assert [(r["order_id"], r["paid"], r["gift"]) for r in bronze] == [("A", True, True), ("B", False, False)]
    # the defaults (true/false/1/0) still read; a word declared for one column is not another's
    assert [(q["_source_line"], q["_reason"]) for q in quarantine] == [
        (4, "$.gift: 'N' is not a boolean (true/false)"),
        (5, "$.paid: 'maybe' is not a boolean (true/false)"),
    ]
    assert bronze[0]["_raw"] == "A,Y,true"


def test_file_wide_boolean_words(project: Path, land: Land, path_kind: str) -> None:
    columns = """  - {name: order_id, type: string, nullable: false}
  - {name: paid, type: boolean}"""
    bronze, _ = _ingest(
        project, land, _contract("true_values: [J], false_values: [N]", columns), "order_id,paid\nA,J\nB,N\n"
    )
    assert [r["paid"] for r in bronze] == [True, False]


def test_date_and_timestamp_formats(project: Path, land: Land, path_kind: str) -> None:
    columns = """  - {name: order_id, type: string, nullable: false}
  - {name: day, type: date, format: "%d/%m/%Y"}
  - {name: at, type: timestamp, format: "%d/%m/%Y %H:%M"}"""
    body = "order_id,day,at\nA,31/01/2026,31/01/2026 14:05\nB,2026-02-01,\nC,30/02/2026,01/02/2026 09:00\n"
    bronze, quarantine = _ingest(project, land, _contract("", columns), body)
    assert [(r["order_id"], r["day"], r["at"]) for r in bronze] == [
        ("A", date(2026, 1, 31), datetime(2026, 1, 31, 14, 5, tzinfo=UTC)),
        ("B", date(2026, 2, 1), None),  # an ISO date still reads
    ]
    assert [(q["_source_line"], q["_errors"][0]["path"]) for q in quarantine] == [(4, "$.day")]


def test_thousands_and_decimal_separators(project: Path, land: Land, path_kind: str) -> None:
    columns = """  - {name: order_id, type: string, nullable: false}
  - {name: amount, type: "decimal(10,2)"}
  - {name: weight, type: double}
  - {name: units, type: integer}
  - {name: label, type: string}"""
    body = "order_id;amount;weight;units;label\nA;1.234,56;0,5;1.000;1.234,56\nB;12,345;1;2;x\n"
    csv = "delimiter: ';', thousands: '.', decimal: ','"
    bronze, quarantine = _ingest(project, land, _contract(csv, columns), body)
    assert [(r["amount"], r["weight"], r["units"], r["label"]) for r in bronze] == [
        (Decimal("1234.56"), 0.5, 1000, "1.234,56"),  # a string column is never rewritten
    ]
    assert [(q["_source_line"], q["_errors"][0]["rule"]) for q in quarantine] == [(3, "scale")]


@pytest.mark.parametrize(
    ("csv", "columns", "message"),
    [
        ("null_values: ['', NULL]", None, "put the spelling in quotes"),
        ("true_values: [yes]", None, "put the spelling in quotes"),
        ("thousands: ',', decimal: ','", None, "`thousands` and `decimal` must differ"),
        ("", "  - {name: qty, type: integer, format: '%d'}", "`format` applies to date and timestamp columns"),
        ("", "  - {name: day, type: date, format: '%H:%M'}", "cannot read a date"),
        ("", "  - {name: qty, type: integer, true_values: [Y]}", "apply to boolean columns"),
    ],
)
def test_options_that_cannot_apply_are_refused_with_their_line(
    project: Path, csv: str, columns: str | None, message: str
) -> None:
    (project / "contracts" / "orders.v1.yaml").write_text(_contract(csv, columns))
    with pytest.raises(ContractError) as caught:
        Lake.open(project).ingest(["orders"])
    assert message in str(caught.value)
    assert "orders.v1.yaml:" in str(caught.value)

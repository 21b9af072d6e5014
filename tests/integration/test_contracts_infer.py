"""`lakestack contracts infer` on the Northwind landing files: contracts drafted from the files alone
(no hand-written contract in the project) ingest the same rows into Bronze and quarantine the same
rows as the example's hand-written contracts, source by source and file by file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_support import cli, northwind

SOURCES = ("orders", "customers", "products", "fx_rates", "clickstream")


def _ingest(project: Path) -> dict[str, dict[str, Any]]:
    done = cli(project, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return {
        s["source"]: {
            "rows_in": s["rows_in"],
            "landed": s["landed"],
            "quarantined": s["quarantined"],
            "files": sorted((f["name"], f["status"], f["rows_in"], f["landed"], f["quarantined"]) for f in s["files"]),
        }
        for s in report["sources"]
    }


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    hand = northwind(tmp_path_factory.mktemp("hand") / "nw", orders=2000, days=14)
    drafted = tmp_path_factory.mktemp("drafted") / "nw"
    shutil.copytree(hand, drafted)
    for contract in (drafted / "contracts").iterdir():
        contract.unlink()
    for source in SOURCES:
        done = cli(drafted, "contracts", "infer", str(drafted / "landing" / source), "--source", source,
                   "-o", str(drafted / "contracts"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "wrote" in done.stdout and "guessed from" in done.stdout
    return hand, drafted


def test_drafted_contracts_land_and_quarantine_the_same_rows(projects: tuple[Path, Path]) -> None:
    hand, drafted = projects
    by_hand, by_draft = _ingest(hand), _ingest(drafted)
    assert set(by_hand) == set(SOURCES)
    for source in SOURCES:
        assert by_draft[source] == by_hand[source], source
    assert sum(s["quarantined"] for s in by_hand.values()) > 50  # the example's defects were there to catch
    tables = {t["identifier"]: t["rows"] for t in json.loads(cli(drafted, "tables", "--json").stdout)}
    expected = {t["identifier"]: t["rows"] for t in json.loads(cli(hand, "tables", "--json").stdout)}
    for source in SOURCES:
        for layer in ("bronze", "quarantine"):
            assert tables[f"{layer}.{source}"] == expected[f"{layer}.{source}"], (layer, source)


def test_the_drafts_say_what_they_guessed(projects: tuple[Path, Path]) -> None:
    _, drafted = projects
    orders = yaml.safe_load((drafted / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8"))
    assert orders["file"] == {
        "pattern": "orders_{date:%Y%m%d}.csv",
        "format": "csv",
        "csv": {"delimiter": ",", "quote": '"', "header": True, "encoding": "utf-8"},
    }
    assert orders["key"] == ["order_id", "order_line"] and orders["event_time"] == "order_ts"
    columns = {c["name"]: c for c in orders["columns"]}
    assert columns["unit_price"]["type"] == "decimal(12,2)" and columns["quantity"]["type"] == "integer"
    assert columns["currency"]["enum"] == ["EUR", "GBP", "JPY", "USD"]  # 'XXX' (4 rows) is a defect, not a member
    assert columns["order_id"]["regex"] == "^ORD-[0-9]{8}$"
    assert columns["order_ts"]["type"] == "timestamp" and columns["ship_country"].get("nullable", True)
    fx = yaml.safe_load((drafted / "contracts" / "fx_rates.v1.yaml").read_text(encoding="utf-8"))
    assert fx["file"]["csv"]["delimiter"] == ";" and fx["columns"][0] == {
        "name": "rate_date",
        "type": "date",
        "nullable": False,
    }
    clicks = json.loads((drafted / "contracts" / "clickstream.v1.json").read_text(encoding="utf-8"))
    assert clicks["x-lakestack-file"] == {"pattern": "clicks_{date:%Y%m%d}*.ndjson", "format": "ndjson"}
    assert clicks["properties"]["event_ts"] == {"type": "string", "format": "date-time"}
    assert "experiment" not in clicks["properties"]  # in 10 of 3,555 records: an unknown field

    shown = cli(drafted, "contracts", "infer", str(drafted / "landing" / "orders"), "--json")
    assert shown.returncode == 0, shown.stderr
    draft = json.loads(shown.stdout)
    assert draft["written_to"] is None and draft["source"] == "orders"
    guessed = "\n".join(draft["guessed"])
    assert "'XXX'" in guessed and "'two'" in guessed and "orders_20260115.csv.gz could not be read" in guessed


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    missing = cli(tmp_path, "contracts", "infer", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "notes.txt").write_text("hello\n")
    other = cli(tmp_path, "contracts", "infer", str(tmp_path))
    assert other.returncode == 2 and "no CSV, NDJSON or Parquet files" in other.stderr
    (tmp_path / "a.csv").write_text("x\n")
    empty = cli(tmp_path, "contracts", "infer", str(tmp_path / "a.csv"))
    assert empty.returncode == 2 and "no records" in empty.stderr, empty.stderr
    (tmp_path / "b.csv").write_text("id,n\n1,2\n")
    (tmp_path / "out.yaml").write_text("keep me")
    kept = cli(tmp_path, "contracts", "infer", str(tmp_path / "b.csv"), "-o", str(tmp_path / "out.yaml"))
    assert kept.returncode == 2 and "--force" in kept.stderr
    assert (tmp_path / "out.yaml").read_text() == "keep me"


def test_null_markers_drafted_per_column_ingest_as_missing(tmp_path: Path) -> None:
    """'NA'/'NULL' in an integer column are missing (null_values on that column); the 'NA' of a
    text column stays text, as the draft's note says."""
    folder = tmp_path / "shop"
    assert cli(tmp_path, "init", "shop", "--path", str(folder), "--template", "csv").returncode == 0
    for old in [*(folder / "landing" / "orders").iterdir(), *(folder / "contracts").iterdir()]:
        old.unlink()
    rows = "".join(f"{i},{'NA' if i % 7 == 0 else 'NULL' if i % 11 == 0 else i},{'NA' if i == 5 else 'x'}\n"
                   for i in range(1, 101))  # fmt: skip
    (folder / "landing" / "orders" / "orders_20260101.csv").write_text("order_id,pages,label\n" + rows)
    drafted = cli(folder, "contracts", "infer", str(folder / "landing" / "orders"), "--source", "orders",
                  "-o", str(folder / "contracts"), "--json")  # fmt: skip
    assert drafted.returncode == 0, drafted.stderr
    columns = {c["name"]: c for c in json.loads(drafted.stdout)["columns"]}
    assert columns["pages"]["type"] == "integer" and columns["label"]["type"] == "string"
    assert "null_values" in (folder / "contracts" / "orders.v1.yaml").read_text()
    done = cli(folder, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sources"][0]["landed"] == 100
    sql = (
        "SELECT count(*) FILTER (WHERE pages IS NULL) AS missing, "
        "count(*) FILTER (WHERE label = 'NA') AS na FROM bronze.orders"
    )
    shown = cli(folder, "query", sql, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["rows"] == [{"missing": 14 + 8, "na": 1}]

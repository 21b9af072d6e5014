"""Quarantine replay end to end on Northwind: a contract mistake quarantines the orders (every file
whole, or records one by one), the fix ships as orders.v2, `ingest` cannot bring the rows back,
`lakestack quarantine replay orders` does: Bronze then holds what ingesting with the fixed contract
from the start gives, each record once; a second replay lands nothing; Silver picks the rows up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, lake_contents
from lakestack import Lake
from replay_support import bronze_records, fingerprint, fix, mistaken, pristine, quarantine_rows, reference


@pytest.fixture(scope="module", params=["iceberg", "delta"])
def staged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pristine project, its tables Iceberg or Delta (ADR 35): replay is the same on both."""
    if request.param == "delta":
        pytest.importorskip("deltalake")
    return pristine(tmp_path_factory.mktemp("stage") / "northwind", request.param)


def replay(project: Path, *args: str) -> dict[str, Any]:
    done = cli(project, "quarantine", "replay", "orders", *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["rows_in"] == result["replayed"] + result["still_failing"] + result["already_replayed"]
    for f in result["files"]:
        assert f["rows_in"] == f["replayed"] + f["still_failing"] + f["already"], f
    return result


def test_a_file_rejected_whole_by_a_contract_mistake_lands_once_after_the_fix(staged: Path, tmp_path: Path) -> None:
    project = mistaken(staged, tmp_path / "p", "whole_file")
    assert bronze_records(project) == []
    fix(project, "whole_file")
    again = cli(project, "ingest", "orders", "--json")
    assert again.returncode == 0, again.stderr
    assert {f["status"] for f in json.loads(again.stdout)["sources"][0]["files"]} == {"skipped"}  # the measured problem
    expected = bronze_records(reference(staged, tmp_path / "ref", "whole_file"))

    first = replay(project)
    assert first["contract"] == "orders.v2"
    assert first["replayed"] == len(expected) > 100
    assert {f["scope"] for f in first["files"]} == {"file"}
    got = bronze_records(project)
    assert got == expected  # every record once, at its original file and line
    assert len({(f, line) for f, line, _ in got}) == len(got)
    # what still fails is what the fixed contract quarantines too (a file still rejected whole counts once)
    assert first["still_failing"] == quarantine_rows(tmp_path / "ref")

    with Lake.open(project) as lake:
        bronze = lake.warehouse.load("bronze.orders").scan().to_arrow()
    assert bronze["_replayed_from"].null_count == 0
    assert all(
        k.endswith(f"#{line}")
        for k, line in zip(bronze["_replayed_from"].to_pylist(), bronze["_source_line"].to_pylist(), strict=True)
    )
    assert set(bronze["_contract_version"].to_pylist()) == {2}

    before = lake_contents(project)
    second = replay(project)
    assert (second["replayed"], second["already_replayed"], second["snapshot_id"]) == (0, first["replayed"], None)
    assert lake_contents(project) == before
    assert quarantine_rows(project) == len(first["files"])  # quarantine is history: nothing deleted

    runs = cli(project, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    replays = [r for r in json.loads(runs.stdout) if r["job"] == "replay"]
    assert [r["rows_written"] for r in replays] == [0, first["replayed"]]  # newest first

    # Silver picks the replayed rows up: the same Silver as the reference project's
    for root in (project, tmp_path / "ref"):
        promoted = cli(root, "promote", "orders")
        assert promoted.returncode == 0, promoted.stderr
    assert lake_contents(project)["silver.orders"] == lake_contents(tmp_path / "ref")["silver.orders"]


def test_a_too_tight_bound_replays_the_records_the_fix_accepts_and_keeps_the_rest(staged: Path, tmp_path: Path) -> None:
    project = mistaken(staged, tmp_path / "p", "too_tight")
    landed = bronze_records(project)
    fix(project, "too_tight")
    expected = bronze_records(reference(staged, tmp_path / "ref", "too_tight"))
    assert len(expected) > len(landed)

    first = replay(project)
    assert {f["scope"] for f in first["files"]} <= {"record", "file"}
    assert first["replayed"] == len(expected) - len(landed)
    assert first["still_failing"] == quarantine_rows(tmp_path / "ref")  # the records v2 refuses too
    assert bronze_records(project) == expected
    reasons = " ".join(f["reason"] for f in first["failing"])
    assert "greater than the maximum 12" in reasons  # a quantity the fix still refuses stays quarantined

    second = replay(project)
    assert (second["replayed"], second["still_failing"]) == (0, first["still_failing"])
    assert second["already_replayed"] == first["replayed"]
    assert bronze_records(project) == expected


def test_filters_take_only_the_rows_they_name(staged: Path, tmp_path: Path) -> None:
    project = mistaken(staged, tmp_path / "p", "too_tight")
    landed = bronze_records(project)
    fix(project, "too_tight")
    with Lake.open(project) as lake:
        quarantine = lake.warehouse.load("quarantine.orders").scan().to_arrow().to_pylist()
    files = sorted({r["_source_file"] for r in quarantine if r["_scope"] == "record"})
    run_id = quarantine[0]["_run_id"]

    assert replay(project, "--run", "20200101T000000Z-00000000")["files"] == []
    one = replay(project, "--file", files[0])
    assert [f["file"] for f in one["files"]] == [files[0]]
    new = [r for r in bronze_records(project) if r not in landed]
    assert len(new) == one["replayed"] > 0
    assert {f for f, _, _ in new} == {files[0]}

    by_rule = replay(project, "--reason", "maximum")
    wanted = [r for r in quarantine if any(e["rule"] == "maximum" for e in r["_errors"])]
    assert by_rule["quarantined_rows"] == len(wanted)
    assert by_rule["already_replayed"] == one["replayed"]  # the file's rows it took before are counted, not landed

    rest = replay(project, "--run", run_id)
    assert rest["replayed"] == 0  # every row the fix accepts broke the bound, so --reason took them all
    assert bronze_records(project) == bronze_records(reference(staged, tmp_path / "ref", "too_tight"))


def test_a_dry_run_changes_nothing_and_says_what_would_land(staged: Path, tmp_path: Path) -> None:
    project = mistaken(staged, tmp_path / "p", "whole_file")
    fix(project, "whole_file")
    before, contents = fingerprint(project), lake_contents(project)
    dry = replay(project, "--dry-run")
    assert dry["dry_run"] is True and dry["run_id"] is None and dry["snapshot_id"] is None
    assert dry["replayed"] > 0
    assert fingerprint(project) == before  # no snapshot, no schema change, no run record
    assert lake_contents(project) == contents
    real = replay(project)
    assert (real["replayed"], real["still_failing"]) == (dry["replayed"], dry["still_failing"])


def test_an_unknown_source_is_refused_naming_the_sources(staged: Path, tmp_path: Path) -> None:
    project = mistaken(staged, tmp_path / "p", "whole_file")
    before = fingerprint(project)
    done = cli(project, "quarantine", "replay", "ordres")
    assert done.returncode == 2
    assert "unknown source 'ordres'" in done.stderr and "orders" in done.stderr and "customers" in done.stderr
    assert "Traceback" not in done.stderr
    assert fingerprint(project) == before


@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_without_its_landing_file_an_ndjson_record_replays_from_raw(tmp_path: Path, table_format: str) -> None:
    from lake_support import copy_project, northwind

    enum = '"enum": ["page_view", "product_view", "add_to_cart", "checkout", "purchase"]'
    staged = northwind(tmp_path / "staged", orders=200, days=2)
    project, ref = (copy_project(staged, tmp_path / name, table_format=table_format) for name in ("p", "ref"))
    fixed = (project / "contracts" / "clickstream.v1.json").read_text(encoding="utf-8")
    assert enum in fixed
    mistake = fixed.replace(enum, enum.replace(', "purchase"', ""))  # purchases refused
    (project / "contracts" / "clickstream.v1.json").write_text(mistake, encoding="utf-8")
    for root in (project, ref):
        with Lake.open(root) as lake:
            lake.ingest(["clickstream"])
    for landing in (project / "landing" / "clickstream").iterdir():
        landing.unlink()  # gone: only quarantine's _raw copy of each record is left
    (project / "contracts" / "clickstream.v2.json").write_text(fixed, encoding="utf-8")

    done = cli(project, "quarantine", "replay", "clickstream", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["contract"] == "clickstream.v2"
    assert {f["via"] for f in result["files"]} == {"raw"}
    assert result["replayed"] > 0
    assert result["rows_in"] == result["replayed"] + result["still_failing"] + result["already_replayed"]
    assert clicks(project) == clicks(ref)  # file, line, file date and values as ingesting with the fix gives
    with Lake.open(ref) as lake:
        assert result["still_failing"] == lake.warehouse.load("quarantine.clickstream").scan().to_arrow().num_rows


def clicks(root: Path) -> list[tuple[Any, ...]]:
    with Lake.open(root) as lake:
        names = lake.project.contract("clickstream").column_names
        rows = lake.warehouse.load("bronze.clickstream").scan().to_arrow().to_pylist()
    return sorted(
        (r["_source_file"], r["_source_line"], r["_file_date"], json.dumps([r[n] for n in names], default=str))
        for r in rows
    )


def test_a_csv_record_whose_landing_file_is_gone_stays_quarantined_and_says_why(staged: Path, tmp_path: Path) -> None:
    project = mistaken(staged, tmp_path / "p", "too_tight")
    fix(project, "too_tight")
    gone = sorted((project / "landing" / "orders").glob("*.csv"))[0]
    gone.unlink()
    kept = replay(project, "--file", gone.name)
    assert kept["rows_in"] > 0
    assert (kept["replayed"], kept["still_failing"]) == (0, kept["rows_in"])
    assert "landing file is gone" in kept["files"][0]["note"]


@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_stream_records_replay_from_raw_keyed_by_their_position(tmp_path: Path, table_format: str) -> None:
    import httpx

    from serve_support import running_server
    from stream_support import EVENTS_CONTRACT, bronze_ids, event, stream_project

    project = stream_project(tmp_path / "p", "http", {"ack": "committed"}, table_format=table_format, max_seconds=0.2)
    body = [event(1), event(2, amount=-5), event(3, amount=-7), event(4, amount="many")]
    with running_server(project) as url:
        answer = httpx.post(f"{url}/v1/streams/events/records", json=body, timeout=30)
    assert answer.status_code == 200 and answer.json()["rejected"] == 3
    loosened = {**EVENTS_CONTRACT, "properties": {**EVENTS_CONTRACT["properties"]}}
    loosened["properties"]["amount"] = {"type": "integer", "minimum": -10}
    (project / "contracts" / "events.v2.json").write_text(json.dumps(loosened), encoding="utf-8")

    first = json.loads(cli(project, "quarantine", "replay", "events", "--json").stdout)
    assert (first["rows_in"], first["replayed"], first["still_failing"]) == (3, 2, 1)
    assert first["files"][0]["file"] is None and first["files"][0]["via"] == "raw"
    assert sorted(bronze_ids(project)) == ["e1", "e2", "e3"]
    with Lake.open(project) as lake:
        rows = lake.warehouse.load("bronze.events").scan().to_arrow().to_pylist()
        quarantined = {
            r["_source_position"] for r in lake.warehouse.load("quarantine.events").scan().to_arrow().to_pylist()
        }
    replayed = [r for r in rows if r["_replayed_from"] is not None]
    assert {r["_replayed_from"] for r in replayed} == {f"@{r['_source_position']}" for r in replayed}
    assert {r["_source_position"] for r in replayed} < quarantined
    assert {r["_contract_version"] for r in replayed} == {2}

    second = json.loads(cli(project, "quarantine", "replay", "events", "--json").stdout)
    assert (second["replayed"], second["already_replayed"], second["still_failing"]) == (0, 2, 1)
    assert sorted(bronze_ids(project)) == ["e1", "e2", "e3"]

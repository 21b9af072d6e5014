"""OpenLineage on by default: what the CLI leaves under `<warehouse>/_lakestack/lineage/` (real
child processes, a small Northwind), what read-only and refused commands leave (nothing), and a
run against a lineage server that is down, then back."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, small_northwind
from openlineage_support import validate_event


def _lineage(project: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted((project / "warehouse" / "_lakestack" / "lineage").glob("*.ndjson"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def _lineage_bytes(project: Path) -> dict[str, bytes]:
    folder = project / "warehouse" / "_lakestack" / "lineage"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*"))} if folder.exists() else {}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A small Northwind after `lakestack run` in a child process, and its run records."""
    project = small_northwind(tmp_path_factory.mktemp("lineage") / "nw", orders=300)
    out = cli(project, "run")
    assert out.returncode == 0, out.stderr
    runs = cli(project, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    return project, json.loads(runs.stdout)


def test_lakestack_run_leaves_a_valid_ndjson_file_with_every_job(ran: tuple[Path, list[dict[str, Any]]]) -> None:
    project, records = ran
    events = _lineage(project)
    for event in events:
        validate_event(event)
    (top,) = [r for r in records if r["parent_run_id"] is None]
    by_run: dict[str, list[str]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
    # what the run records hold, lineage holds: each job a START and then its end, nothing more
    assert top["job"] == "run" and len(by_run) >= 12
    assert all(types == ["START", "COMPLETE"] for types in by_run.values()), by_run
    names = {e["job"]["name"] for e in events}
    assert {"run", "ingest.orders", "promote.orders", "build.fact_sales", "check.silver.orders"} <= names
    root = next(e["run"]["runId"] for e in events if e["job"]["name"] == "run")
    for event in events:  # every job is linked to the run it belongs to (parent and root)
        if event["job"]["name"] == "run":
            assert "parent" not in event["run"]["facets"]
            continue
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == root and parent["job"]["name"] == "run", event["job"]["name"]
        assert parent["root"]["run"]["runId"] == root
        assert event["run"]["facets"]["lakestack_run"]["lakeRunId"] == top["lake_run_id"]


def test_every_input_and_output_carries_its_schema(ran: tuple[Path, list[dict[str, Any]]]) -> None:
    project, _ = ran
    ends = [e for e in _lineage(project) if e["eventType"] == "COMPLETE"]
    seen = 0
    for event in ends:
        for dataset in [*event["inputs"], *event["outputs"]]:
            fields = dataset["facets"].get("schema", {}).get("fields")
            assert fields, (event["job"]["name"], dataset["name"])
            seen += 1
    by_job = {e["job"]["name"]: e for e in ends}
    (landing,) = by_job["ingest.orders"]["inputs"]
    assert (landing["namespace"], landing["name"]) == (project.resolve().as_uri(), "landing/orders")
    assert "order_id" in [f["name"] for f in landing["facets"]["schema"]["fields"]]
    bronze = next(d for d in by_job["ingest.orders"]["outputs"] if d["name"] == "bronze.orders")
    assert "_run_id" in [f["name"] for f in bronze["facets"]["schema"]["fields"]]  # the table, lineage columns too
    fact_inputs = {d["name"]: d for d in by_job["build.fact_sales"]["inputs"]}
    assert "rate" in [f["name"] for f in fact_inputs["silver.fx_rates"]["facets"]["schema"]["fields"]]
    assert seen >= 25


def test_read_only_and_refused_commands_leave_lineage_as_it_was(ran: tuple[Path, list[dict[str, Any]]]) -> None:
    project, _ = ran
    before = _lineage_bytes(project)
    assert before
    for args in (
        ("query", "SELECT count(*) AS n FROM gold.fact_sales"),
        ("show", "gold.fact_sales"),
        ("tables",),
        ("status",),
        ("runs",),
    ):
        out = cli(project, *args)
        assert out.returncode == 0, (args, out.stderr)
    for args in (("build", "nope"), ("ingest", "nope"), ("query", "SELECT * FROM read_csv('/etc/passwd')")):
        out = cli(project, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
    assert _lineage_bytes(project) == before


def test_a_fresh_project_looked_at_gets_no_lineage_folder(tmp_path: Path) -> None:
    project = small_northwind(tmp_path / "nw", orders=50)
    for args in (("tables",), ("status",), ("query", "SELECT 1 AS one")):
        assert cli(project, *args).returncode == 0, args
    # a read is audited (`_lakestack.audit`), but nothing writes lineage for it
    assert not (project / "warehouse" / "_lakestack" / "lineage").exists()


def test_a_cli_command_closes_its_lake_before_it_returns(
    project: Path, land: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: when `main()` returns, every event is written and no lineage thread is left
    (without the close, the builder thread lives on for its idle time)."""
    from lakestack.cli.app import main

    land("orders", "orders_20260101.csv", "order_id,qty,price,currency,order_ts,email\n")
    deadline = time.monotonic() + 30
    while any(t.name == "openlineage-events" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)  # threads of lakes other tests left open end after their idle time
    monkeypatch.setattr(sys, "argv", ["lakestack", "-p", str(project), "ingest", "orders"])
    with pytest.raises(SystemExit) as exited:
        main()
    capsys.readouterr()
    assert exited.value.code == 0
    assert not [t for t in threading.enumerate() if t.name == "openlineage-events"]
    events = _lineage(project)
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "ingest"),
        ("START", "ingest.orders"),
        ("COMPLETE", "ingest.orders"),
        ("COMPLETE", "ingest"),
    ]


def test_transport_none_writes_no_lineage(tmp_path: Path) -> None:
    from lakestack import Lake
    from lakestack.pipeline.openlineage import OpenLineageListener

    project = small_northwind(tmp_path / "nw", orders=50)
    with Lake.open(project) as lake:
        assert [type(x) for x in lake.events.listeners].count(OpenLineageListener) == 1
    config = project / "lakestack.yaml"
    text = config.read_text(encoding="utf-8")
    assert "warehouse: ./warehouse\n" in text
    config.write_text(
        text.replace("warehouse: ./warehouse\n", "warehouse: ./warehouse\n    openlineage: {transport: none}\n")
    )
    with Lake.open(project) as lake:
        assert not any(isinstance(x, OpenLineageListener) for x in lake.events.listeners)
        lake.ingest(["fx_rates"])
    assert not (project / "warehouse" / "_lakestack" / "lineage").exists()

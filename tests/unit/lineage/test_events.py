"""OpenLineage RunEvents built from job runs: every event type and facet, valid against the spec files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lakestack.lineage.events import FACETS, EventContext, Root, model_lineage, run_event
from lakestack.pipeline.events import CheckOutcome, DatasetIO, JobRun, RunEvents, RunListener, uuid7
from openlineage_support import SPEC_DIR, facet_keys, validate_event

CTX = EventContext(
    producer="https://github.com/lakestack/lakestack/tree/v0.1.0",
    job_namespace="shop.dev",
    warehouse="file:///lake/warehouse",
    project_root=Path("/lake"),
    engine="duckdb",
    engine_version="1.1.0",
    lakestack_version="0.1.0",
)
SQL = """
SELECT o.customer_id, c.country, sum(o.qty * o.price) AS revenue
FROM silver.orders AS o JOIN silver.customers AS c ON o.customer_id = c.customer_id
WHERE o.status <> 'cancelled'
GROUP BY o.customer_id, c.country
"""


def _build_run(**changes: Any) -> JobRun:
    parent = uuid7()
    run = JobRun(
        uuid7(),
        "build.revenue",
        "build",
        parent_run_id=parent,
        parent_job="run",
        sql=SQL,
        source_file="models/gold/revenue.sql",
        lake_run_id="20261202T000000Z-abcd",
    )
    run.datasets += [
        DatasetIO(
            "silver.orders",
            "input",
            snapshot_id=11,
            rows=1000,
            bytes=40_000,
            columns=(("customer_id", "string"), ("qty", "long"), ("price", "decimal(8,2)"), ("status", "string")),
        ),
        DatasetIO(
            "silver.customers", "input", snapshot_id=12, columns=(("customer_id", "string"), ("country", "string"))
        ),
        DatasetIO(
            "gold.revenue",
            "output",
            snapshot_id=99,
            rows=10,
            bytes=2_000,
            columns=(("customer_id", "string"), ("country", "string"), ("revenue", "decimal(38,2)")),
        ),
    ]
    run.checks += [
        CheckOutcome("gold.revenue", "not_null(country)", "not_null", False, "fail", ("country",), 3, "3 rows"),
        CheckOutcome("silver.orders", "row_count", "row_count", True, "warn"),
    ]
    run.stages["execute"] = 0.25
    for key, value in changes.items():
        setattr(run, key, value)
    return run


def _all_events() -> list[dict[str, Any]]:
    build = _build_run()
    ingest = JobRun(uuid7(), "ingest.orders", "ingest")
    ingest.datasets += [
        DatasetIO("landing.orders", "input", rows=1000, bytes=32_000, source="landing/orders"),
        DatasetIO("bronze.orders", "output", snapshot_id=5, rows=990, bytes=30_000),
        DatasetIO("quarantine.orders", "output", snapshot_id=6, rows=10, quarantined=10),
    ]
    stream = JobRun(uuid7(), "stream.clicks", "stream", progress={"records": 5000, "lag": 3, "records_per_s": 812.5})
    stream.datasets += [
        DatasetIO("kafka.clicks", "input", rows=5000, source="kafka://broker:9092/clicks"),
        DatasetIO("nats.clicks", "input", source="nats"),
        DatasetIO("bronze.clicks", "output", rows=4990, quarantined=10),
    ]
    failed = _build_run(status="FAIL", error="DuckDB: division by zero\nTraceback (most recent call last): ...")
    aborted = JobRun(uuid7(), "stream.clicks", "stream", status="ABORT", error="KeyboardInterrupt")
    root = Root(build.parent_run_id or "", "run")
    return [
        run_event("START", build, CTX, root=root),
        run_event("COMPLETE", build, CTX, root=root, lineage=model_lineage(build)),
        run_event("FAIL", failed, CTX, root=root, lineage=model_lineage(failed)),
        run_event("START", ingest, CTX),
        run_event("COMPLETE", ingest, CTX),
        run_event("RUNNING", stream, CTX),
        run_event("ABORT", aborted, CTX),
    ]


def test_every_event_validates_against_the_spec_files() -> None:
    events = _all_events()
    for event in events:
        validate_event(event)
    assert {e["eventType"] for e in events} == {"START", "RUNNING", "COMPLETE", "FAIL", "ABORT"}


def test_every_facet_lakestack_declares_is_emitted_and_is_in_the_spec() -> None:
    emitted: set[str] = set()
    for event in _all_events():
        emitted |= set(event["run"]["facets"]) | set(event["job"]["facets"])
        for dataset in [*event["inputs"], *event["outputs"]]:
            for group in ("facets", "inputFacets", "outputFacets"):
                emitted |= set(dataset.get(group, {}))
    assert set(FACETS) <= emitted
    assert set(FACETS) <= facet_keys()


def test_facet_versions_name_the_vendored_spec_files() -> None:
    for key, (version, definition) in FACETS.items():
        schema = json.loads((SPEC_DIR / "facets" / f"{definition}.json").read_text())
        assert schema["$id"] == f"https://openlineage.io/spec/facets/{version}/{definition}.json", key
        assert key in schema["properties"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("run", "runId"), "not-a-uuid"),
        (("eventType",), "DONE"),
        (("eventTime",), "yesterday"),
        (("run", "facets", "parent", "run"), {}),
        (("job", "facets", "jobType", "integration"), None),
    ],
)
def test_the_validator_catches_a_broken_event(path: tuple[str, ...], value: Any) -> None:
    """A negative control: the checks above would fail on a wrong event."""
    event = copy.deepcopy(_all_events()[0])
    target = event
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_event(event)


def test_a_facet_in_the_wrong_place_is_caught() -> None:
    event = _all_events()[1]
    output = event["outputs"][0]
    output["outputFacets"]["dataQualityAssertions"] = event["inputs"][0]["inputFacets"]["dataQualityAssertions"]
    with pytest.raises(AssertionError, match="extends InputDatasetFacet"):
        validate_event(event)


def test_a_build_event_carries_job_facets_and_dataset_facets() -> None:
    event = _all_events()[1]
    job = event["job"]
    assert job["namespace"] == "shop.dev" and job["name"] == "build.revenue"
    assert job["facets"]["jobType"]["processingType"] == "BATCH"
    assert job["facets"]["jobType"]["jobType"] == "BUILD"
    assert job["facets"]["sql"]["query"] == SQL
    assert job["facets"]["sourceCodeLocation"]["url"] == "file:///lake/models/gold/revenue.sql"
    assert job["facets"]["sourceCodeLocation"]["path"] == "models/gold/revenue.sql"
    run = event["run"]["facets"]
    assert run["parent"]["run"]["runId"] == run["parent"]["root"]["run"]["runId"]
    assert run["parent"]["job"] == {"namespace": "shop.dev", "name": "run"}
    assert run["lakestack_run"]["lakeRunId"] == "20261202T000000Z-abcd"
    assert "errorMessage" not in run
    inputs = {d["name"]: d for d in event["inputs"]}
    assert set(inputs) == {"silver.orders", "silver.customers", "gold.revenue"}  # a checked table is read too
    orders = inputs["silver.orders"]
    assert orders["namespace"] == "file:///lake/warehouse"
    assert orders["facets"]["version"]["datasetVersion"] == "11"
    assert orders["facets"]["dataSource"]["uri"] == "file:///lake/warehouse"
    assert [f["name"] for f in orders["facets"]["schema"]["fields"]] == ["customer_id", "qty", "price", "status"]
    assert orders["inputFacets"]["inputStatistics"] == {**orders["inputFacets"]["inputStatistics"], "rowCount": 1000}
    assert orders["inputFacets"]["dataQualityAssertions"]["assertions"] == [
        {"assertion": "row_count", "success": True, "name": "row_count", "severity": "warn"}
    ]
    checked = inputs["gold.revenue"]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert checked == [
        {
            "assertion": "not_null",
            "success": False,
            "name": "not_null(country)",
            "severity": "error",
            "column": "country",
            "actual": "3",
            "description": "3 rows",
        }
    ]
    (output,) = event["outputs"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 10
    assert output["outputFacets"]["outputStatistics"]["size"] == 2000
    assert output["facets"]["version"]["datasetVersion"] == "99"
    lineage = output["facets"]["columnLineage"]
    revenue = {(f["name"], f["field"]): f["transformations"] for f in lineage["fields"]["revenue"]["inputFields"]}
    assert revenue == {
        ("silver.orders", "price"): [{"type": "DIRECT", "subtype": "AGGREGATION", "masking": False}],
        ("silver.orders", "qty"): [{"type": "DIRECT", "subtype": "AGGREGATION", "masking": False}],
    }
    country = lineage["fields"]["country"]["inputFields"]
    assert [(f["name"], f["field"]) for f in country] == [("silver.customers", "country")]
    indirect = {(f["name"], f["field"]): [t["subtype"] for t in f["transformations"]] for f in lineage["dataset"]}
    assert indirect[("silver.orders", "status")] == ["FILTER"]
    assert indirect[("silver.customers", "customer_id")] == ["JOIN"]
    assert indirect[("silver.orders", "customer_id")] == ["GROUP_BY", "JOIN"]


def test_a_failed_run_carries_its_error_and_a_stream_is_streaming() -> None:
    events = _all_events()
    failed = events[2]
    assert failed["eventType"] == "FAIL"
    assert failed["run"]["facets"]["errorMessage"]["message"] == "DuckDB: division by zero"
    assert failed["run"]["facets"]["errorMessage"]["programmingLanguage"] == "PYTHON"
    assert failed["run"]["facets"]["errorMessage"]["stackTrace"].startswith("Traceback")
    running = events[5]
    assert running["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
    assert running["run"]["facets"]["lakestack_run"]["progress"] == {"records": 5000, "lag": 3, "records_per_s": 812.5}
    where = [(d["namespace"], d["name"]) for d in running["inputs"]]
    assert where == [("kafka://broker:9092", "clicks"), ("nats://shop.dev", "nats.clicks")]
    assert running["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == 5000
    assert events[6]["run"]["facets"]["errorMessage"]["message"] == "KeyboardInterrupt"


def test_an_ingest_reads_its_landing_folder_and_writes_bronze_and_quarantine() -> None:
    event = _all_events()[4]
    (landing,) = event["inputs"]
    assert (landing["namespace"], landing["name"]) == ("file:///lake", "landing/orders")
    assert landing["facets"]["dataSource"]["uri"] == "file:///lake"
    stats = landing["inputFacets"]["inputStatistics"]
    assert (stats["rowCount"], stats["size"]) == (1000, 32_000)
    outputs = {d["name"]: d for d in event["outputs"]}
    assert set(outputs) == {"bronze.orders", "quarantine.orders"}
    assert outputs["bronze.orders"]["outputFacets"]["outputStatistics"] == {
        **outputs["bronze.orders"]["outputFacets"]["outputStatistics"],
        "rowCount": 990,
        "size": 30_000,
    }
    assert outputs["quarantine.orders"]["facets"]["lakestack_rows"]["quarantined"] == 10


def test_a_dataset_reported_twice_is_one_dataset_with_what_both_said() -> None:
    run = JobRun(uuid7(), "promote.orders", "promote")
    run.datasets += [DatasetIO("bronze.orders", "input", snapshot_id=3), DatasetIO("bronze.orders", "input", rows=50)]
    (orders,) = run_event("COMPLETE", run, CTX)["inputs"]
    assert orders["facets"]["version"]["datasetVersion"] == "3"
    assert orders["inputFacets"]["inputStatistics"]["rowCount"] == 50


class _Collect(RunListener):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_start(self, job: JobRun) -> None:
        self.events.append(run_event("START", job, CTX))

    def on_complete(self, job: JobRun) -> None:
        self.events.append(run_event("COMPLETE", job, CTX))


def test_events_built_from_the_run_event_seam_validate() -> None:
    collect = _Collect()
    events = RunEvents([collect])
    with events.job("run", "run") as parent, events.job("promote", "promote.orders", parent=parent.run) as job:
        job.dataset(DatasetIO("bronze.orders", "input", snapshot_id=1))
        job.dataset(DatasetIO("silver.orders", "output", snapshot_id=2, rows=10))
    assert [e["eventType"] for e in collect.events] == ["START", "START", "COMPLETE", "COMPLETE"]
    for event in collect.events:
        validate_event(event)
    promote = collect.events[2]
    assert promote["run"]["facets"]["parent"]["run"]["runId"] == collect.events[0]["run"]["runId"]
    assert [d["name"] for d in promote["inputs"]] == ["bronze.orders"]
    assert [d["name"] for d in promote["outputs"]] == ["silver.orders"]

"""OpenLineage RunEvents built from a job run: plain JSON-able dicts, no I/O.

The shapes follow the OpenLineage 2-0-2 spec and the facet versions in :data:`FACETS` (the test
suite validates every event against the official schema files). A job's run is told here through
:class:`RunView` — the fields of `lakestack.pipeline.events.JobRun` this module reads — so the
domain does not import the pipeline.

Datasets: namespace = the warehouse location (`file:///…/warehouse`, `s3://bucket/prefix`), name
= `layer.table`. An input read from outside the warehouse (a `source`: a landing folder, a topic, a
URL) is named by where it is instead, so Bronze has an upstream in a lineage graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from lakestack.lineage.columns import ColumnLineage, Transformation, column_lineage

EventType = Literal["START", "RUNNING", "COMPLETE", "FAIL", "ABORT"]
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
SCHEMA_URL = f"{SPEC}#/$defs/RunEvent"

# facet key → (spec version, definition name): the files in the OpenLineage spec these facets follow
FACETS: dict[str, tuple[str, str]] = {
    "parent": ("1-2-0", "ParentRunFacet"),
    "errorMessage": ("1-0-1", "ErrorMessageRunFacet"),
    "processing_engine": ("1-1-1", "ProcessingEngineRunFacet"),
    "nominalTime": ("1-0-1", "NominalTimeRunFacet"),
    "jobType": ("2-0-4", "JobTypeJobFacet"),
    "sql": ("1-1-0", "SQLJobFacet"),
    "sourceCodeLocation": ("1-1-0", "SourceCodeLocationJobFacet"),
    "schema": ("1-2-0", "SchemaDatasetFacet"),
    "dataSource": ("1-0-1", "DatasourceDatasetFacet"),
    "version": ("1-0-1", "DatasetVersionDatasetFacet"),
    "columnLineage": ("1-2-0", "ColumnLineageDatasetFacet"),
    "inputStatistics": ("1-0-0", "InputStatisticsInputDatasetFacet"),
    "outputStatistics": ("1-0-2", "OutputStatisticsOutputDatasetFacet"),
    "dataQualityAssertions": ("1-1-0", "DataQualityAssertionsDatasetFacet"),
}
STREAMING_JOBS = frozenset({"stream"})


class DatasetView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def snapshot_id(self) -> int | None: ...
    @property
    def rows(self) -> int | None: ...
    @property
    def bytes(self) -> int | None: ...
    @property
    def quarantined(self) -> int | None: ...
    @property
    def dropped(self) -> int | None: ...
    @property
    def columns(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def source(self) -> str | None: ...


class CheckView(Protocol):
    @property
    def dataset(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def passed(self) -> bool: ...
    @property
    def severity(self) -> str: ...
    @property
    def columns(self) -> tuple[str, ...]: ...
    @property
    def failing_rows(self) -> int | None: ...
    @property
    def message(self) -> str | None: ...


class RunView(Protocol):
    @property
    def run_id(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def job_type(self) -> str: ...
    @property
    def parent_run_id(self) -> str | None: ...
    @property
    def parent_job(self) -> str | None: ...
    @property
    def lake_run_id(self) -> str | None: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def sql(self) -> str | None: ...
    @property
    def source_file(self) -> str | None: ...
    @property
    def datasets(self) -> Sequence[DatasetView]: ...
    @property
    def checks(self) -> Sequence[CheckView]: ...
    @property
    def stages(self) -> Mapping[str, float]: ...
    @property
    def progress(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class EventContext:
    """What every event of one lake shares: who produced it and where its jobs and datasets live."""

    producer: str  # a URL naming lakestack and its version
    job_namespace: str  # e.g. "northwind.dev"
    warehouse: str  # the dataset namespace: file:///…/warehouse or s3://bucket/prefix
    project_root: Path
    engine: str = "duckdb"
    engine_version: str = "unknown"
    lakestack_version: str = "unknown"
    dialect: str = "duckdb"


@dataclass(frozen=True, slots=True)
class Root:
    """The outermost run of a job tree (`lakestack run`), for the parent facet's `root`."""

    run_id: str
    job: str


def facet(key: str, producer: str, **fields: Any) -> dict[str, Any]:
    version, definition = FACETS[key]
    url = f"https://openlineage.io/spec/facets/{version}/{definition}.json#/$defs/{definition}"
    return {"_producer": producer, "_schemaURL": url, **fields}


def run_event(
    event_type: EventType,
    run: RunView,
    ctx: EventContext,
    *,
    root: Root | None = None,
    at: datetime | None = None,
    lineage: ColumnLineage | None = None,
) -> dict[str, Any]:
    """One RunEvent for `run` as it is now. `lineage` (a Gold model's) goes on its outputs."""
    inputs, outputs = datasets(run, ctx, lineage)
    return {
        "eventType": event_type,
        "eventTime": _time(at or datetime.now(UTC)),
        "producer": ctx.producer,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run.run_id, "facets": run_facets(event_type, run, ctx, root)},
        "job": {"namespace": ctx.job_namespace, "name": run.job, "facets": job_facets(run, ctx)},
        "inputs": inputs,
        "outputs": outputs,
    }


def run_facets(event_type: EventType, run: RunView, ctx: EventContext, root: Root | None) -> dict[str, Any]:
    p = ctx.producer
    facets: dict[str, Any] = {
        "processing_engine": facet(
            "processing_engine",
            p,
            name=ctx.engine,
            version=ctx.engine_version,
            openlineageAdapterVersion=ctx.lakestack_version,
        ),
        "nominalTime": facet("nominalTime", p, nominalStartTime=_time(run.started_at)),
    }
    if run.ended_at is not None:
        facets["nominalTime"]["nominalEndTime"] = _time(run.ended_at)
    if run.parent_run_id is not None and run.parent_job is not None:
        parent: dict[str, Any] = {
            "run": {"runId": run.parent_run_id},
            "job": {"namespace": ctx.job_namespace, "name": run.parent_job},
        }
        if root is not None:
            parent["root"] = {"run": {"runId": root.run_id}, "job": {"namespace": ctx.job_namespace, "name": root.job}}
        facets["parent"] = facet("parent", p, **parent)
    if event_type in ("FAIL", "ABORT") and run.error:
        message, _, trace = run.error.partition("\n")
        error = facet("errorMessage", p, message=message, programmingLanguage="PYTHON")
        if trace:
            error["stackTrace"] = trace
        facets["errorMessage"] = error
    facets["lakestack_run"] = _lakestack_facet(run, p)
    return facets


def _lakestack_facet(run: RunView, producer: str) -> dict[str, Any]:
    """lakestack's own run facet: the row-level run id, stage timings and the stream's running figures."""
    body: dict[str, Any] = {"_producer": producer, "_schemaURL": f"{producer}#/$defs/LakestackRunFacet"}
    if run.lake_run_id:
        body["lakeRunId"] = run.lake_run_id
    if run.stages:
        body["stages"] = {name: round(seconds, 6) for name, seconds in run.stages.items()}
    if run.progress:
        body["progress"] = {k: v for k, v in run.progress.items() if isinstance(v, str | int | float | bool)}
    return body


def job_facets(run: RunView, ctx: EventContext) -> dict[str, Any]:
    p = ctx.producer
    facets: dict[str, Any] = {
        "jobType": facet(
            "jobType",
            p,
            processingType="STREAMING" if run.job_type in STREAMING_JOBS else "BATCH",
            integration="LAKESTACK",
            jobType=run.job_type.upper(),
        )
    }
    if run.sql:
        facets["sql"] = facet("sql", p, query=run.sql, dialect=ctx.dialect)
    if run.source_file:
        path = Path(run.source_file)
        absolute = path if path.is_absolute() else ctx.project_root / path
        relative = absolute.relative_to(ctx.project_root) if absolute.is_relative_to(ctx.project_root) else path
        facets["sourceCodeLocation"] = facet(
            "sourceCodeLocation", p, type="file", url=absolute.as_uri(), path=relative.as_posix()
        )
    return facets


def datasets(
    run: RunView, ctx: EventContext, lineage: ColumnLineage | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The job's inputs and outputs, each once (later reports of one dataset fill in what was unknown)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for io in run.datasets:
        entry = merged.setdefault((io.role, io.name), {"columns": ()})
        for key in ("snapshot_id", "rows", "bytes", "quarantined", "dropped", "source"):
            value = getattr(io, key)
            if value is not None:
                entry[key] = value
        if io.columns:
            entry["columns"] = io.columns
    checks: dict[str, list[CheckView]] = {}
    for check in run.checks:
        checks.setdefault(check.dataset, []).append(check)
        merged.setdefault(("input", check.dataset), {"columns": ()})  # a checked table was read
    inputs = [
        _input(name, entry, checks.get(name, []), ctx) for (role, name), entry in merged.items() if role == "input"
    ]
    outputs = [_output(name, entry, lineage, ctx) for (role, name), entry in merged.items() if role == "output"]
    return inputs, outputs


def _dataset(name: str, entry: Mapping[str, Any], ctx: EventContext) -> dict[str, Any]:
    p = ctx.producer
    if entry.get("source"):  # read from outside the warehouse: a landing folder, a topic, a URL
        namespace, name = _outside(entry["source"], name, ctx)
    else:
        namespace = ctx.warehouse
    facets: dict[str, Any] = {"dataSource": facet("dataSource", p, name=namespace, uri=namespace)}
    if entry["columns"]:
        fields = [{"name": n, "type": t, "ordinal_position": i} for i, (n, t) in enumerate(entry["columns"], 1)]
        facets["schema"] = facet("schema", p, fields=fields)
    if entry.get("snapshot_id") is not None:
        facets["version"] = facet("version", p, datasetVersion=str(entry["snapshot_id"]))
    return {"namespace": namespace, "name": name, "facets": facets}


def _input(name: str, entry: Mapping[str, Any], checks: Sequence[CheckView], ctx: EventContext) -> dict[str, Any]:
    dataset = _dataset(name, entry, ctx)
    input_facets: dict[str, Any] = {}
    stats = _statistics(entry)
    if stats:
        input_facets["inputStatistics"] = facet("inputStatistics", ctx.producer, **stats)
    if checks:
        input_facets["dataQualityAssertions"] = facet(
            "dataQualityAssertions", ctx.producer, assertions=[assertion(check) for check in checks]
        )
    if input_facets:
        dataset["inputFacets"] = input_facets
    return dataset


def _output(name: str, entry: Mapping[str, Any], lineage: ColumnLineage | None, ctx: EventContext) -> dict[str, Any]:
    dataset = _dataset(name, entry, ctx)
    if lineage is not None and (lineage.fields or lineage.dataset):
        dataset["facets"]["columnLineage"] = column_lineage_facet(lineage, ctx)
    stats = _statistics(entry)
    if stats:
        dataset["outputFacets"] = {"outputStatistics": facet("outputStatistics", ctx.producer, **stats)}
    counts = {k: entry[k] for k in ("quarantined", "dropped") if entry.get(k) is not None}
    if counts:
        dataset["facets"]["lakestack_rows"] = {
            "_producer": ctx.producer,
            "_schemaURL": f"{ctx.producer}#/$defs/LakestackRowsDatasetFacet",
            **counts,
        }
    return dataset


def _statistics(entry: Mapping[str, Any]) -> dict[str, int]:
    stats = {"rowCount": entry.get("rows"), "size": entry.get("bytes")}
    return {k: int(v) for k, v in stats.items() if v is not None}


def _outside(source: str, name: str, ctx: EventContext) -> tuple[str, str]:
    """(namespace, name) of what a job read outside the warehouse: a URL's scheme and host, and its
    path; a folder in the project (`landing/orders`); else the kind of source (`kafka`) under the
    job namespace, keeping the dataset's own name."""
    parts = urlsplit(source)
    if parts.scheme == "file":  # a landing folder: in the project, named by its path in it
        path = Path(unquote(parts.path))
        if path.is_relative_to(ctx.project_root):
            return ctx.project_root.as_uri(), path.relative_to(ctx.project_root).as_posix()
        return "file://", path.as_posix()
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or name
    if "/" in source or source.startswith("."):
        return ctx.project_root.as_uri(), source
    return f"{source}://{ctx.job_namespace}", name


def assertion(check: CheckView) -> dict[str, Any]:
    """A check as a data-quality assertion: `success` is its result, whatever its severity."""
    body: dict[str, Any] = {
        "assertion": check.type,
        "success": check.passed,
        "name": check.name,
        "severity": "error" if check.severity == "fail" else check.severity,
    }
    if len(check.columns) == 1:
        body["column"] = check.columns[0]
    if check.failing_rows is not None:
        body["actual"] = str(check.failing_rows)
    if check.message:
        body["description"] = check.message
    return body


def column_lineage_facet(lineage: ColumnLineage, ctx: EventContext) -> dict[str, Any]:
    fields = {
        column: {"inputFields": [_input_field(up, kinds, ctx) for up, kinds in inputs.items()]}
        for column, inputs in lineage.fields.items()
    }
    dataset = [_input_field(up, kinds, ctx) for up, kinds in lineage.dataset.items()]
    return facet("columnLineage", ctx.producer, fields=fields, dataset=dataset)


def _input_field(upstream: tuple[str, str], kinds: Sequence[Transformation], ctx: EventContext) -> dict[str, Any]:
    return {
        "namespace": ctx.warehouse,
        "name": upstream[0],
        "field": upstream[1],
        "transformations": [{"type": k.type, "subtype": k.subtype, "masking": k.masking} for k in kinds],
    }


def model_lineage(run: RunView, dialect: str = "duckdb") -> ColumnLineage | None:
    """Column lineage of a Gold model's run: its SQL over the schemas of the inputs it reported."""
    if not run.sql:
        return None
    upstream = {io.name: [n for n, _ in io.columns] for io in run.datasets if io.role == "input" and io.columns}
    outputs = [io for io in run.datasets if io.role == "output" and io.columns]
    columns = [n for n, _ in outputs[0].columns] if outputs else []
    return column_lineage(run.sql, upstream, columns=columns, dialect=dialect)


def _time(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""Run records (`_lakestack.runs`, pipeline/records.py) as JSON for readers: a run's summary and
its page (jobs, datasets read and written, checks, stage timings). Datasets and checks of datasets
the reader's role may not read are left out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lakestack.errors import UsageError


class RunNotFound(UsageError):
    """No run record with that id (or prefix)."""


def run_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A `_lakestack.runs` row as the API's RunSummary."""
    from lakestack.pipeline.datasets import iso

    return {
        "run_id": row["run_id"],
        "parent_run_id": row["parent_run_id"],
        "lake_run_id": row["lake_run_id"],
        "job": row["job"],
        "job_type": row["job_type"],
        "status": row["status"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "duration_s": row["duration_s"],
        "rows_read": row["rows_read"],
        "rows_written": row["rows_written"],
        "rows_quarantined": row["rows_quarantined"],
        "rows_dropped": row["rows_dropped"],
        "checks_total": row["checks_total"],
        "checks_failed": row["checks_failed"],
        "error": row["error"],
    }


def list_run_summaries(
    lake: Any, *, status: str | None, job: str | None, since: datetime | None, limit: int | None
) -> list[dict[str, Any]]:
    """Top-level runs (with `job`: the jobs too, as `lakestack runs --job`), newest first."""
    from lakestack.pipeline.records import list_runs

    rows = list_runs(
        lake.warehouse,
        status=status,
        job=job,
        since=since,
        limit=limit,
        top_only=not job,
        inflight=lake.recorder.inflight,
    )
    return [run_summary(r) for r in rows]


def run_detail(lake: Any, ref: str, role: str | None) -> dict[str, Any]:
    """The run `ref` names (uuid, lakestack run id, or a unique prefix) with its jobs, datasets,
    checks and stages."""
    from lakestack.pipeline.records import find_run

    try:
        run, children = find_run(lake.warehouse, ref)
    except UsageError as exc:
        if "ambiguous" in str(exc):
            raise
        raise RunNotFound(f"no run '{ref}' (see GET /v1/runs)") from None
    jobs = [run, *children]
    out = run_summary(run)
    out["children"] = [{**run_summary(c), "stages": _stages([c])} for c in children]
    out["datasets"] = [d for j in jobs for d in _datasets(lake, j, role)]
    out["checks"] = _checks(lake, run, jobs, role)
    out["stages"] = _stages(jobs)
    out["source_file"] = run["source_file"]
    return out


def _datasets(lake: Any, job: dict[str, Any], role: str | None) -> list[dict[str, Any]]:
    out = []
    for d in job["datasets"] or []:
        if not _may_read(lake, role, d["name"]):
            continue
        output = d["role"] == "output"
        snapshot = str(d["snapshot_id"]) if d["snapshot_id"] is not None else None
        out.append(
            {
                "dataset": d["name"],
                "job": job["job"],
                "direction": "output" if output else "input",
                "rows_read": None if output else d["rows"],
                "rows_written": d["rows"] if output else None,
                "rows_quarantined": d["quarantined"],
                "rows_dropped": d["dropped"],
                "snapshot_in": None if output else snapshot,
                "snapshot_out": snapshot if output else None,
            }
        )
    return out


def _checks(lake: Any, run: dict[str, Any], jobs: list[dict[str, Any]], role: str | None) -> list[dict[str, Any]]:
    """The run's recorded check results (`_lakestack.check_results`); else what its records hold."""
    from lakestack.pipeline.checks import run_checks
    from lakestack.pipeline.datasets import iso

    named = {c["dataset"] for j in jobs for c in j["checks"] or []}
    if run["lake_run_id"]:
        recorded = [c for c in run_checks(lake, role, run["lake_run_id"]) if c["dataset"] in named]
        if recorded:
            return recorded
    out = []
    for job in jobs:
        for c in job["checks"] or []:
            if not _may_read(lake, role, c["dataset"]):
                continue
            status = "pass" if c["passed"] else ("fail" if c["severity"] == "fail" else "warn")
            out.append(
                {
                    "name": c["name"],
                    "dataset": c["dataset"],
                    "status": status,
                    "severity": c["severity"],
                    "blocking": c["severity"] == "fail",
                    "run_id": run["lake_run_id"] or run["run_id"],
                    "at": iso(job["ended_at"]),
                    "failing_rows": c["failing_rows"],
                    "type": c["type"],
                    "message": c["message"],
                }
            )
    return out


def _stages(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stage timings; a run's jobs' stages are named `job: stage`."""
    single = len(jobs) == 1
    return [
        {"name": s["name"] if single else f"{j['job']}: {s['name']}", "duration_s": s["seconds"]}
        for j in jobs
        for s in j["stages"] or []
    ]


def _may_read(lake: Any, role: str | None, dataset: str) -> bool:
    try:
        return bool(lake.may_read(role, dataset))
    except UsageError:
        return False

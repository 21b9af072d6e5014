"""Run records: `_lakestack.runs`, one row per job, written by a run listener.

The rows of a top-level run (a `lakestack run`, or a standalone ingest/promote/build/check) are
buffered until it ends and appended in one Iceberg commit, so a run of fifty jobs costs one commit,
not fifty. A failure to record is logged and counted; it never fails the job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from lakestack.pipeline.events import JobRun, RunEvents, RunListener
from lakestack.pipeline.inflight import InFlight

log = logging.getLogger(__name__)

RUNS = "_lakestack.runs"
BLOCKED = "BLOCKED"  # a record's status for a job a quality gate stopped (FAIL for listeners)


def runs_schema() -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    dataset = pa.struct(
        [
            ("name", pa.string()),
            ("role", pa.string()),
            ("snapshot_id", pa.int64()),
            ("rows", pa.int64()),
            ("quarantined", pa.int64()),
            ("dropped", pa.int64()),
        ]
    )
    check = pa.struct(
        [
            ("dataset", pa.string()),
            ("name", pa.string()),
            ("type", pa.string()),
            ("severity", pa.string()),
            ("passed", pa.bool_()),
            ("failing_rows", pa.int64()),
            ("message", pa.string()),
        ]
    )
    stage = pa.struct([("name", pa.string()), ("seconds", pa.float64())])
    return pa.schema(
        [
            ("run_id", pa.string()),
            ("lake_run_id", pa.string()),
            ("parent_run_id", pa.string()),
            ("job", pa.string()),
            ("job_type", pa.string()),
            ("status", pa.string()),
            ("started_at", ts),
            ("ended_at", ts),
            ("duration_s", pa.float64()),
            ("rows_read", pa.int64()),
            ("rows_written", pa.int64()),
            ("rows_quarantined", pa.int64()),
            ("rows_dropped", pa.int64()),
            ("datasets", pa.list_(dataset)),
            ("checks_total", pa.int64()),
            ("checks_failed", pa.int64()),
            ("checks", pa.list_(check)),
            ("stages", pa.list_(stage)),
            ("progress", pa.string()),
            ("source_file", pa.string()),
            ("error", pa.string()),
            ("listener_errors", pa.int64()),
            ("listener_drops", pa.int64()),
        ]
    )


def record_status(job: JobRun) -> str:
    return BLOCKED if job.blocked and job.status == "FAIL" else job.status


def job_row(job: JobRun) -> dict[str, Any]:
    """A job as a `_lakestack.runs` row. Rows written count outputs other than quarantine tables;
    quarantined and dropped rows are counted where a dataset reports them."""
    outputs = [d for d in job.datasets if d.role == "output" and not d.name.startswith("quarantine.")]
    return {
        "run_id": job.run_id,
        "lake_run_id": job.lake_run_id,
        "parent_run_id": job.parent_run_id,
        "job": job.job,
        "job_type": job.job_type,
        "status": record_status(job),
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "duration_s": job.duration_s,
        "rows_read": sum(d.rows or 0 for d in job.datasets if d.role == "input"),
        "rows_written": sum(d.rows or 0 for d in outputs),
        "rows_quarantined": sum(d.quarantined or 0 for d in job.datasets),
        "rows_dropped": sum(d.dropped or 0 for d in job.datasets),
        "datasets": [
            {
                "name": d.name,
                "role": d.role,
                "snapshot_id": d.snapshot_id,
                "rows": d.rows,
                "quarantined": d.quarantined,
                "dropped": d.dropped,
            }
            for d in job.datasets
        ],
        "checks_total": len(job.checks),
        "checks_failed": sum(1 for c in job.checks if not c.passed),
        "checks": [
            {
                "dataset": c.dataset,
                "name": c.name,
                "type": c.type,
                "severity": c.severity,
                "passed": c.passed,
                "failing_rows": c.failing_rows,
                "message": c.message,
            }
            for c in job.checks
        ],
        "stages": [{"name": k, "seconds": v} for k, v in job.stages.items()],
        "progress": json.dumps(job.progress, default=str, sort_keys=True) if job.progress else None,
        "source_file": job.source_file,
        "error": job.error,
        "listener_errors": 0,
        "listener_drops": 0,
    }


def _refused(jobs: list[JobRun]) -> bool:
    """A command refused before it wrote anything (a bad project file or model, a hostile model SQL,
    an unknown source, a copied project's catalog: exit 2, no output) is an error message, not a run:
    recording it would change a lake the command was refused on. (Inside a `run` that wrote before
    the refusal, the run and the refused job are recorded.)"""
    failed = [j for j in jobs if j.status == "FAIL"]
    wrote = any(d.role == "output" for j in jobs for d in j.datasets)
    return bool(failed) and all(j.exit_code == 2 for j in failed) and not wrote


class RunRecorder(RunListener):
    """Appends each top-level run's jobs to `_lakestack.runs` in one commit when it ends.

    `warehouse` is called only when there is something to write (opening the catalog is not free).
    A parent's counts come from its jobs: rows read by its ingest and stream jobs (what entered the
    lake), rows written, quarantined and dropped by all of them. Listener errors and drops (listeners with an integer
    `dropped` attribute, such as a lineage spool) are counted on the top-level row."""

    def __init__(
        self, warehouse: Callable[[], Any], events: RunEvents | None = None, *, inflight: InFlight | None = None
    ) -> None:
        self._warehouse = warehouse
        self._events = events
        self._pending: list[JobRun] = []
        self.errors = 0  # records that could not be written
        self.inflight = inflight  # markers of top-level runs in flight (pipeline/inflight.py)

    def on_start(self, job: JobRun) -> None:
        if self.inflight is not None and job.parent_run_id is None:
            self.inflight.start(job)

    def on_progress(self, job: JobRun) -> None:
        if self.inflight is not None and job.parent_run_id is None:
            self.inflight.touch(job.run_id)

    def on_complete(self, job: JobRun) -> None:
        self._ended(job)

    def on_fail(self, job: JobRun) -> None:
        self._ended(job)

    def _ended(self, job: JobRun) -> None:
        self._pending.append(job)
        if job.parent_run_id is None:
            self.flush()

    def close(self) -> None:
        self.flush()

    def flush(self) -> None:
        jobs, self._pending = self._pending, []
        ended = [j.run_id for j in jobs if j.parent_run_id is None]
        try:
            if not jobs or _refused(jobs):
                return
            abandoned = self._abandoned(exclude=set(ended))
            try:
                self._write(jobs)
                if abandoned:  # after the run's own record: a failure here never costs it
                    unrecorded = self._unrecorded(abandoned)  # killed after its record's commit: recorded
                    if unrecorded:
                        self._write(unrecorded)
            except Exception as exc:  # a run record never fails the job it records
                self.errors += 1
                text = str(exc).strip().splitlines()
                log.warning("could not record %d run record(s) in %s: %s", len(jobs), RUNS, text[0] if text else exc)
                log.debug("run record failure", exc_info=True)
                if self.inflight is not None:
                    self.inflight.settle([j.run_id for j in abandoned], recorded=False)
            else:
                if self.inflight is not None:
                    self.inflight.settle([j.run_id for j in abandoned], recorded=True)
        finally:
            if self.inflight is not None:
                self.inflight.finish(ended)

    def _abandoned(self, exclude: set[str]) -> list[JobRun]:
        """FAIL records for the runs on this host whose process ended without finishing them."""
        if self.inflight is None:
            return []
        try:
            markers = [m for m in self.inflight.abandoned() if m.run_id not in exclude]
            return [m.as_job() for m in markers if self.inflight.claim(m)]
        except Exception as exc:  # never fails the job
            log.debug("could not look for abandoned runs: %s", exc)
            return []

    def _rows(self, jobs: list[JobRun]) -> list[dict[str, Any]]:
        rows = [job_row(j) for j in jobs]
        by_id = {r["run_id"]: r for r in rows}
        for row in rows:  # a parent's totals from its jobs' (one level: runs hold jobs)
            parent = by_id.get(row["parent_run_id"] or "")
            if parent is not None:
                if row["job_type"] in ("ingest", "stream"):  # read: what entered the lake, not re-reads
                    parent["rows_read"] += row["rows_read"]
                for key in ("rows_written", "rows_quarantined", "rows_dropped"):
                    parent[key] += row[key]
                parent["checks_total"] += row["checks_total"]
                parent["checks_failed"] += row["checks_failed"]
        if self._events is not None:
            drops = sum(int(getattr(lst, "dropped", 0) or 0) for lst in self._events.listeners)
            for row in rows:
                if row["parent_run_id"] is None:
                    row["listener_errors"], row["listener_drops"] = self._events.listener_errors, drops
        return rows

    def _unrecorded(self, jobs: list[JobRun]) -> list[JobRun]:
        from pyiceberg.expressions import In

        table = self._warehouse().load(RUNS)
        ids = {j.run_id for j in jobs}
        found = table.scan(row_filter=cast(Any, In)("run_id", ids), selected_fields=("run_id",)).to_arrow()
        recorded = set(found.column("run_id").to_pylist())
        return [j for j in jobs if j.run_id not in recorded]

    def _write(self, jobs: list[JobRun]) -> None:
        import pyarrow as pa

        from lakestack.failpoints import failpoint
        from lakestack.storage.warehouse import append

        schema = runs_schema()
        rows = self._rows(jobs)
        table = self._warehouse().system_table(RUNS, schema)
        top = next((j for j in jobs if j.parent_run_id is None), jobs[-1])
        # the batch id is the top-level run's uuid: a retried commit that did land is not doubled
        failpoint("runs.before_commit")
        append(
            table,
            pa.Table.from_pylist(rows, schema=schema),
            run_id=top.lake_run_id or top.run_id,
            batch_id=f"runs:{top.run_id}:{len(jobs)}",
        )
        failpoint("runs.after_commit")


# -- reading ------------------------------------------------------------------------------------


def parse_since(text: str, now: datetime) -> datetime:
    """`30m`, `12h`, `1d`, `2w` before now, or an ISO date/time (UTC when it names no zone)."""
    import re

    from lakestack.errors import UsageError

    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r}: expected a duration such as 30m, 12h, 1d, 2w or an ISO date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=now.tzinfo)


def read_runs(warehouse: Any) -> list[dict[str, Any]]:
    """Every run record, newest first."""
    if not warehouse.exists(RUNS):
        return []
    rows: list[dict[str, Any]] = warehouse.load(RUNS).scan().to_arrow().to_pylist()
    return sorted(rows, key=lambda r: (r["started_at"], r["run_id"]), reverse=True)


def list_runs(
    warehouse: Any,
    *,
    status: str | None = None,
    job: str | None = None,
    since: datetime | None = None,
    limit: int | None = 50,
    top_only: bool = False,
    inflight: InFlight | None = None,
) -> list[dict[str, Any]]:
    """Records matching the filters, newest first. `job` matches a job's name or its type;
    `top_only` keeps the top-level runs (a `run`, a standalone command, a stream session). With
    `inflight`, the runs still going (no record yet) come first as RUNNING."""
    out = []
    running = [m.as_row() for m in inflight.running()] if inflight is not None else []
    for row in [*running, *read_runs(warehouse)]:
        if top_only and row["parent_run_id"] is not None:
            continue
        if status and row["status"] != status.upper():
            continue
        if job and job not in (row["job"], row["job_type"]):
            continue
        if since and row["started_at"] < since:
            continue
        out.append(row)
        if limit and len(out) >= limit:
            break
    return out


def find_run(warehouse: Any, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The record a reference names (its uuid, its lakestack run id, or a unique prefix of either),
    with its child jobs in start order. A lakestack run id names its top-level record."""
    from lakestack.errors import UsageError

    rows = read_runs(warehouse)
    ref = ref.strip()
    exact = [r for r in rows if r["run_id"] == ref] or [
        r for r in rows if r["lake_run_id"] == ref and r["parent_run_id"] is None
    ]
    found = exact or [
        r
        for r in rows
        if r["run_id"].startswith(ref) or (r["parent_run_id"] is None and (r["lake_run_id"] or "").startswith(ref))
    ]
    if not ref or not found:
        raise UsageError(f"no run '{ref}' in {RUNS} (see 'lakestack runs')")
    if len(found) > 1:
        names = ", ".join(r["run_id"] for r in found[:5])
        raise UsageError(f"run '{ref}' is ambiguous: {len(found)} runs match ({names}, ...); give more of it")
    run = found[0]
    children = sorted((r for r in rows if r["parent_run_id"] == run["run_id"]), key=lambda r: r["started_at"])
    return run, children

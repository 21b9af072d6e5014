"""Recorded check results (`_lakestack.check_results`, `_lakestack.check_failures`) as a reader sees them.

The latest result of each check, one check's history, and its failing-row samples, each limited to
the datasets `role` may read, samples masked for it (pipeline/access.py `governed_checks`).
"""

from __future__ import annotations

from typing import Any

from lakestack.errors import UsageError

RESULTS = "_lakestack.check_results"
FAILURES = "_lakestack.check_failures"


class CheckNotFound(UsageError):
    """No recorded check of that name on a dataset the role may read."""


def check_view(row: dict[str, Any]) -> dict[str, Any]:
    """A `check_results` row as the API's Check."""
    from lakestack.pipeline.datasets import iso

    return {
        "name": row["check"],
        "dataset": row["dataset"],
        "status": row["status"],
        "severity": row["severity"],
        "blocking": row["severity"] == "fail",
        "run_id": row["run_id"],
        "at": iso(row["evaluated_at"]),
        "failing_rows": row["failing_rows"],
        "type": row["check_type"],
        "observed": row["observed"],
        "threshold": row["threshold"],
        "message": row["message"],
        "snapshot_id": str(row["snapshot_id"]) if row["snapshot_id"] is not None else None,
    }


def _results(lake: Any, role: str | None, dataset: str | None = None) -> list[dict[str, Any]]:
    """Every recorded result (of `dataset`) of the datasets `role` may read, oldest first (a Gold
    dataset whose first build a gate stopped has results but no table yet: they are kept)."""
    if not lake.warehouse.exists(RESULTS):
        return []
    scan = lake.warehouse.load(RESULTS).scan()
    if dataset is not None:
        from pyiceberg.expressions import EqualTo

        scan = lake.warehouse.load(RESULTS).scan(row_filter=EqualTo("dataset", dataset))  # type: ignore[call-arg, arg-type]
    rows = [r for r in scan.to_arrow().to_pylist() if _may_read(lake, role, r["dataset"])]
    return sorted(rows, key=lambda r: (r["evaluated_at"], r["dataset"], r["check"]))


def run_checks(lake: Any, role: str | None, run_id: str) -> list[dict[str, Any]]:
    """The results a run (its lakestack run id) recorded, of the datasets `role` may read."""
    return [check_view(r) for r in _results(lake, role) if r["run_id"] == run_id]


def latest_checks(
    lake: Any, role: str | None, *, dataset: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """The latest result of each (dataset, check), failing ones first; `status` filters (pass, fail, ...)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in _results(lake, role, dataset):
        latest[(row["dataset"], row["check"])] = row
    out = [check_view(r) for r in latest.values() if status is None or r["status"] == status]
    order = {"fail": 0, "error": 1, "warn": 2}
    return sorted(out, key=lambda c: (order.get(c["status"], 3), c["dataset"], c["name"]))


def check_history(
    lake: Any, role: str | None, name: str, *, dataset: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Every evaluation of the check `name` (on `dataset`, if given), newest first."""
    from lakestack.pipeline.datasets import iso

    rows = [r for r in _results(lake, role, dataset) if r["check"] == name]
    if not rows:
        raise CheckNotFound(f"no check '{name}' recorded (see GET /v1/checks)")
    return [
        {
            "run_id": r["run_id"],
            "dataset": r["dataset"],
            "at": iso(r["evaluated_at"]),
            "status": r["status"],
            "failing_rows": r["failing_rows"],
            "observed": r["observed"],
        }
        for r in reversed(rows[-limit:] if limit else rows)
    ]


def check_failures(
    lake: Any, role: str | None, name: str, *, run_id: str | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """The failing-row samples of the check `name` in `run_id` (default: its latest failing run),
    masked for `role`: `{"columns": [...], "rows": [[...]]}` in the order of the first sample."""
    import json

    history = check_history(lake, role, name, dataset=dataset, limit=0)
    if run_id is None:
        failing = [h for h in history if h["status"] in ("fail", "warn", "error")]
        run_id = (failing or history)[0]["run_id"]
    rows = lake.check_failures(run_id, role=role)  # masked for the role, its datasets only
    rows += _unbuilt_samples(lake, role, run_id)
    picked = [r for r in rows if r["check"] == name and (dataset is None or r["dataset"] == dataset)]
    samples = [json.loads(r["row"]) for r in picked]
    columns: list[str] = []
    for sample in samples:
        columns += [c for c in sample if c not in columns]
    return {
        "name": name,
        "run_id": run_id,
        "columns": columns,
        "rows": [[s.get(c) for c in columns] for s in samples],
    }


def _unbuilt_samples(lake: Any, role: str | None, run_id: str) -> list[dict[str, Any]]:
    """Samples of datasets with no table yet (a Gold model whose first build its gate stopped): the
    policy cannot say which of their columns are PII, so only a role that reads every PII class in
    clear sees them (as recorded, PII already hashed); any other role sees none."""
    from pyiceberg.expressions import EqualTo

    chosen = lake.role(role)
    spec = lake.policy.roles.get(chosen) if chosen is not None else None
    if not lake.warehouse.exists(FAILURES) or (spec is not None and "*" not in spec.unmasked):
        return []
    scan = lake.warehouse.load(FAILURES).scan(row_filter=EqualTo("run_id", run_id))  # type: ignore[call-arg, arg-type]
    rows: list[dict[str, Any]] = scan.to_arrow().to_pylist()
    return [r for r in rows if not lake.warehouse.exists(r["dataset"]) and _may_read(lake, role, r["dataset"])]


def _may_read(lake: Any, role: str | None, dataset: str) -> bool:
    try:
        return bool(lake.may_read(role, dataset))
    except UsageError:
        return False

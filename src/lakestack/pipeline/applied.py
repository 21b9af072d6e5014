"""What `lakestack apply` carried out in an environment: `_lakestack.applied` (ADR 27).

Each environment's own catalog holds the record, so a plan compares the project with exactly the
environment it names: one row per object an apply changed, appended in one commit per apply::

    run_id | applied_at | environment | object (gold.daily) | kind (rebuild) | fingerprint | detail

An object's newest row is its applied state; a `drop` row ends it. Tables themselves (whether they
exist, their schema, the contract version they follow) are read from the catalog, never from here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

APPLIED = "_lakestack.applied"


def applied_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("applied_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("environment", pa.string(), nullable=False),
            pa.field("object", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("fingerprint", pa.string()),
            pa.field("detail", pa.string()),
        ]
    )


@dataclass(frozen=True, slots=True)
class Applied:
    """The newest applied row of one object."""

    object: str
    kind: str
    fingerprint: str | None
    run_id: str
    applied_at: datetime


def read_applied(warehouse: Any) -> dict[str, Applied]:
    """Each object's newest row (a dropped object is left out); empty before the first apply."""
    if not warehouse.exists(APPLIED):
        return {}
    rows = warehouse.load(APPLIED).scan().to_arrow().to_pylist()
    newest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["applied_at"], r["run_id"])):
        newest[row["object"]] = row
    return {
        name: Applied(name, r["kind"], r["fingerprint"], r["run_id"], r["applied_at"])
        for name, r in newest.items()
        if r["kind"] != "drop"
    }


@dataclass(frozen=True, slots=True)
class AppliedRow:
    object: str
    kind: str
    fingerprint: str | None
    detail: dict[str, Any]


def record_applied(warehouse: Any, environment: str, run_id: str, rows: Sequence[AppliedRow]) -> int | None:
    """Append the rows in one commit (its batch id is the run's: a retried commit lands once);
    the snapshot id, or None when there is nothing to record."""
    from lakestack.storage.warehouse import append

    if not rows:
        return None
    now = datetime.now(UTC)
    data = pa.Table.from_pylist(
        [
            {
                "run_id": run_id,
                "applied_at": now,
                "environment": environment,
                "object": r.object,
                "kind": r.kind,
                "fingerprint": r.fingerprint,
                "detail": json.dumps(r.detail, sort_keys=True, default=str),
            }
            for r in rows
        ],
        schema=applied_schema(),
    )
    table = warehouse.system_table(APPLIED, applied_schema())
    table = append(table, data, run_id=run_id, batch_id=f"apply:{run_id}")
    snap = table.current_snapshot()
    return snap.snapshot_id if snap else None

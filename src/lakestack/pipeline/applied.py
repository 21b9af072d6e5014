"""What `lakestack apply` carried out in an environment: `_lakestack.applied` (ADR 27).

Each environment's own catalog holds the record, so a plan compares the project with exactly the
environment it names: one row per object an apply changed, appended in one commit per apply::

    run_id | applied_at | environment | object (gold.daily) | kind (rebuild) | fingerprint | detail

An object's newest row is its applied state; a `drop` row ends it. Tables themselves (whether they
exist, their schema, the contract version they follow) are read from the catalog, never from here.

Each apply also keeps one row of its own, `apply:<run_id>`: an `intent` row committed before its
first change (the plan's changes in `detail`), closed by a `done` row in the apply's record commit.
An intent still open is an apply that died between its changes and its record: the next apply
records the changes of it the catalog shows done (pipeline/apply.py), then closes it `recovered`.
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


APPLY_PREFIX = "apply:"  # an apply's own row: intent, then done (or recovered)


def _newest(warehouse: Any) -> dict[str, dict[str, Any]]:
    if not warehouse.exists(APPLIED):
        return {}
    rows = warehouse.load(APPLIED).scan().to_arrow().to_pylist()
    newest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["applied_at"], r["kind"] != "intent", r["run_id"])):
        newest[row["object"]] = row
    return newest


def read_applied(warehouse: Any) -> dict[str, Applied]:
    """Each object's newest row (a dropped object is left out); empty before the first apply."""
    return {
        name: Applied(name, r["kind"], r["fingerprint"], r["run_id"], r["applied_at"])
        for name, r in _newest(warehouse).items()
        if r["kind"] != "drop" and not name.startswith(APPLY_PREFIX)
    }


@dataclass(frozen=True, slots=True)
class Intent:
    """An apply that committed its intent and never its record: the changes it set out to make."""

    run_id: str
    changes: tuple[dict[str, Any], ...]  # record, kind, target, fingerprint, detail


def open_intents(warehouse: Any) -> list[Intent]:
    """The intents no `done` or `recovered` row closed, oldest first."""
    out = []
    for name, row in sorted(_newest(warehouse).items(), key=lambda item: item[1]["applied_at"]):
        if name.startswith(APPLY_PREFIX) and row["kind"] == "intent":
            changes = json.loads(row["detail"] or "{}").get("changes", [])
            out.append(Intent(row["run_id"], tuple(changes)))
    return out


def intent_row(run_id: str, changes: Sequence[dict[str, Any]]) -> AppliedRow:
    return AppliedRow(f"{APPLY_PREFIX}{run_id}", "intent", None, {"changes": list(changes)})


def closing_row(run_id: str, kind: str = "done") -> AppliedRow:
    return AppliedRow(f"{APPLY_PREFIX}{run_id}", kind, None, {})


@dataclass(frozen=True, slots=True)
class AppliedRow:
    object: str
    kind: str
    fingerprint: str | None
    detail: dict[str, Any]


def record_applied(
    warehouse: Any, environment: str, run_id: str, rows: Sequence[AppliedRow], *, batch: str = "apply"
) -> int | None:
    """Append the rows in one commit (its batch id is `batch:run_id`: a retried commit lands once);
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
    table = append(table, data, run_id=run_id, batch_id=f"{batch}:{run_id}")
    snap = table.current_snapshot()
    return snap.snapshot_id if snap else None

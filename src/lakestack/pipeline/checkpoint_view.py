"""What each table's checkpoint holds, read through the typed API (storage/checkpoints.py).

`lakestack checkpoints` answers the questions of the stream-checkpoint runbook without a query:
how far a stream source has committed (positions per partition, owner epoch), which files a file
source has landed, a pull source's cursors, and how far each Silver dataset and Gold model has read
its inputs (the snapshot it read up to, and how many commits of each input it has not read yet).
Reading only: nothing here writes or moves a checkpoint (Bronze is never rolled back, ADR 18).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lakestack.errors import UsageError


def _last_commit(table: Any) -> dict[str, Any]:
    snap = table.current_snapshot()
    if snap is None:
        return {"snapshot_id": None, "committed_at": None}
    return {"snapshot_id": snap.snapshot_id, "committed_at": datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC)}


def _source_view(lake: Any, name: str) -> dict[str, Any]:
    from lakestack.storage.checkpoints import Cursors, FileLedger, StreamPositions, read_checkpoint

    cfg = lake.project.config.sources[name]
    identifier = f"bronze.{name}"
    view: dict[str, Any] = {"name": name, "layer": "source", "kind": cfg.kind, "table": identifier}
    if not lake.warehouse.exists(identifier):
        return {**view, "state": "no commits yet"}
    table = lake.warehouse.load(identifier)
    view.update(_last_commit(table))
    if cfg.is_stream:
        positions = read_checkpoint(table, StreamPositions)
        view["positions"] = dict(sorted(positions.positions.items()))
        view["epoch"] = positions.epoch
        quarantine = f"quarantine.{name}"
        if lake.warehouse.exists(quarantine):  # quarantine commits carry their own positions
            held = read_checkpoint(lake.warehouse.load(quarantine), StreamPositions).positions
            view["quarantine_positions"] = dict(sorted(held.items()))
    else:
        ledger = read_checkpoint(table, FileLedger)
        view["files"] = len(ledger)
        view["newest_files"] = sorted({e.name for e in ledger.files.values()})[-3:]
    cursors = read_checkpoint(table, Cursors).values
    if cursors:
        view["cursors"] = dict(cursors)
    view["state"] = "committed"
    return view


def _unread_commits(lake: Any, upstream: str, sequence: int | None, snapshot_id: int | None) -> int | None:
    """Commits of `upstream` after the one read up to (None: unknown, e.g. the table is gone)."""
    if not lake.warehouse.exists(upstream):
        return None
    table = lake.warehouse.load(upstream)
    snaps = table.snapshots()
    if sequence is None:
        by_id = {s.snapshot_id: s.sequence_number for s in snaps}
        sequence = by_id.get(snapshot_id) if snapshot_id is not None else 0
        if sequence is None:  # the snapshot read was expired and no sequence was kept
            return None
    return sum(1 for s in snaps if (s.sequence_number or 0) > sequence)


def _derived_view(lake: Any, identifier: str, layer: str, name: str) -> dict[str, Any]:
    from lakestack.storage.checkpoints import UpstreamSnapshots, read_checkpoint

    view: dict[str, Any] = {"name": name, "layer": layer, "kind": layer, "table": identifier}
    if not lake.warehouse.exists(identifier):
        return {**view, "state": "no commits yet"}
    table = lake.warehouse.load(identifier)
    view.update(_last_commit(table))
    upstream = read_checkpoint(table, UpstreamSnapshots)
    inputs = []
    for source, snapshot_id in sorted(upstream.snapshots.items()):
        unread = _unread_commits(lake, source, upstream.sequences.get(source), snapshot_id)
        inputs.append({"table": source, "read_up_to": snapshot_id, "unread_commits": unread})
    view["inputs"] = inputs
    behind = sum(int(i["unread_commits"] or 0) for i in inputs)
    view["state"] = f"{behind:,} input commit(s) unread" if behind else "caught up"
    return view


def checkpoint_views(lake: Any, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One view per source (Bronze), Silver dataset and Gold model; `names` keeps those named
    (a source or dataset name, or a table such as silver.orders)."""
    config = lake.project.config
    wanted: list[tuple[str, str, str]] = []  # (layer, name, table)
    wanted += [("source", s, f"bronze.{s}") for s in config.sources]
    wanted += [("silver", d, f"silver.{d}") for d in config.datasets]
    wanted += [("gold", m, f"gold.{m}") for m in lake.gold_models()]
    if names:
        known = {n for _, name, table in wanted for n in (name, table)}
        unknown = [n for n in names if n not in known]
        if unknown:
            sources = ", ".join(config.sources) or "none"
            raise UsageError(f"unknown source or dataset {', '.join(map(repr, unknown))} (sources: {sources})")
        wanted = [w for w in wanted if w[1] in names or w[2] in names]
    out = []
    for layer, name, identifier in wanted:
        if layer == "source":
            out.append(_source_view(lake, name))
        else:
            out.append(_derived_view(lake, identifier, layer, name))
    return out

"""Typed checkpoints in Iceberg snapshot summaries, and the compact checkpoint (ADRs 2, 8, 9, 18).

A lakestack commit writes, in its snapshot summary:

- `lakestack.run-id`, `lakestack.batch-id`: the run, and the id a retry looks for
  (`warehouse.has_batch`).
- `lakestack.checkpoint`: JSON, what *this* commit advanced, in the format of ADRs 2, 8 and 9
  (unchanged): `files` (the batch's files), `stream` (kind, the positions it advanced, the owner
  epoch), `http` (client batch ids, and until when they are remembered), `upstream` (Silver and
  Gold; Silver also keeps its older top-level `bronze.<source>` key).
- `lakestack.state`: JSON, the **compact checkpoint**: everything the table's readers need as of
  this snapshot: every stream partition's newest position and the epoch, the upstream snapshot
  ids *and sequence numbers*, a reference to the file ledger (a Parquet side file in the table's
  `metadata/` folder), and a reference to folded HTTP batch ids (written by `carry_forward`).

Every commit made through `storage.warehouse` (`append`, `replace_files`: ingestion, Silver,
Gold, quality drops, run records) carries the state forward, so the newest snapshot alone
answers every read. Readers take the newest snapshot of the table's lineage (the current
snapshot and its ancestors) that holds a state, then lay over it the per-commit checkpoints of
newer snapshots without one (a foreign commit holds none and is stepped over; a table written
before the state existed is folded from its whole history, as before).

Kinds, read with ``read_checkpoint(table, Kind)``:
- `FileLedger`: sha256 → (file name, run) of every file a table holds (file sources).
- `StreamPositions`: partition → newest committed position, the source kind and owner epoch
  (brokers; the HTTP collector's log position is the partition ``"wal"``).
- `HttpBatches`: client batch key → commit time (ms), within ``since_ms``.
- `UpstreamSnapshots`: upstream table → snapshot id (and sequence number) a Silver or Gold
  table has read up to.
- `Cursors`: cursor name → a JSON value: pull sources' high-water marks (a database source's
  cursor column and key, a REST source's incremental cursor). A commit names the cursors it
  advanced; the others are carried forward.

For table maintenance (compaction, manifest rewrite, expiry):
- ``carry_forward(table) -> dict[str, str]``: the summary properties to put on any commit that
  does not come through `storage.warehouse` (a compaction's replace snapshot, ...). They make
  that commit hold the whole state, folding any per-commit checkpoints and HTTP batch ids still
  remembered. Compute them from the table the commit is made on; lakestack tables commit
  compare-and-swap, so a commit that lost a race must call it again on the fresh table.
- ``needed_snapshots(table) -> set[int]``: snapshots that must not be expired because a
  checkpoint still lives only in them (the current snapshot is never listed: Iceberg never
  expires it). Empty once the current snapshot carries the state and no HTTP batch id younger
  than its dedup window lives only in an older snapshot; after a commit with ``carry_forward``
  it is empty.
- ``referenced_files(table) -> set[str]``: the side files (ledgers, folded batch ids) the
  table's snapshots reference; orphan-file removal must keep them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from lakestack.storage.checkpoint_files import read_http, read_ledger, write_http, write_ledger

log = logging.getLogger(__name__)

RUN_ID = "lakestack.run-id"
BATCH_ID = "lakestack.batch-id"
CHECKPOINT = "lakestack.checkpoint"
STATE = "lakestack.state"
STATE_VERSION = 1
# How long a client batch id is remembered when its commit does not say (written before `until`):
# the default of `http.dedup_hours`.
DEFAULT_HTTP_KEEP_MS = 24 * 3600 * 1000


# -- kinds: what readers get ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A file a table holds: its name when it was first committed, and the run that committed it."""

    name: str
    run: str | None


@dataclass(frozen=True, slots=True)
class FileLedger:
    """sha256 → `LedgerEntry` of every file committed to a table (the first commit of a content wins)."""

    files: Mapping[str, LedgerEntry] = field(default_factory=dict)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self.files

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True, slots=True)
class StreamPositions:
    """partition → newest committed position; the source kind and the owner epoch of the newest
    stream commit (None: it carried none)."""

    positions: Mapping[str, int] = field(default_factory=dict)
    kind: str | None = None
    epoch: int | None = None


@dataclass(frozen=True, slots=True)
class HttpBatches:
    """Client batch key → when the commit holding it was made (ms since the epoch)."""

    batches: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpstreamSnapshots:
    """Upstream table → the snapshot id read up to (and its sequence number, when known: it stays
    valid after that snapshot is expired). Both a kind and what a Silver or Gold commit writes."""

    snapshots: Mapping[str, int | None] = field(default_factory=dict)
    sequences: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cursors:
    """Cursor name → a JSON value (a pull source's high-water mark). Both a kind and what a commit
    advances: a commit's cursors are laid over the ones the table held."""

    values: Mapping[str, Any] = field(default_factory=dict)


# -- what a commit advances ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BatchFile:
    """One file of a committed file batch, with its outcome."""

    name: str
    sha256: str
    status: str
    landed: int
    quarantined: int


@dataclass(frozen=True, slots=True)
class FileBatch:
    """The files a file-source commit holds."""

    files: tuple[BatchFile, ...]


@dataclass(frozen=True, slots=True)
class StreamBatch:
    """What a stream commit advances: only the partitions it read (a writer's view of the others may
    be stale, ADR 8), its owner epoch, and the client batch ids it holds with how long (ms since the
    epoch) they must be remembered."""

    kind: str
    positions: Mapping[str, int]
    epoch: int | None = None
    http_batches: tuple[str, ...] = ()
    http_until_ms: int | None = None


Checkpoint = FileBatch | StreamBatch | UpstreamSnapshots | Cursors


# -- encoding ------------------------------------------------------------------------------------
def encode(checkpoint: Checkpoint) -> dict[str, Any]:
    """The per-commit `lakestack.checkpoint` JSON of a checkpoint (the format of ADRs 2, 8, 9)."""
    if isinstance(checkpoint, FileBatch):
        return {
            "files": [
                {
                    "name": f.name,
                    "sha256": f.sha256,
                    "status": f.status,
                    "landed": f.landed,
                    "quarantined": f.quarantined,
                }
                for f in checkpoint.files
            ]
        }
    if isinstance(checkpoint, StreamBatch):
        stream: dict[str, Any] = {"kind": checkpoint.kind, "positions": _strings(checkpoint.positions)}
        if checkpoint.epoch is not None:
            stream["epoch"] = checkpoint.epoch
        out: dict[str, Any] = {"stream": stream}
        if checkpoint.http_batches:
            out["http"] = {"batches": list(checkpoint.http_batches)}
            if checkpoint.http_until_ms is not None:
                out["http"]["until"] = checkpoint.http_until_ms
        return out
    if isinstance(checkpoint, Cursors):
        return {"cursors": dict(checkpoint.values)}
    # Silver's readers before the typed API read its top-level `bronze.<source>` key; keep it
    legacy = {k: v for k, v in checkpoint.snapshots.items() if k.startswith("bronze.")}
    return {**legacy, "upstream": dict(checkpoint.snapshots)}


def commit_properties(table: Any, run_id: str, batch_id: str, checkpoint: Checkpoint | None) -> dict[str, str]:
    """The summary properties of a commit to `table` (as the commit attempt read it): run id, batch
    id, the per-commit checkpoint, and the table's state carried forward with the checkpoint applied.
    May write a ledger side file (a file batch, or the first commit after an older lakestack)."""
    props = {RUN_ID: run_id, BATCH_ID: batch_id}
    if checkpoint is not None:
        props[CHECKPOINT] = _dumps(encode(checkpoint))
    state = _next_state(table, checkpoint, run_id)
    if state is not None:
        props[STATE] = _dumps(state)
    return props


def _strings(positions: Mapping[str, int]) -> dict[str, str]:
    # positions as strings: Kinesis sequence numbers exceed what JSON readers keep exact in a double
    return {p: str(v) for p, v in sorted(positions.items())}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Commit:
    snapshot_id: int
    timestamp_ms: int
    run_id: str | None
    checkpoint: dict[str, Any] | None
    state: dict[str, Any] | None


def _lineage(table: Any) -> Iterator[_Commit]:
    """The current snapshot and its ancestors, newest first, with what lakestack stored in them.
    Snapshots a rollback left, or a branch, are not part of it."""
    metadata = table.metadata
    by_id: dict[int, Any] | None = None
    snap = table.current_snapshot()
    seen: set[int] = set()
    while snap is not None and snap.snapshot_id not in seen:
        seen.add(snap.snapshot_id)
        summary = snap.summary.additional_properties if snap.summary else {}
        yield _Commit(
            snap.snapshot_id,
            snap.timestamp_ms,
            summary.get(RUN_ID),
            _loads(summary.get(CHECKPOINT)),
            _loads(summary.get(STATE)),
        )
        parent = snap.parent_snapshot_id
        if parent is None:
            return
        if by_id is None:
            by_id = {s.snapshot_id: s for s in metadata.snapshots}
        snap = by_id.get(parent)  # None: expired


def _loads(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def _walk(table: Any) -> tuple[list[_Commit], _Commit | None]:
    """The commits newer than the newest one holding a state (newest first), and that one (None:
    no commit holds a state, and the first list is the whole lineage)."""
    newer: list[_Commit] = []
    for commit in _lineage(table):
        if commit.state is not None:
            return newer, commit
        newer.append(commit)
    return newer, None


@overload
def read_checkpoint(table: Any, kind: type[FileLedger]) -> FileLedger: ...
@overload
def read_checkpoint(table: Any, kind: type[StreamPositions]) -> StreamPositions: ...
@overload
def read_checkpoint(table: Any, kind: type[HttpBatches], *, since_ms: float = 0) -> HttpBatches: ...
@overload
def read_checkpoint(table: Any, kind: type[UpstreamSnapshots]) -> UpstreamSnapshots: ...
@overload
def read_checkpoint(table: Any, kind: type[Cursors]) -> Cursors: ...
def read_checkpoint(table: Any, kind: type[Any], *, since_ms: float = 0) -> Any:
    """The newest checkpoint of one kind a table holds (empty when it holds none).

    `since_ms` (HttpBatches only): leave out batch ids committed before it (the dedup window)."""
    if kind is HttpBatches:
        return _http_batches(table, since_ms)
    newer, base = _walk(table)
    if kind is FileLedger:
        return FileLedger(_ledger(table, newer, base))
    if kind is StreamPositions:
        return _stream(newer, base)
    if kind is UpstreamSnapshots:
        return _upstream(newer, base)
    if kind is Cursors:
        return Cursors(_cursors(newer, base))
    raise TypeError(f"not a checkpoint kind: {kind!r}")


def positions_after(table: Any, snapshot_id: int | None, partitions: Collection[str] | None = None) -> dict[str, int]:
    """partition → the newest position committed to `table` after snapshot `snapshot_id` (in all of
    its lineage when None, or when that snapshot is no longer in it); `partitions` only, when given."""
    out: dict[str, int] = {}
    for commit in _lineage(table):
        if commit.snapshot_id == snapshot_id:
            break
        stream = (commit.checkpoint or {}).get("stream") or {}
        for partition, value in stream.get("positions", {}).items():
            if partitions is None or partition in partitions:
                out.setdefault(partition, int(value))
        if partitions is not None and len(out) == len(partitions):
            break
    return out


def _stream(newer: list[_Commit], base: _Commit | None) -> StreamPositions:
    positions: dict[str, int] = {}
    kind: str | None = None
    epoch: int | None = None
    found = False
    sections = [(c.checkpoint or {}).get("stream") for c in newer]
    sections.append((base.state or {}).get("stream") if base is not None else None)
    for stream in sections:
        if not stream:
            continue
        if not found:  # the newest stream commit says the kind and the epoch
            found, kind, epoch = True, stream.get("kind"), _int(stream.get("epoch"))
        for partition, value in stream.get("positions", {}).items():
            positions.setdefault(partition, int(value))
    return StreamPositions(positions, kind, epoch)


def _cursors(newer: list[_Commit], base: _Commit | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sections = [(c.checkpoint or {}).get("cursors") for c in newer]
    sections.append((base.state or {}).get("cursors") if base is not None else None)
    for cursors in sections:  # newest first: the newest commit of a cursor holds its value
        for name, value in (cursors or {}).items():
            out.setdefault(name, value)
    return out


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _upstream(newer: list[_Commit], base: _Commit | None) -> UpstreamSnapshots:
    for commit in newer:
        legacy = _legacy_upstream(commit.checkpoint)
        if legacy is not None:
            return UpstreamSnapshots(legacy)
    held = (base.state or {}).get("upstream") if base is not None else None
    if not held:
        return UpstreamSnapshots()
    snapshots = {name: _int(v.get("snapshot")) for name, v in held.items()}
    sequences = {name: int(v["sequence"]) for name, v in held.items() if v.get("sequence") is not None}
    return UpstreamSnapshots(snapshots, sequences)


def _legacy_upstream(checkpoint: dict[str, Any] | None) -> dict[str, int | None] | None:
    """Gold's `{"upstream": {...}}` or Silver's `{"bronze.<source>": id}`; None when neither."""
    if not checkpoint:
        return None
    if isinstance(checkpoint.get("upstream"), dict):
        return {k: _int(v) for k, v in checkpoint["upstream"].items()}
    silver = {k: _int(v) for k, v in checkpoint.items() if k.startswith("bronze.")}
    return silver or None


def _ledger(table: Any, newer: list[_Commit], base: _Commit | None) -> dict[str, LedgerEntry]:
    held = (base.state or {}).get("ledger") if base is not None else None
    out = dict(read_ledger(table, held["path"])) if held else {}
    for commit in reversed(newer):  # oldest first: the first commit of a content names it
        for f in (commit.checkpoint or {}).get("files", []):
            out.setdefault(f["sha256"], LedgerEntry(f["name"], commit.run_id))
    return out


def _http_batches(table: Any, since_ms: float) -> HttpBatches:
    out: dict[str, int] = {}
    fold: dict[str, Any] | None = None
    for commit in _lineage(table):
        if fold is None and commit.state is not None:
            fold = commit.state.get("http")
        if fold is not None and commit.snapshot_id == fold.get("upto"):
            break  # the folded file holds this commit's ids and every older one's
        if commit.timestamp_ms < since_ms:
            continue
        for key in ((commit.checkpoint or {}).get("http") or {}).get("batches", []):
            out.setdefault(key, commit.timestamp_ms)
    if fold is not None:
        for key, (committed, _) in read_http(table, fold["path"]).items():
            if committed >= since_ms:
                out.setdefault(key, committed)
    return HttpBatches(out)


# -- the compact checkpoint ----------------------------------------------------------------------
def _next_state(table: Any, checkpoint: Checkpoint | None, run_id: str | None) -> dict[str, Any] | None:
    """The state a commit on `table` carries: the table's state with `checkpoint` applied. None for
    a table that never held a checkpoint, committed without one (run records, check results)."""
    newer, base = _walk(table)
    if base is None and checkpoint is None and not any(c.checkpoint for c in newer):
        return None
    held = (base.state or {}) if base is not None else {}
    state: dict[str, Any] = {"v": STATE_VERSION}
    stream = _stream(newer, base)
    if isinstance(checkpoint, StreamBatch):
        stream = StreamPositions({**stream.positions, **checkpoint.positions}, checkpoint.kind, checkpoint.epoch)
    if stream.positions or stream.kind:
        state["stream"] = {"kind": stream.kind, "positions": _strings(stream.positions)}
        if stream.epoch is not None:
            state["stream"]["epoch"] = stream.epoch
    upstream = checkpoint if isinstance(checkpoint, UpstreamSnapshots) else _upstream(newer, base)
    if upstream.snapshots:
        state["upstream"] = {
            name: {"snapshot": sid, **({"sequence": upstream.sequences[name]} if name in upstream.sequences else {})}
            for name, sid in sorted(upstream.snapshots.items())
        }
    cursors = _cursors(newer, base)
    if isinstance(checkpoint, Cursors):
        cursors.update(checkpoint.values)
    if cursors:
        state["cursors"] = dict(sorted(cursors.items()))
    if isinstance(checkpoint, FileBatch) or any((c.checkpoint or {}).get("files") for c in newer):
        ledger = _ledger(table, newer, base)
        for f in checkpoint.files if isinstance(checkpoint, FileBatch) else ():
            ledger.setdefault(f.sha256, LedgerEntry(f.name, run_id))
        state["ledger"] = {"path": write_ledger(table, ledger), "files": len(ledger)}
    elif "ledger" in held:
        state["ledger"] = held["ledger"]
    if "http" in held:
        state["http"] = held["http"]
    return state


def carry_forward(table: Any, *, now_ms: float | None = None) -> dict[str, str]:
    """Summary properties that make a maintenance commit on `table` hold its whole checkpoint state.

    Put them on any commit that does not come through `storage.warehouse` (compaction, manifest
    rewrite): after it, `needed_snapshots` is empty and every older snapshot may be expired. Client
    batch ids still remembered (younger than their dedup window) are folded into a side file.
    Empty for a table that never held a checkpoint. May write side files (ledger, batch ids)."""
    now = time.time() * 1000 if now_ms is None else now_ms
    state = _next_state(table, None, None)
    remembered = _remembered_http(table, now)
    if remembered:
        state = state if state is not None else {"v": STATE_VERSION}
        current = table.current_snapshot()
        state["http"] = {
            "path": write_http(table, remembered),
            "upto": current.snapshot_id,
            "batches": len(remembered),
        }
    elif state is not None:
        state.pop("http", None)
    return {STATE: _dumps(state)} if state is not None else {}


def needed_snapshots(table: Any, *, now_ms: float | None = None) -> set[int]:
    """Snapshots whose expiry would lose a checkpoint: the newest one holding the state and any newer
    per-commit checkpoints (when the current snapshot does not hold the state: a foreign commit, or a
    table not committed to since an older lakestack), and those holding client batch ids younger than
    their dedup window that no folded file holds. Never the current snapshot."""
    now = time.time() * 1000 if now_ms is None else now_ms
    newer, base = _walk(table)
    needed = {c.snapshot_id for c in newer if c.checkpoint}
    if base is not None:
        needed.add(base.snapshot_id)
    needed |= set(_remembered_http_commits(table, now))
    current = table.current_snapshot()
    if current is not None:
        needed.discard(current.snapshot_id)
    return needed


def referenced_files(table: Any) -> set[str]:
    """Side files (ledgers, folded batch ids) that a snapshot of the table references."""
    out: set[str] = set()
    for snap in table.metadata.snapshots:
        state = _loads((snap.summary.additional_properties if snap.summary else {}).get(STATE))
        for section in ("ledger", "http"):
            path = (state or {}).get(section, {}).get("path")
            if path:
                out.add(path)
    return out


def _remembered_http_commits(table: Any, now: float) -> dict[int, list[tuple[str, int, int]]]:
    """Commits (newer than the newest fold) holding batch ids still to be remembered at `now`:
    snapshot id → (key, committed ms, remember-until ms)."""
    out: dict[int, list[tuple[str, int, int]]] = {}
    fold: dict[str, Any] | None = None
    for commit in _lineage(table):
        if fold is None and commit.state is not None:
            fold = commit.state.get("http")
        if fold is not None and commit.snapshot_id == fold.get("upto"):
            break
        http = (commit.checkpoint or {}).get("http") or {}
        until = int(http.get("until") or commit.timestamp_ms + DEFAULT_HTTP_KEEP_MS)
        if http.get("batches") and until > now:
            out[commit.snapshot_id] = [(key, commit.timestamp_ms, until) for key in http["batches"]]
    return out


def _remembered_http(table: Any, now: float) -> dict[str, tuple[int, int]]:
    """Every client batch id still remembered at `now`: key → (committed ms, until ms)."""
    out: dict[str, tuple[int, int]] = {}
    for entries in _remembered_http_commits(table, now).values():
        for key, committed, until in entries:
            out.setdefault(key, (committed, until))
    fold = next((c.state.get("http") for c in _lineage(table) if c.state is not None), None)
    if fold is not None:
        for key, (committed, until) in read_http(table, fold["path"]).items():
            if until > now:
                out.setdefault(key, (committed, until))
    return out

"""Quarantine replay: re-validate quarantined records against a source's current contract.

`lakestack quarantine replay SOURCE` selects rows of `quarantine.<source>` (by rule, landing file
or rejecting run) and validates their records again with the contract the source ingests with now
(in a transition window, the previous version too, as ingest does):

- a file source's records are read again from their landing file when it is still there with the
  same content (sha256), through the same readers and validator as `ingest`. That is the only way
  back for a file rejected whole (a header a contract got wrong: its records were never parsed);
  for a file whose records were quarantined one by one, only those lines are taken;
- otherwise (a stream, or an NDJSON landing file that is gone) the record's `_raw` JSON is
  validated; CSV and Parquet records need their landing file (a CSV line means nothing without
  its header), and stay quarantined, said so, when it is gone.

Records that now pass land in Bronze with their original `_source_file` / `_source_line` /
`_source_position` / `_file_date` and `_replayed_from` = their replay key (storage/replayed.py), in
one append; records that still fail stay where they are. Quarantine is append-only history: nothing
is deleted there; the rows a replay took are those whose key Bronze holds, and the next replay
counts them as already replayed. Counts reconcile: records in = replayed + still failing + already
replayed (a file still rejected whole counts as one record).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakestack.errors import UsageError
from lakestack.failpoints import failpoint

log = logging.getLogger(__name__)

_COLUMNS = (
    "_source_file",
    "_source_line",
    "_file_hash",
    "_source_position",
    "_scope",
    "_raw",
    "_errors",
    "_reason",
    "_run_id",
)


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which quarantine rows to replay; None: any."""

    reason: str | None = None  # a rule name (`maximum`, `enum`, `file`, ...) or words of the reason
    file: str | None = None  # a landing file name, as quarantine holds it
    run: str | None = None  # the run that quarantined them


@dataclass(frozen=True, slots=True)
class FileReplay:
    """One landing file's (or a stream's) share of a replay."""

    file: str | None  # None: stream records
    scope: str  # record | file
    quarantined: int  # quarantine rows selected
    rows_in: int
    replayed: int
    still_failing: int
    already: int  # replayed before: in Bronze already
    via: str  # "landing file" | "raw" | "-": where the records were read from
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did (or, with `dry_run`, would do)."""

    source: str
    contract: str
    dry_run: bool
    run_id: str | None = None
    files: tuple[FileReplay, ...] = ()
    failing: tuple[tuple[str, int], ...] = ()  # reason → records still failing, most first
    snapshot_id: int | None = None  # the Bronze append (None: nothing landed)
    duration_s: float = 0.0

    @property
    def rows_in(self) -> int:
        return sum(f.rows_in for f in self.files)

    @property
    def replayed(self) -> int:
        return sum(f.replayed for f in self.files)

    @property
    def still_failing(self) -> int:
        return sum(f.still_failing for f in self.files)

    @property
    def already(self) -> int:
        return sum(f.already for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)


@dataclass(frozen=True, slots=True)
class _Source:
    """What a replay needs of a source: its name and contract, the contract versions it accepts, and
    for a file source the `FileSource` that reads its landing files (None for streams)."""

    name: str
    contract: Any
    versions: Any
    files: Any = None


@dataclass(slots=True)
class _Found:
    """The records of one group, validated: Bronze rows to land and what still fails."""

    bronze: pa.Table | None = None
    failing: Counter[str] = field(default_factory=Counter)


def run_replay(lake: Any, source: str, where: ReplayFilter, *, dry_run: bool, run_id: str, top: Any) -> ReplayResult:
    """Replay `source`'s quarantined records (see the module docstring); called by `Lake.replay`
    under the project lock, `top` its run context. With `dry_run`, nothing is written, not even a
    run record."""
    started = time.perf_counter()
    check_source(list(lake.project.config.sources), source)
    contract = lake.project.contract(source)
    warehouse = lake.warehouse
    bronze_id = f"bronze.{source}"
    if not dry_run:
        from lakestack.pipeline.evolution import evolve_bronze

        # as `ingest` does: a newer compatible contract evolves Bronze first; a breaking one refuses
        evolve_bronze(lake.project.contracts, warehouse, [contract])
    rows = _selected(warehouse, source, where)
    from lakestack.storage.replayed import replayed_keys

    done = replayed_keys(warehouse.load(bronze_id)) if warehouse.exists(bronze_id) else set()
    files, tables, failing = _replay_groups(_source(lake, source), rows, done)
    result = ReplayResult(source, contract.ref, dry_run, None if dry_run else run_id, tuple(files))
    result = _with_failing(result, failing)
    if dry_run:
        return _timed(result, started)
    with (
        top("replay", run_id) as run,
        lake.events.job("replay", f"replay.{source}", parent=run.run) as job,
    ):
        snapshot = _commit(warehouse.bronze_table(contract), tables, run_id) if tables else None
        _report(lake, job, source, result, snapshot)
    return _timed(_with_snapshot(result, snapshot), started)


def _source(lake: Any, name: str) -> _Source:
    from lakestack.ingest.versions import Versions

    contract = lake.project.contract(name)
    # only a files source has landing files to replay from; streams and pulls replay from `_raw`
    files = lake.source(name) if lake.project.config.sources[name].kind == "files" else None
    versions = files.versions if files is not None else Versions(contract)
    return _Source(name, contract, versions, files)


def _selected(warehouse: Any, source: str, where: ReplayFilter) -> list[dict[str, Any]]:
    """The quarantine rows matching the filter, oldest first."""
    identifier = f"quarantine.{source}"
    if not warehouse.exists(identifier):
        return []
    table = warehouse.load(identifier)
    if table.current_snapshot() is None:
        return []
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo

    condition: Any = AlwaysTrue()
    for column, value in (("_source_file", where.file), ("_run_id", where.run)):
        if value is not None:
            condition = And(condition, EqualTo(column, value))  # type: ignore[call-arg, arg-type]
    found = table.scan(row_filter=condition, selected_fields=_COLUMNS).to_arrow().to_pylist()
    if where.reason is not None:
        found = [r for r in found if _matches(r, where.reason)]
    return sorted(found, key=lambda r: (r["_run_id"] or "", r["_source_file"] or "", r["_source_line"] or 0))


def _matches(row: dict[str, Any], reason: str) -> bool:
    rules = {e.get("rule") for e in row["_errors"] or []}
    return reason in rules or reason in (row["_reason"] or "")


def _replay_groups(
    src: _Source, rows: list[dict[str, Any]], done: set[str]
) -> tuple[list[FileReplay], list[pa.Table], Counter[str]]:
    """Each landing file's quarantined records (and the stream's) validated again."""
    groups: dict[tuple[str | None, str | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["_source_file"], row["_file_hash"])].append(row)
    files: list[FileReplay] = []
    tables: list[pa.Table] = []
    failing: Counter[str] = Counter()
    for (name, sha), group in groups.items():
        report, found = _replay_group(src, name, sha, group, done)
        files.append(report)
        failing.update(found.failing)
        if found.bronze is not None and found.bronze.num_rows:
            tables.append(found.bronze)
    return files, tables, failing


def _replay_group(
    src: _Source, name: str | None, sha: str | None, group: list[dict[str, Any]], done: set[str]
) -> tuple[FileReplay, _Found]:
    scope = "file" if any(r["_scope"] == "file" for r in group) else "record"
    cand = _landing_file(src.files, name, sha) if src.files is not None and name and sha else None
    if cand is not None:
        assert sha is not None
        return _from_landing(src, cand, sha, scope, group, done)
    if scope == "file":
        gone = "its landing file is gone or its content changed: a file rejected whole is replayed from it"
        return FileReplay(name, scope, len(group), 1, 0, 1, 0, "-", gone), _Found(failing=Counter({gone: 1}))
    if src.contract.kind != "event" or (src.files is not None and src.files.spec.format != "ndjson"):
        gone = "its landing file is gone or its content changed: CSV and Parquet records are replayed from it"
        n = len(group)
        return FileReplay(name, scope, n, n, 0, n, 0, "-", gone), _Found(failing=Counter({gone: n}))
    return _from_raw(src, name, sha, group, done)


def _landing_file(files: Any, name: str, sha: str) -> Any:
    """The landing file `name`, if it is still there with the content that was quarantined."""
    try:
        found, _ = files.discover([name])
    except Exception:  # a name that escapes the landing folder, or one no longer matching the pattern
        log.info("%s: cannot be read again from the landing folder", name, exc_info=True)
        return None
    if not found or _sha256(found[0].path) != sha:
        return None
    return found[0]


def _sha256(path: Path) -> str | None:
    from lakestack.ingest.readers import FileRejected, open_landing

    digest = hashlib.sha256()
    try:
        with open_landing(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileRejected:
        return None
    return digest.hexdigest()


def _from_landing(
    src: _Source, cand: Any, sha: str, scope: str, group: list[dict[str, Any]], done: set[str]
) -> tuple[FileReplay, _Found]:
    """A landing file read again as `ingest` reads it, with the current contract."""
    import pyarrow.compute as pc

    read = src.files._read_safely(cand, sha)  # the readers and validators of ingest, transition window included
    lines = sorted({r["_source_line"] for r in group if r["_source_line"] is not None})
    if read[0] == "rejected":
        why = f"the file is still rejected: {read[1]}"
        n = 1 if scope == "file" else len(lines)
        return FileReplay(cand.name, scope, len(group), n, 0, n, 0, "landing file", why), _Found(
            failing=Counter({why: n})
        )
    _, good, bad, rows_in = read
    if scope == "record":  # only the quarantined lines; the others landed when the file was ingested
        wanted = pa.array(lines, pa.int64())
        good = good.filter(pc.is_in(good["_source_line"], value_set=wanted))
        bad = bad.filter(pc.is_in(bad["_source_line"], value_set=wanted))
        rows_in = len(lines)
    keys = [f"{sha}#{line}" for line in good["_source_line"].to_pylist()]
    good = good.append_column("_replayed_from", pa.array(keys, pa.string()))
    fresh = [k not in done for k in keys]
    already = len(keys) - sum(fresh)
    good = good.filter(pa.array(fresh, pa.bool_()))
    failing = Counter(bad["_reason"].to_pylist())
    lost = rows_in - good.num_rows - already - bad.num_rows  # a line neither side holds now: never dropped silently
    if lost > 0:
        failing["the line was not found in the landing file again"] += lost
    report = FileReplay(
        cand.name, scope, len(group), rows_in, good.num_rows, bad.num_rows + max(lost, 0), already, "landing file"
    )
    return report, _Found(good, failing)


def _from_raw(
    src: _Source, name: str | None, sha: str | None, group: list[dict[str, Any]], done: set[str]
) -> tuple[FileReplay, _Found]:
    """Records validated from their `_raw` JSON (streams; NDJSON files no longer in the landing folder)."""
    keyed = [(_key(r, sha), r) for r in group]
    failing: Counter[str] = Counter()
    unkeyed = [r for k, r in keyed if k is None or r["_raw"] is None]
    if unkeyed:
        failing["no raw record or position was kept: it cannot be replayed"] += len(unkeyed)
    todo = [(k, r) for k, r in keyed if k is not None and r["_raw"] is not None and k not in done]
    already = sum(1 for k, r in keyed if k is not None and r["_raw"] is not None and k in done)
    if not todo:
        n = len(group)
        return FileReplay(name, "record", n, n, 0, n - already, already, "raw"), _Found(failing=failing)
    parts = src.versions.validate("json", [r["_raw"].encode() for _, r in todo], src.contract)
    tables = [
        _raw_rows(src, [todo[i] for i in outcome.valid_positions], outcome, version) for version, outcome in parts
    ]
    bronze = pa.concat_tables(tables) if tables else None
    from lakestack.ingest.rows import reason

    for _, issues in parts[0][1].invalid:
        failing[reason(issues)] += 1
    replayed = bronze.num_rows if bronze is not None else 0
    n = len(group)
    return FileReplay(name, "record", n, n, replayed, n - replayed - already, already, "raw"), _Found(bronze, failing)


def _key(row: dict[str, Any], sha: str | None) -> str | None:
    if row["_source_file"] is not None and sha is not None and row["_source_line"] is not None:
        return f"{sha}#{row['_source_line']}"
    return f"@{row['_source_position']}" if row["_source_position"] is not None else None


def _raw_rows(src: _Source, todo: list[tuple[str, dict[str, Any]]], outcome: Any, version: Any) -> pa.Table:
    from lakestack.contracts.arrow import as_version, records_to_arrow
    from lakestack.ingest.rows import repeat

    typed = records_to_arrow(outcome.valid, version)
    if version is not src.contract:
        typed = as_version(typed, version, src.contract)
    n = typed.num_rows
    rows = [r for _, r in todo]
    dates = [_file_date(src, r["_source_file"]) for r in rows]
    meta = {
        "_raw": pa.array([r["_raw"] for r in rows], pa.string()),
        "_ingested_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "_source": repeat(src.name, n, pa.string()),
        "_source_file": pa.array([r["_source_file"] for r in rows], pa.string()),
        "_source_line": pa.array([r["_source_line"] for r in rows], pa.int64()),
        "_file_date": pa.array(dates, pa.date32()),
        "_source_position": pa.array([r["_source_position"] for r in rows], pa.string()),
        "_run_id": pa.nulls(n, pa.string()),
        "_contract_version": repeat(version.version, n, pa.int32()),
        "_replayed_from": pa.array([k for k, _ in todo], pa.string()),
    }
    for column, values in meta.items():
        typed = typed.append_column(column, values)
    return typed


def _file_date(src: _Source, name: str | None) -> Any:
    if name is None or src.files is None:
        return None
    match = src.files.pattern.match_all([Path(name).name])[0]
    return match.file_date if match is not None else None


def _commit(bronze: Any, tables: list[pa.Table], run_id: str) -> int | None:
    """One append of every replayed row; each attempt leaves out rows whose key Bronze already holds
    (a rival replay, or this one's earlier attempt), so no record lands twice."""
    import pyarrow.compute as pc

    from lakestack.ingest.rows import stamp
    from lakestack.storage.replayed import REPLAYED_FROM, ensure_replayed_column, replayed_keys
    from lakestack.storage.warehouse import append

    data = stamp(pa.concat_tables(tables, promote_options="default"), run_id, datetime.now(UTC))
    keys = sorted(data[REPLAYED_FROM].to_pylist())
    batch = "replay:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]
    bronze = ensure_replayed_column(bronze)

    def attempt(table: Any) -> tuple[pa.Table, None] | None:
        held = replayed_keys(table)
        keep = data.filter(pc.invert(pc.is_in(data[REPLAYED_FROM], value_set=pa.array(sorted(held), pa.string()))))
        return (keep, None) if keep.num_rows else None

    failpoint("replay.before_commit")
    before = bronze.current_snapshot()
    bronze = append(bronze, None, run_id=run_id, batch_id=batch, attempt=attempt)
    failpoint("replay.after_commit")
    after = bronze.current_snapshot()
    if after is None or (before is not None and after.snapshot_id == before.snapshot_id):
        return None
    return int(after.snapshot_id)


def _report(lake: Any, job: Any, source: str, result: ReplayResult, snapshot: int | None) -> None:
    from lakestack.pipeline.dataset_io import table_io

    warehouse = lake.warehouse
    quarantine = f"quarantine.{source}"
    if warehouse.exists(quarantine):
        current = warehouse.load(quarantine).current_snapshot()
        sid = current.snapshot_id if current is not None else None
        job.dataset(table_io(warehouse, quarantine, "input", sid, rows=result.rows_in))
    job.dataset(
        table_io(
            warehouse,
            f"bronze.{source}",
            "output",
            snapshot,
            rows=result.replayed,
            quarantined=result.still_failing,
        )
    )


def _with_failing(result: ReplayResult, failing: Counter[str]) -> ReplayResult:
    return replace(result, failing=tuple(failing.most_common()))


def _with_snapshot(result: ReplayResult, snapshot: int | None) -> ReplayResult:
    return replace(result, snapshot_id=snapshot)


def _timed(result: ReplayResult, started: float) -> ReplayResult:
    return replace(result, duration_s=time.perf_counter() - started)


def check_source(known: list[str], source: str) -> None:
    """UsageError (exit 2) naming the sources when `source` is not one."""
    if source not in known:
        raise UsageError(f"unknown source '{source}' (sources: {', '.join(known) or 'none'})")

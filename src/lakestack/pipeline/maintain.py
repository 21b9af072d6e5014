"""Table maintenance across the lake: what `lakestack maintain` does, table by table.

For each table, in this order: retention of `_lakestack` history tables (old rows deleted),
compaction (small files bin-packed per partition into one ``replace`` commit), manifest rewrite,
snapshot expiry (keeping what checkpoints, other tables' checkpoints and the time-travel window
need; `storage/expiry.py`), then orphan-file removal (older than a safety age, referenced by
nothing live). The pyiceberg work is in `storage/`; this module decides what each table needs
from the project: which Silver datasets read a Bronze table (only what they have read may be
compacted), which snapshots other tables' checkpoints name, how long HTTP batch ids are kept.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

# `_lakestack` tables whose rows are history, with the column that dates a row.
HISTORY_COLUMNS = {
    "_lakestack.runs": "started_at",
    "_lakestack.check_results": "evaluated_at",
    "_lakestack.check_failures": "evaluated_at",
    "_lakestack.sla_results": "evaluated_at",
}
LONE_FILES_ADVICE = 30  # a day-partitioned table with this many one-small-file partitions gets advice


@dataclass(frozen=True, slots=True)
class Settings:
    """The environment's `maintenance:` block in seconds and bytes."""

    retention_s: float = 7 * 86400
    keep_last: int = 1
    target_bytes: int = 128 * 1024 * 1024
    orphan_min_age_s: float = 86400
    history_s: float = 90 * 86400  # inf (`off`): history rows are kept for ever


@dataclass(slots=True)
class TableReport:
    """What maintenance did to one table (or, dry, would do)."""

    table: str
    before: Any  # storage.maintenance.Footprint
    after: Any = None
    compacted_files: int = 0
    written_files: int = 0
    manifests_before: int = 0
    manifests_after: int = 0
    expired: int = 0
    kept: list[tuple[int, str]] = field(default_factory=list)
    refused: str | None = None
    deleted_files: int = 0
    deleted_bytes: int = 0
    orphans: int = 0
    orphan_bytes: int = 0
    history_rows: int = 0
    notes: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)  # step → seconds
    seconds: float = 0.0


class Maintainer:
    """Maintains the tables of one lake; `run_id` goes into every commit's summary."""

    def __init__(self, lake: Any, settings: Settings, run_id: str, *, dry_run: bool = False) -> None:
        self.lake = lake
        self.warehouse = lake.warehouse
        self.settings = settings
        self.run_id = run_id
        self.dry_run = dry_run
        self.now = datetime.now(UTC)
        self._pins: dict[str, dict[int, str]] | None = None

    def table(self, identifier: str, progress: Callable[[str], None] | None = None) -> TableReport:
        """Maintain one table."""
        from lakestack.storage.maintenance import footprint

        started = time.perf_counter()
        table = self.warehouse.load(identifier)
        report = TableReport(identifier, footprint(table))
        steps: list[tuple[str, Callable[[Any, str, TableReport], Any]]] = [
            ("compact", self._compact),
            ("manifests", self._manifests),
            ("expire", self._expire),
            ("orphans", self._orphans),
        ]
        if identifier in HISTORY_COLUMNS and math.isfinite(self.settings.history_s):
            steps.insert(0, ("history", self._history))
        for name, run in steps:
            if progress is not None:
                progress(name)
            t0 = time.perf_counter()
            table = run(table, identifier, report)
            report.stages[name] = time.perf_counter() - t0
        report.after = self._after(table, report)
        report.seconds = time.perf_counter() - started
        return report

    # -- steps -------------------------------------------------------------------------------------
    def _history(self, table: Any, identifier: str, report: TableReport) -> Any:
        from lakestack.storage.maintenance import delete_older

        before = self.now - timedelta(seconds=self.settings.history_s)
        report.history_rows = delete_older(
            table,
            HISTORY_COLUMNS[identifier],
            before,
            run_id=self.run_id,
            batch_id=f"maintain:{self.run_id}:history",
            dry_run=self.dry_run,
        )
        return table.refresh()

    def _compact(self, table: Any, identifier: str, report: TableReport) -> Any:
        from lakestack.storage.maintenance import compact, plan_compaction

        eligible = self._eligible(table, identifier)
        plan = plan_compaction(table, self.settings.target_bytes, eligible)
        if plan.skipped:
            report.notes.append(f"not compacted: {plan.skipped}")
        if plan.lone_small >= LONE_FILES_ADVICE and not plan.bins:
            report.notes.append(
                f"{plan.lone_small:,} partitions hold one small file each: compaction cannot merge across "
                "partitions; a coarser partition (or none) would make this table a few files"
            )
        if self.dry_run:
            report.compacted_files, report.written_files = plan.files, len(plan.bins)
            return table
        table, done = compact(
            table,
            self.settings.target_bytes,
            run_id=self.run_id,
            batch_id=f"maintain:{self.run_id}:compact:{identifier}",
            eligible=eligible,
        )
        report.compacted_files, report.written_files = done.removed, max(done.added, 0)
        return table

    def _manifests(self, table: Any, _identifier: str, report: TableReport) -> Any:
        from lakestack.storage.maintenance import manifests_to_rewrite, rewrite_manifests

        report.manifests_before, report.manifests_after = manifests_to_rewrite(table)
        if self.dry_run or report.manifests_after >= report.manifests_before:
            return table
        table, _done = rewrite_manifests(table, run_id=self.run_id, batch_id=f"maintain:{self.run_id}:manifests")
        return table

    def _expire(self, table: Any, identifier: str, report: TableReport) -> Any:
        from lakestack.storage.expiry import expire, plan_expiry

        if not math.isfinite(self.settings.retention_s):
            return table  # snapshot_retention: off
        plan = plan_expiry(
            table,
            now_ms=int(time.time() * 1000),
            retention_ms=int(self.settings.retention_s * 1000),
            keep_last=self.settings.keep_last,
            pinned=self.pins().get(identifier, {}),
        )
        report.expired, report.kept, report.refused = len(plan.expire), list(plan.kept), plan.refused
        if self.dry_run:
            return table
        table, deleted = expire(table, plan)
        report.deleted_files, report.deleted_bytes = deleted.files, deleted.bytes
        return table

    def _orphans(self, table: Any, identifier: str, report: TableReport) -> Any:
        from lakestack.storage.expiry import CheckpointUnreadable, delete_files, find_orphans

        if not math.isfinite(self.settings.orphan_min_age_s):
            return table  # orphan_min_age: off
        nested = [
            self.warehouse.load(other).location()
            for other in self.warehouse.tables()
            if other != identifier and _under(self.warehouse.load(other).location(), table.location())
        ]
        try:
            found = find_orphans(
                table,
                now_ms=int(time.time() * 1000),
                min_age_ms=int(self.settings.orphan_min_age_s * 1000),
                nested=nested,
            )
        except CheckpointUnreadable as exc:
            report.notes.append(f"orphan removal refused: {exc}")
            return table
        report.orphans, report.orphan_bytes = len(found), sum(found.values())
        if found and not self.dry_run:
            deleted = delete_files(table, found)
            report.orphans, report.orphan_bytes = deleted.files, deleted.bytes
        return table

    def _after(self, table: Any, report: TableReport) -> Any:
        from dataclasses import replace

        from lakestack.storage.maintenance import footprint

        if not self.dry_run:
            return footprint(table.refresh())
        before = report.before
        commits = (report.compacted_files > 0) + (report.manifests_after < report.manifests_before)
        return replace(
            before,
            files=before.files - report.compacted_files + report.written_files,
            snapshots=before.snapshots - report.expired + commits,
            manifests=min(before.manifests, report.manifests_after or before.manifests),
        )

    # -- what the project knows --------------------------------------------------------------------
    def pins(self) -> dict[str, dict[int, str]]:
        """table → {snapshot id: why} that other tables' checkpoints name and their readers need: a
        Gold model's upstream snapshots (an incremental build compares files with them), a Silver
        checkpoint's Bronze snapshot when it kept no sequence number. Expiry keeps them."""
        if self._pins is not None:
            return self._pins
        from lakestack.storage.warehouse import last_checkpoint

        pins: dict[str, dict[int, str]] = {}
        for identifier in self.warehouse.tables():
            if not identifier.startswith(("silver.", "gold.")):
                continue
            checkpoint = last_checkpoint(self.warehouse.load(identifier)) or {}
            named = {
                **checkpoint.get("upstream", {}),
                **{k: v for k, v in checkpoint.items() if k.startswith("bronze.")},
            }
            for upstream, snapshot_id in named.items():
                if isinstance(snapshot_id, int):
                    pins.setdefault(upstream, {})[snapshot_id] = f"{identifier} reads on from it (its checkpoint)"
        self._pins = pins
        return pins

    def _eligible(self, table: Any, identifier: str) -> Callable[[int, int], bool] | None:
        """For Bronze: only files every Silver dataset of the source has read may be rewritten (a
        rewritten file keeps its data sequence number, so it is not new to an incremental reader,
        and must hold no row the reader has not had)."""
        from lakestack.storage.checkpoints import UpstreamSnapshots, read_checkpoint
        from lakestack.storage.maintenance import unread_snapshots

        if not identifier.startswith("bronze."):
            return None
        upto: list[int] = []  # the sequence numbers Silver datasets have read up to
        unread: set[int] = set()  # or, for a checkpoint without one, the snapshots they have not read
        for name, dataset in self.lake.project.config.datasets.items():
            silver = f"silver.{name}"
            if (
                dataset.layer != "silver"
                or f"bronze.{dataset.source or name}" != identifier
                or not self.warehouse.exists(silver)
            ):
                continue
            read = read_checkpoint(self.warehouse.load(silver), UpstreamSnapshots)
            since, sequence = read.snapshots.get(identifier), read.sequences.get(identifier)
            if sequence is not None:
                upto.append(sequence)
            elif since is not None:
                unread |= unread_snapshots(table, since)
        ceiling = min(upto) if upto else None
        return lambda snapshot_id, sequence: (ceiling is None or sequence <= ceiling) and snapshot_id not in unread

    def _upstream(self, identifier: str) -> Any:
        """What a Silver or Gold table's checkpoint says it read (`checkpoints.UpstreamSnapshots`)."""
        from lakestack.storage.checkpoints import UpstreamSnapshots, read_checkpoint

        return read_checkpoint(self.warehouse.load(identifier), UpstreamSnapshots)


def _under(location: str, parent: str) -> bool:
    return location.rstrip("/").startswith(parent.rstrip("/") + "/")


def settings_from(env: Any) -> Settings:
    """The environment's `maintenance:` block, or the defaults."""
    block = env.maintenance
    return Settings(
        retention_s=_seconds(block.snapshot_retention),
        keep_last=block.keep_last,
        target_bytes=block.target_file_mb * 1024 * 1024,
        orphan_min_age_s=_seconds(block.orphan_min_age),
        history_s=_seconds(block.history_retention),
    )


def _seconds(text: str) -> float:
    """A duration; `off` / `never` is for ever (nothing expires, no orphan is old enough)."""
    from lakestack.config import duration_seconds

    return float("inf") if str(text).strip().lower() in ("off", "never") else duration_seconds(text)


@dataclass(frozen=True, slots=True)
class MaintainResult:
    """A `lakestack maintain` run: its id (None when dry) and a report per table."""

    run_id: str | None
    dry_run: bool
    tables: tuple[TableReport, ...]


def maintain(
    lake: Any,
    tables: list[str] | None,
    *,
    dry_run: bool,
    step: Callable[[str, str], Callable[[], None]] | None,
    top: Callable[[str, str], Any],
) -> MaintainResult:
    """Maintain `tables` (all by default; history tables last), each as a `maintain` job of one run
    (`top`: the Lake's top-level run). A dry run reports without a run record."""
    from lakestack.pipeline.runs import new_run_id

    names = _tables(lake, tables)
    run_id = new_run_id()
    maintainer = Maintainer(lake, settings_from(lake.env), run_id, dry_run=dry_run)
    reports: list[TableReport] = []
    if dry_run:
        for name in names:
            reports.append(_one(maintainer, name, step))
        return MaintainResult(None, True, tuple(reports))
    with top("maintain", run_id) as run:
        for name in names:
            with lake.events.job("maintain", f"maintain.{name}", parent=run.run) as job:
                report = _one(maintainer, name, step)
                _record(job, report)
                reports.append(report)
    return MaintainResult(run_id, False, tuple(reports))


def _one(maintainer: Maintainer, name: str, step: Callable[[str, str], Callable[[], None]] | None) -> TableReport:
    done = step("maintain", name) if step is not None else None
    report = maintainer.table(name)
    if done is not None:
        done()
    return report


def _tables(lake: Any, names: list[str] | None) -> list[str]:
    from lakestack.errors import UsageError

    existing = lake.warehouse.tables()
    for name in names or []:
        if name not in existing:
            raise UsageError(f"unknown table '{name}' (tables: {', '.join(existing) or 'none yet'})")
    chosen = names or existing
    return sorted(chosen, key=lambda t: (t.startswith("_lakestack."), t))


def _record(job: Any, report: TableReport) -> None:
    """What the run record keeps of a table's maintenance: the table before and after, and the figures."""
    from lakestack.pipeline.events import DatasetIO

    after = report.after
    job.dataset(DatasetIO(report.table, "input", rows=report.before.records, bytes=report.before.bytes))
    job.dataset(DatasetIO(report.table, "output", after.snapshot_id, rows=after.records, bytes=after.bytes))
    job.progress(**figures(report))
    for stage, seconds in report.stages.items():
        job.stage(stage, seconds)
    if report.refused:
        log.warning("%s: snapshot expiry refused: %s", report.table, report.refused)


def figures(report: TableReport) -> dict[str, Any]:
    """A table's maintenance as plain values (run records, `--json`)."""
    before, after = report.before, report.after
    return {
        "table": report.table,
        "files_before": before.files,
        "files_after": after.files,
        "bytes_before": before.bytes,
        "bytes_after": after.bytes,
        "snapshots_before": before.snapshots,
        "snapshots_after": after.snapshots,
        "manifests_before": before.manifests,
        "manifests_after": after.manifests,
        "compacted_files": report.compacted_files,
        "written_files": report.written_files,
        "expired_snapshots": report.expired,
        "kept_snapshots": [{"snapshot_id": s, "reason": why} for s, why in report.kept],
        "expiry_refused": report.refused,
        "deleted_files": report.deleted_files,
        "deleted_bytes": report.deleted_bytes,
        "orphans_removed": report.orphans,
        "orphan_bytes": report.orphan_bytes,
        "history_rows_deleted": report.history_rows,
        "notes": list(report.notes),
        "seconds": round(report.seconds, 3),
    }

"""Backfill: re-derive a Silver dataset for an event-time range (or all of it) from Bronze.

The same promotion code as `promote` (normalisation, latest-wins by key) runs over every Bronze
row up to Silver's checkpoint; the winners whose event day lies in the range replace Silver's day
partitions in the range, in one snapshot that removes exactly those partitions' files. Partitions
outside the range are not touched, and Silver's checkpoint is carried unchanged (Bronze rows after
it are still the next `promote`'s). With `--downstream`, the Gold models reading the dataset build
next: an incremental model rebuilds the days whose Silver files the backfill replaced, the others
rebuild fully; `--all` rebuilds Silver and then Gold from scratch.

A key whose winning version lies outside the range is left where Silver has it: a range backfill
re-derives the range, not the keys that moved across its edge (`--all` does).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlglot.expressions as exp

from lakestack.errors import UsageError
from lakestack.failpoints import failpoint
from lakestack.pipeline.silver import SilverModel, _latest, _ordinal, normalized_columns

log = logging.getLogger(__name__)
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """One dataset's backfill: what it replaced and with what."""

    dataset: str
    start: date | None  # None on both sides: everything (`--all`)
    end: date | None
    rows_removed: int = 0  # Silver rows in the files the commit replaced
    rows_written: int = 0
    partitions: int = 0  # day partitions rewritten
    files_removed: int = 0
    snapshot_id: int | None = None  # None: nothing in the range, nothing rewritten
    bronze_snapshot: int | None = None  # the Bronze snapshot it read up to (Silver's checkpoint)
    duration_s: float = 0.0
    built: tuple[Any, ...] = ()  # the downstream Gold builds
    blocked: tuple[str, ...] = ()  # datasets whose gate failed after the backfill

    @property
    def changed(self) -> bool:
        return self.snapshot_id is not None


def parse_range(start: str | None, end: str | None, everything: bool) -> tuple[date | None, date | None]:
    """`--from` / `--to` (ISO dates, either side open) or `--all`."""
    if everything and (start or end):
        raise UsageError("backfill: give --from/--to or --all, not both")
    if not everything and not (start or end):
        raise UsageError("backfill: give a range with --from DATE --to DATE, or --all to rebuild from scratch")
    first, last = _date("--from", start), _date("--to", end)
    if first and last and first > last:
        raise UsageError(f"backfill: --from {first} is after --to {last}")
    return first, last


def _date(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"backfill: {option} {text!r} is not a date (YYYY-MM-DD)") from None


class SilverBackfill:
    """One backfill of one Silver model, on an engine of its own (no project SQL runs)."""

    def __init__(self, model: SilverModel, warehouse: Any, run_id: str, environment: Any = None) -> None:
        from lakestack.engine import create_engine

        self.model = model
        self.warehouse = warehouse
        self.run_id = run_id
        self.engine = create_engine(environment, purpose="backfill")

    def run(self, start: date | None, end: date | None) -> BackfillResult:
        started = time.perf_counter()
        try:
            return self._run(start, end, started)
        finally:
            self.engine.close()

    def _run(self, start: date | None, end: date | None, started: float) -> BackfillResult:
        from lakestack.storage.checkpoints import UpstreamSnapshots, read_checkpoint
        from lakestack.storage.warehouse import replace_files

        model, ranged = self.model, start is not None or end is not None
        column = model.partition_by or model.contract.event_time
        if ranged and column is None:
            raise UsageError(f"{model.identifier} has no event-time column to take a range of; use --all")
        from lakestack.pipeline.evolution import evolve_silver

        evolve_silver(self.warehouse, model)  # Bronze and Silver on the contract (or a clear refusal)
        silver = self.warehouse.silver_table(model)
        checkpoint = read_checkpoint(silver, UpstreamSnapshots)
        upstream = f"bronze.{model.source}"
        since = checkpoint.snapshots.get(upstream)
        if since is None:
            raise UsageError(f"{model.identifier} has not been promoted yet: run 'lakestack promote {model.name}'")
        within = _within(column, start, end) if ranged and column is not None else None
        written = self._winners(upstream, since, within)
        removed, kept = self._replaced(silver, within, start, end)
        result = BackfillResult(model.identifier, start, end, bronze_snapshot=since)
        if not removed and not written.num_rows:
            return _done(result, started)
        import pyarrow as pa

        data = pa.concat_tables([kept, written], promote_options="default") if kept is not None else written
        failpoint("backfill.before_commit")
        batch = f"backfill:{model.name}:{self.run_id}"
        silver = replace_files(silver, removed, data, run_id=self.run_id, batch_id=batch, checkpoint=checkpoint)
        failpoint("backfill.after_commit")
        days = {_ordinal(f.partition[0]) for f in removed if model.partition_by and f.partition[0] is not None}
        return _done(
            BackfillResult(
                model.identifier,
                start,
                end,
                rows_removed=sum(int(f.record_count) for f in removed),
                rows_written=data.num_rows,
                partitions=len(days | self._days(written)) if model.partition_by else 1,
                files_removed=len(removed),
                snapshot_id=silver.current_snapshot().snapshot_id,
                bronze_snapshot=since,
            ),
            started,
        )

    def _winners(self, upstream: str, since: int, within: exp.Expression | None) -> Any:
        """The winning version of every key over Bronze up to `since`, those in the range."""
        bronze = self.warehouse.load(upstream)
        paths = [t.file.file_path for t in bronze.scan(snapshot_id=since).plan_files()]
        run = exp.alias_(exp.Literal.string(self.run_id), "_run_id", quoted=True)
        self.engine.register_files("bronze_upto", paths, bronze)  # by field id once evolved
        source = exp.to_table("bronze_upto")
        rows = exp.select(*normalized_columns(self.model)).from_(source).subquery("b")
        winners = exp.select("*", run).from_(_latest(rows, self.model).subquery("w"))
        if within is not None:
            winners = winners.where(within)
        return self.engine.fetch(winners)

    def _replaced(
        self, silver: Any, within: exp.Expression | None, start: date | None, end: date | None
    ) -> tuple[list[Any], Any]:
        """Silver's data files the commit removes, and the rows of them outside the range it keeps
        (only an unpartitioned table's files hold both)."""
        files = [t.file for t in silver.scan().plan_files()]
        if within is None:
            return files, None
        if self.model.partition_by is not None:
            first = (start - _EPOCH).days if start else None
            last = (end - _EPOCH).days if end else None
            return [f for f in files if _day_in(f.partition[0], first, last)], None
        if not files:
            return [], None
        self.engine.register_files("silver_files", [f.file_path for f in files], silver)
        outside = exp.select("*").from_("silver_files").where(exp.not_(within))
        return files, self.engine.fetch(outside)

    def _days(self, rows: Any) -> set[int]:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.model.partition_by
        if column is None or not rows.num_rows:
            return set()
        days = pc.unique(pc.cast(rows[column], pa.date32())).to_pylist()
        return {(d - _EPOCH).days for d in days if d is not None}


def _within(column: str, start: date | None, end: date | None) -> exp.Expression:
    """`CAST(column AS DATE)` within [start, end] (either side open); a NULL is outside."""
    day = exp.Cast(this=exp.column(column, quoted=True), to=exp.DataType.build("date"))
    parts: list[exp.Expression] = []
    if start is not None:
        parts.append(exp.GTE(this=day, expression=exp.cast(exp.Literal.string(start.isoformat()), "date")))
    if end is not None:
        parts.append(exp.LTE(this=day.copy(), expression=exp.cast(exp.Literal.string(end.isoformat()), "date")))
    return exp.Coalesce(this=exp.and_(*parts), expressions=[exp.false()])


def _day_in(value: Any, first: int | None, last: int | None) -> bool:
    if value is None:
        return False
    day = _ordinal(value)
    return (first is None or day >= first) and (last is None or day <= last)


def _done(result: BackfillResult, started: float) -> BackfillResult:
    from dataclasses import replace

    return replace(result, duration_s=time.perf_counter() - started)


def run_backfill(
    lake: Any, dataset: str, start: date | None, end: date | None, *, downstream: bool, run_id: str
) -> BackfillResult:
    """The backfill as a `backfill` job of a run (Lake.backfill holds the project lock): Silver,
    its gate (checks, `drop` ones quarantining again), then the Gold models downstream if asked."""
    from dataclasses import replace

    from lakestack.pipeline.events import DatasetIO
    from lakestack.pipeline.silver import model_from_config

    name = dataset.removeprefix("silver.")
    model = model_from_config(lake.silver_datasets([name])[0], lake.project)
    if not lake.warehouse.exists(model.identifier):
        raise UsageError(f"{model.identifier} does not exist yet: run 'lakestack promote {name}' first")
    with lake._top("backfill", run_id) as top:
        with lake.events.job("backfill", f"backfill.{name}", parent=top.run) as job:
            result = SilverBackfill(model, lake.warehouse, run_id, lake.env).run(start, end)
            job.dataset(DatasetIO(f"bronze.{model.source}", "input", result.bronze_snapshot))
            job.dataset(DatasetIO(model.identifier, "output", result.snapshot_id, rows=result.rows_written))
            job.stage("backfill", result.duration_s)
        blocked = [model.identifier] if result.changed and _gate_fails(lake, top, model, run_id) else []
        built: list[Any] = []
        if downstream and result.changed and not blocked:
            models = downstream_models(lake.gold_models(), model.identifier)
            everything = start is None and end is None
            built = lake.build(models, full_refresh=everything, run_id=run_id) if models else []
            blocked += [b.dataset for b in built if b.mode == "blocked"]
        if blocked and not top.failed:
            top.fail(f"quality gate failed: blocked {', '.join(blocked)}", blocked=True)
    return replace(result, built=tuple(built), blocked=tuple(blocked))


def _gate_fails(lake: Any, top: Any, model: SilverModel, run_id: str) -> bool:
    """The backfilled dataset's checks, as after a promotion: `drop` checks move failing rows out."""
    from lakestack.pipeline.quality import Evaluation, drop_failing_rows

    checks = lake.dataset_checks().get(model.identifier)
    if not checks:
        return False

    def drop(found: list[Any]) -> int:
        return drop_failing_rows(lake.warehouse, model, checks, found, run_id, lake.env)

    found = lake._evaluate(
        top, Evaluation(lake.warehouse, run_id, environment=lake.env), model.identifier, checks, drop=drop
    )
    return any(r.blocks for r in found)


def downstream_models(models: dict[str, Any], identifier: str) -> list[str]:
    """Gold models that read `identifier`, directly or through other models, in build order."""
    from lakestack.pipeline.gold import build_order

    reached, out = {identifier}, []
    for model in build_order(models):
        if any(u in reached for u in model.upstream):
            reached.add(model.identifier)
            out.append(model.name)
    return out

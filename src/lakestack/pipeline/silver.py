"""Silver promotion: new Bronze rows → dedup by key (latest wins) → MERGE into `silver.<dataset>`.

The MERGE rewrites only the day partitions the incoming keys touch. It reads those partitions'
data files, lets the environment's engine (`lakestack.engine`) pick the winning version of every
key among the stored and the incoming rows, and commits one snapshot that removes exactly the
files it read and adds the merged rows (written by the engine inside storage's transaction).
The snapshot carries the Bronze snapshot id it has read up to, so the next promotion reads only
what Bronze committed after it, and a promotion with nothing new makes no snapshot.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlglot.expressions as exp

from lakestack.contracts.model import Contract
from lakestack.errors import CommitConflictError, RunError
from lakestack.failpoints import failpoint
from lakestack.storage.checkpoints import UpstreamSnapshots, read_checkpoint

log = logging.getLogger(__name__)

LINEAGE = ("_ingested_at", "_source_file", "_source_line")
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class SilverModel:
    """A Silver dataset derived from one Bronze source."""

    name: str
    source: str
    contract: Contract
    key: tuple[str, ...]
    order_by: tuple[str, ...]
    partition_by: str | None  # None: unpartitioned (small dimensions); every merge rewrites the table
    trim: bool = True
    lower: tuple[str, ...] = ()
    upper: tuple[str, ...] = ()
    keys_change_partition: bool = True

    @property
    def identifier(self) -> str:
        return f"silver.{self.name}"

    @property
    def ordering(self) -> tuple[str, ...]:
        """Latest wins: the declared order, then ingestion time and file position break ties."""
        return tuple(dict.fromkeys((*self.order_by, *LINEAGE)))


@dataclass(frozen=True, slots=True)
class PromoteResult:
    dataset: str
    bronze_rows: int = 0
    inserted: int = 0
    updated: int = 0
    partitions: int = 0
    files_removed: int = 0
    snapshot_id: int | None = None
    duration_s: float = 0.0

    @property
    def changed(self) -> bool:
        return self.snapshot_id is not None


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def normalized_columns(model: SilverModel) -> list[Any]:
    """The Silver columns computed from a Bronze row: cleaned values plus lineage columns."""
    out: list[Any] = []
    for field in model.contract.fields:
        value: Any = _col(field.name)
        if field.type == "string":
            if model.trim:
                value = exp.Trim(this=value)
            if field.name in model.lower:
                value = exp.Lower(this=value)
            elif field.name in model.upper:
                value = exp.Upper(this=value)
        out.append(exp.alias_(value, field.name, quoted=True))
    return out + [_col(c) for c in LINEAGE]


def _latest(source: exp.Expression, model: SilverModel, tie_break: list[exp.Ordered] | None = None) -> exp.Select:
    """Rows of `source` that win for their key (row_number() = 1 by the model's ordering)."""
    order = [*[exp.Ordered(this=_col(c), desc=True, nulls_first=False) for c in model.ordering], *(tie_break or [])]
    window = exp.Window(
        this=exp.RowNumber(), partition_by=[_col(k) for k in model.key], order=exp.Order(expressions=order)
    )
    ranked = exp.select("*", exp.alias_(window, "_rank")).from_(source)
    return (
        exp.select(exp.Star(except_=[exp.column("_rank")]))
        .from_(ranked.subquery("ranked"))
        .where(exp.EQ(this=exp.column("_rank"), expression=exp.Literal.number(1)))
    )


class SilverPromotion:
    """One promotion of one Silver model, on the environment's engine, against the warehouse."""

    def __init__(self, model: SilverModel, warehouse: Any, run_id: str, environment: Any = None) -> None:
        from lakestack.engine import create_engine

        self.model = model
        self.warehouse = warehouse
        self.run_id = run_id
        self.engine = create_engine(environment, purpose="silver")
        from lakestack.pipeline.evolution import evolve_silver

        evolve_silver(warehouse, model)  # a newer contract version (checked when Bronze ingested it)

    def run(self, retries: int = 5) -> PromoteResult:
        """Promote what Bronze committed since Silver's checkpoint (retried from a fresh read on conflict)."""
        return self._retrying(self._from_bronze, retries)

    def merge_arrow(self, rows: Any, batch_id: str, retries: int = 5) -> PromoteResult:
        """MERGE an Arrow table of Bronze-shaped rows (contract columns + lineage) into Silver."""
        self.engine.register_arrow("arrow_in", rows)
        return self._retrying(lambda t0: self._merge_source(t0, exp.to_table("arrow_in"), None, batch_id), retries)

    def _retrying(self, attempt_fn: Any, retries: int) -> PromoteResult:
        started = time.perf_counter()
        try:
            for attempt in range(retries + 1):
                try:
                    result: PromoteResult = attempt_fn(started)
                    return result
                except CommitConflictError:
                    if attempt == retries:
                        raise
                    log.info("%s changed while merging; re-reading (attempt %d)", self.model.identifier, attempt + 2)
            raise AssertionError("unreachable")
        finally:
            self.engine.close()

    def _from_bronze(self, started: float) -> PromoteResult:
        from lakestack.storage.warehouse import files_added_after

        upstream = f"bronze.{self.model.source}"
        bronze = self.warehouse.load(upstream)
        silver = self.warehouse.silver_table(self.model)
        checkpoint = read_checkpoint(silver, UpstreamSnapshots)
        since = checkpoint.snapshots.get(upstream)
        paths, current = files_added_after(bronze, since, checkpoint.sequences.get(upstream))
        if current is None or current == since:
            return PromoteResult(self.model.identifier, duration_s=time.perf_counter() - started)
        # No paths: Bronze moved on without new rows (an empty batch); the checkpoint advances only.
        self.engine.register_files("bronze_new", paths, bronze)  # by field id once evolved
        source = exp.to_table("bronze_new")
        sequence = int(bronze.current_snapshot().sequence_number or 0)  # still valid once `current` is expired
        new_checkpoint = UpstreamSnapshots(
            {**checkpoint.snapshots, upstream: current}, {**checkpoint.sequences, upstream: sequence}
        )
        return self._merge_source(started, source, new_checkpoint, f"silver:{self.model.name}:{since}:{current}")

    def _merge_source(
        self, started: float, source: exp.Expression, checkpoint: UpstreamSnapshots | None, batch_id: str
    ) -> PromoteResult:
        from lakestack.storage.warehouse import replace_files

        silver = self.warehouse.silver_table(self.model)
        engine = self.engine
        incoming = exp.select(*normalized_columns(self.model)).from_(source).subquery("b")
        engine.materialize("incoming", _latest(incoming, self.model))
        bronze_rows = int(engine.rows(_count("incoming"))[0][0])
        touched, removed = self._touched_files(silver)
        if removed:
            engine.register_files("stored", [f.file_path for f in removed], silver)
        merged, inserted, updated = self._merge(stored=bool(removed))
        failpoint("silver.before_commit")
        silver = replace_files(silver, removed, merged, run_id=self.run_id, batch_id=batch_id, checkpoint=checkpoint)
        failpoint("silver.after_commit")
        return PromoteResult(
            self.model.identifier,
            bronze_rows,
            inserted,
            updated,
            len(touched),
            len(removed),
            silver.current_snapshot().snapshot_id,
            time.perf_counter() - started,
        )

    def _touched_files(self, silver: Any) -> tuple[set[int], list[Any]]:
        """Day partitions the incoming keys touch, and the data files in them."""
        if self.model.partition_by is None:
            return {0}, [t.file for t in silver.scan().plan_files()]
        part = _col(self.model.partition_by)
        days_sql = exp.select(
            exp.Distinct(
                expressions=[
                    exp.Sub(
                        this=exp.Cast(this=part, to=exp.DataType.build("date")),
                        expression=exp.Cast(this=exp.Literal.string("1970-01-01"), to=exp.DataType.build("date")),
                    )
                ]
            )
        ).from_("incoming")
        days = {int(r[0]) for r in self.engine.rows(days_sql) if r[0] is not None}
        tasks = [t.file for t in silver.scan().plan_files()]
        by_day = [(f, _ordinal(f.partition[0])) for f in tasks]
        removed = [f for f, day in by_day if day in days]
        if self.model.keys_change_partition:
            elsewhere = [f for f, day in by_day if day not in days]
            moved = self._files_holding_incoming_keys(elsewhere)
            days |= {day for f, day in by_day if f.file_path in moved}
            removed = [f for f, day in by_day if day in days]
        return days, removed

    def _files_holding_incoming_keys(self, files: list[Any]) -> set[str]:
        """Files outside the touched partitions that hold an incoming key (its partition moved)."""
        return self.engine.files_holding([f.file_path for f in files], list(self.model.key), "incoming")

    def _merge(self, stored: bool) -> tuple[Any, int, int]:
        """The merged rows of the touched partitions (an engine writer for storage's commit), and
        how many keys were inserted / updated. `stored`: the relation `stored` holds the touched files.

        Only keys that are both stored and incoming are ranked, and of their stored rows only the key
        and ordering columns are read (the Parquet scan skips the rest): the incoming rows that win are
        kept whole; the stored rows of every other key, including a key whose stored row won, pass
        through an anti-join. The sort works on the change, not on the touched partitions.
        """
        engine = self.engine
        run = exp.alias_(exp.Literal.string(self.run_id), "_run_id", quoted=True)
        if not stored:
            incoming_rows = int(engine.rows(_count("incoming"))[0][0])
            return engine.writer(exp.select("*", run).from_("incoming")), incoming_rows, 0
        keys: list[Any] = [exp.to_identifier(k, quoted=True) for k in self.model.key]
        ranked_by = [_col(c) for c in dict.fromkeys((*self.model.key, *self.model.ordering))]
        contested = exp.select(*ranked_by).from_("stored").join("incoming", using=keys, join_type="semi")
        engine.materialize("contested", contested)
        both = exp.Union(
            this=exp.select("*", exp.alias_(exp.Literal.number(1), "_incoming"), run).from_("incoming"),
            expression=exp.select("*", exp.alias_(exp.Literal.number(0), "_incoming")).from_("contested"),
            distinct=False,
            by_name=True,  # a contested row has only the columns that rank it: the others are NULL
        )
        # A full tie (the same Bronze row promoted again) keeps the stored row, so nothing changes.
        winners = _latest(both.subquery("both"), self.model, [exp.Ordered(this=exp.column("_incoming"), desc=False)])
        won = (
            exp.select(exp.Star(except_=[exp.column("_incoming")]))
            .from_(winners.subquery("winners"))
            .where(exp.column("_incoming").eq(1))
        )
        engine.materialize("won", won)  # the incoming rows that win their key
        counts = engine.rows(
            exp.select(_count("incoming").subquery(), _count("contested").subquery(), _count("won").subquery())
        )[0]
        incoming_keys, existing_keys, incoming_won = (int(v or 0) for v in counts)  # NULL over no rows
        inserted = incoming_keys - existing_keys
        kept = exp.select("*").from_("stored").join("won", using=keys, join_type="anti")
        merged = exp.Union(this=kept, expression=exp.select("*").from_("won"), distinct=False, by_name=True)
        return engine.writer(merged), inserted, incoming_won - inserted


def _count(relation: str) -> exp.Select:
    return exp.select(exp.Count(this=exp.Star())).from_(relation)


def model_from_config(name: str, project: Any) -> SilverModel:
    """A SilverModel from a `datasets:` entry of the project file (already checked at load)."""
    dataset = project.config.datasets[name]
    source = dataset.source or name
    contract = project.contract(source)
    lower = dataset.normalize.lower
    if lower is None:
        lower = [f.name for f in contract.fields if f.pii == "email"]
    partition = dataset.partition_by or contract.event_time
    if partition is None:
        raise RunError(f"silver dataset '{name}' has no partition column")
    partition_by = None if partition == "none" else partition
    return SilverModel(
        name=name,
        source=source,
        contract=contract,
        key=tuple(dataset.key or contract.key),
        order_by=tuple(dataset.order_by or ([contract.event_time] if contract.event_time else [])),
        partition_by=partition_by,
        trim=dataset.normalize.trim,
        lower=tuple(lower),
        upper=tuple(dataset.normalize.upper),
        keys_change_partition=dataset.keys_change_partition,
    )


def _ordinal(value: Any) -> int:
    """A day partition value as days since 1970-01-01 (pyiceberg gives an int or a date)."""
    return (value - _EPOCH).days if isinstance(value, date) else int(value)

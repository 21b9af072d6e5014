"""Publishing: the `publish:` blocks of `lakestack.yaml`, carried out through `lakestack.publish`.

Each dataset of a block is a `publish` job (run records, lineage with the database table as its
output). The dataset is read as the block's role (its masking, denied columns and row filters
apply: `pipeline/access.py`) at the snapshot current when the job starts, in Arrow batches through
the sandbox, and streamed into the target; memory follows the batch, not the table.

`lakestack_publish_state` in the target says which snapshot each table holds, with a digest of the
block's settings: the same snapshot and settings again is `unchanged` (nothing read or written);
changed settings (role, key, indexes, mode) republish in full with `replace`. An `incremental`
dataset whose previous snapshot is still in the table's history reads only the day partitions that
changed since it (`storage.warehouse.partitions_changed`); otherwise every row.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from lakestack.config import PROJECT_SQL_DIALECT, PublishTableConfig, PublishTargetConfig, locate
from lakestack.errors import ConfigError, UsageError
from lakestack.pipeline.events import DatasetIO, JobHandle

_EPOCH = date(1970, 1, 1)
Top = Callable[[str, str], AbstractContextManager[JobHandle]]


@dataclass(frozen=True, slots=True)
class Published:
    """What publishing one dataset to one table did."""

    target: str  # the block's name
    dataset: str  # gold.fact_sales
    table: str  # schema.table in the target
    mode: str  # replace | incremental (what was done: an incremental block's first publish replaces)
    status: str  # published | unchanged | skipped
    rows: int | None = None
    snapshot_id: int | None = None
    seconds: float = 0.0
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PublishResult:
    run_id: str
    tables: tuple[Published, ...]


def publish_limits() -> Any:
    from lakestack.engine.base import SqlLimits

    return SqlLimits(memory_limit="1GB", timeout_s=6 * 3600.0)


def run_publish(
    lake: Any,
    datasets: list[str] | None,
    *,
    run_id: str,
    top: Top,
    after_run: bool = False,
    blocked: frozenset[str] = frozenset(),
) -> PublishResult:
    """Publish the chosen datasets (`gold.x` or `x`; None: all) of every block. `after_run`: a
    `lakestack run`'s publish, where an `optional` target that cannot be reached is skipped."""
    plan = _plan(lake, datasets)
    out: list[Published] = []
    if not plan:
        return PublishResult(run_id, ())
    with top("publish", run_id) as run:
        for name, cfg, chosen in plan:
            out += _publish_target(lake, run, run_id, name, cfg, chosen, after_run, blocked)
    return PublishResult(run_id, tuple(out))


def _plan(lake: Any, datasets: list[str] | None) -> list[tuple[str, PublishTargetConfig, list[str]]]:
    config = lake.project.config
    known = {f"gold.{m}" for m in lake.gold_models()} | {f"silver.{d}" for d in lake.silver_datasets()}
    wanted = {d if "." in d else f"gold.{d}" for d in datasets or []}
    published = {d for cfg in config.publish.values() for d in cfg.datasets}
    for name in wanted - published:
        raise UsageError(f"{name} is in no publish block (published: {', '.join(sorted(published)) or 'none'})")
    plan = []
    for name, cfg in config.publish.items():
        for dataset in cfg.datasets:
            if dataset not in known:
                raise ConfigError(
                    f"{dataset} is not a dataset of this project (a Silver dataset or a Gold model)",
                    locate(config, "publish", name, "datasets", dataset),
                )
        chosen = [d for d in cfg.datasets if not wanted or d in wanted]
        if chosen:
            plan.append((name, cfg, chosen))
    return plan


def _publish_target(
    lake: Any,
    run: JobHandle,
    run_id: str,
    name: str,
    cfg: PublishTargetConfig,
    chosen: list[str],
    after_run: bool,
    blocked: frozenset[str],
) -> list[Published]:
    from lakestack.publish import TargetUnreachable, create_target

    def skipped(note: str) -> list[Published]:
        return [
            Published(name, d, _table_name(cfg, d, cfg.datasets[d]), cfg.datasets[d].mode, "skipped", note=note)
            for d in chosen
        ]

    try:
        url = cfg.url.resolve()
        target = create_target(cfg.kind, url, name)
    except (ConfigError, TargetUnreachable) as exc:
        if after_run and cfg.optional:
            return skipped(f"optional target not published: {exc}")
        raise
    out = []
    try:
        for dataset in chosen:
            if dataset in blocked:
                out += [
                    Published(
                        name,
                        dataset,
                        _table_name(cfg, dataset, cfg.datasets[dataset]),
                        cfg.datasets[dataset].mode,
                        "skipped",
                        note="its quality gate failed",
                    )
                ]
                continue
            out.append(_publish_one(lake, run, run_id, target, name, cfg, dataset))
    finally:
        target.close()
    return out


def _table_name(cfg: PublishTargetConfig, dataset: str, table: PublishTableConfig) -> str:
    name = table.table or dataset.partition(".")[2]
    return name if "." in name else f"{cfg.db_schema}.{name}"


def _publish_one(
    lake: Any, run: JobHandle, run_id: str, target: Any, name: str, cfg: PublishTargetConfig, dataset: str
) -> Published:
    from lakestack.pipeline.dataset_io import table_columns
    from lakestack.publish import StateRow

    tcfg = cfg.datasets[dataset]
    qualified = _table_name(cfg, dataset, tcfg)
    t0 = time.perf_counter()
    with lake.events.job("publish", f"publish.{name}.{dataset}", parent=run.run) as job:
        if not lake.warehouse.exists(dataset) or lake.warehouse.load(dataset).current_snapshot() is None:
            return Published(name, dataset, qualified, tcfg.mode, "skipped", note="not built yet")
        if not lake.may_read(cfg.role, dataset):
            raise ConfigError(
                f"role '{cfg.role}' may not read {dataset}, so it cannot be published as that role",
                locate(lake.project.config, "publish", name, "role"),
            )
        table = lake.warehouse.load(dataset)
        snapshot_id = table.current_snapshot().snapshot_id
        spec = _spec(table, qualified, tcfg)
        digest = _digest(cfg, dataset, tcfg)
        job.dataset(DatasetIO(dataset, "input", snapshot_id, columns=table_columns(table)))
        state = target.state(spec)
        if state is not None and (state.snapshot_id, state.spec, state.dataset) == (snapshot_id, digest, dataset):
            return Published(name, dataset, qualified, tcfg.mode, "unchanged", 0, snapshot_id, time.perf_counter() - t0)
        incremental = (
            tcfg.mode == "incremental"
            and state is not None
            and (state.spec, state.dataset) == (digest, dataset)
            and target.table_exists(spec)
        )
        days = _changed_days(table, state.snapshot_id) if incremental and state is not None else None
        row = StateRow(dataset, snapshot_id, digest, cfg.role, run_id)
        with _read(lake, dataset, snapshot_id, cfg.role, spec.partition_column, days, table) as batches:
            rows = target.incremental(spec, batches, days, row) if incremental else target.replace(spec, batches, row)
        job.dataset(_output(cfg.kind, target.where, spec, rows, batches.schema))
    return Published(
        name,
        dataset,
        qualified,
        "incremental" if incremental else "replace",
        "published",
        rows,
        snapshot_id,
        time.perf_counter() - t0,
    )


def _spec(table: Any, qualified: str, tcfg: PublishTableConfig) -> Any:
    from lakestack.publish import TableSpec

    schema, _, name = qualified.partition(".")
    return TableSpec(
        schema,
        name,
        tcfg.mode,
        tcfg.by,
        tuple(tcfg.primary_key),
        tuple(tuple(i) for i in tcfg.indexes),
        _day_column(table),
    )


def _day_column(table: Any) -> str | None:
    """The column a table is partitioned on by day (or month or year), if it is partitioned that way."""
    from lakestack.storage.partitioning import granularity_of

    fields = table.spec().fields
    if granularity_of(table.spec()) is None:
        return None
    return str(table.schema().find_field(fields[0].source_id).name)


def _changed_days(table: Any, since: int) -> list[date] | None:
    """The days whose rows changed after snapshot `since`; None: every row (not partitioned by
    day, or `since` expired from the table's history)."""
    from lakestack.storage.warehouse import partitions_changed

    if table.snapshot_by_id(since) is None:
        return None
    days = partitions_changed(table, since)
    return None if days is None else sorted(_EPOCH + timedelta(days=d) for d in days)


def _digest(cfg: PublishTargetConfig, dataset: str, tcfg: PublishTableConfig) -> str:
    settings = {"dataset": dataset, "role": cfg.role, "kind": cfg.kind, **tcfg.model_dump()}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class _Read:
    """The dataset as the role may read it, at the snapshot, as an Arrow RecordBatchReader whose
    batches a thread reads ahead (at most `AHEAD`), so the scan overlaps the load."""

    AHEAD = 8

    def __init__(self, stream: Any) -> None:
        import queue
        import threading

        self.stream = stream
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=self.AHEAD)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fill, name="publish-read-ahead", daemon=True)

    def _fill(self) -> None:
        import queue

        try:
            items: Any = iter(self.stream)
            for batch in items:
                while not self.stop.is_set():
                    try:
                        self.queue.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
            self.queue.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self.queue.put(exc)

    def _batches(self) -> Any:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __enter__(self) -> Any:
        import pyarrow as pa

        self.thread.start()
        return pa.RecordBatchReader.from_batches(self.stream.schema, self._batches())

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        while self.thread.is_alive():  # let a reader blocked on a full queue see the stop
            try:
                self.queue.get_nowait()
            except Exception:
                self.thread.join(0.05)
        self.stream.close()


_END = object()


def _read(
    lake: Any, dataset: str, snapshot_id: int, role: str, column: str | None, days: list[date] | None, table: Any
) -> _Read:
    from lakestack.pipeline.timetravel import AsOf

    sql = _select(dataset, column, days, table)
    sandbox = lake.open_sandbox(
        [sql], publish_limits(), as_of=AsOf(tables=((dataset, snapshot_id),)), role=role, label=f"publish of {dataset}"
    )
    return _Read(sandbox.stream(sql))


def _select(dataset: str, column: str | None, days: list[date] | None, table: Any) -> str:
    """`SELECT * FROM dataset`, narrowed to `days` of `column` when given (built with sqlglot)."""
    from pyiceberg.types import TimestamptzType
    from sqlglot import exp

    query = exp.select("*").from_(exp.to_table(dataset, dialect=PROJECT_SQL_DIALECT))
    if days is not None and column is not None:
        value: Any = exp.column(column, quoted=True)
        if isinstance(table.schema().find_field(column).field_type, TimestamptzType):
            value = exp.func("timezone", exp.Literal.string("UTC"), value)
        literals = [exp.cast(exp.Literal.string(d.isoformat()), "DATE") for d in days]
        query = query.where(exp.cast(value, "DATE").isin(*literals) if literals else exp.false())
    return query.sql(PROJECT_SQL_DIALECT)


def _output(kind: str, where: str, spec: Any, rows: int, schema: Any) -> DatasetIO:
    """The published table as a job output, named as OpenLineage names database tables (namespace
    `postgres://host:port`, name `db.schema.table`; `mysql://host:port`, `db.table`); no credentials."""
    from lakestack.pipeline.dataset_io import arrow_columns

    hostport, _, db = where.partition("/")
    name = f"{db}.{spec.schema}.{spec.table}" if kind == "postgres" else f"{spec.schema}.{spec.table}"
    return DatasetIO(name, "output", rows=rows, columns=arrow_columns(schema), source=f"{kind}://{hostport}/{name}")

"""Gold models: one SQL `SELECT` per file, built in dependency order on DuckDB, committed to `gold.<name>`.

A model is `models/gold/<name>.sql`. Its settings sit in a YAML block comment at the top of the file
or in a `<name>.yaml` sidecar::

    /* ---
    materialized: incremental        # or full (default)
    partition_by: order_date         # a DATE column of the result; incremental models need one
    partition_granularity: auto      # or day, month, year: the table's partitions of partition_by
    incremental_on: [silver.orders]  # upstreams whose day partitions map to partition_by
    description: Daily order metrics by currency
    owner: analytics
    columns: {email_hash: masked, customers: aggregated}  # end PII inheritance for these columns
    --- */
    SELECT ...

Dependencies come from the table references (`silver.x`, `gold.y`) found by sqlglot. An
incremental model rebuilds only the dates whose rows changed in its `incremental_on` upstreams
since its checkpoint; a change in any other upstream rebuilds it fully. Every build commits one
snapshot carrying the upstream snapshot ids it read.

The table is partitioned by day, month or year of `partition_by`. With `auto`, a build that
creates the table or rebuilds it fully picks the coarsest granularity whose average partition
still fits in one data file of the environment's `maintenance.target_file_mb` (estimated from the
result's bytes per day), so a small daily mart is a dozen files a year rather than 365. An
incremental build replaces whole partitions at the table's granularity: the changed days' months
(or years) are recomputed and replaced in one commit.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from lakestack._yaml import pydantic_problem
from lakestack.config import PROJECT_SQL_DIALECT
from lakestack.errors import Location, ProjectError, RunError
from lakestack.failpoints import failpoint
from lakestack.storage.checkpoints import UpstreamSnapshots, read_checkpoint
from lakestack.storage.partitioning import Granularity, Periods, choose_granularity, granularity_of, respec, value_of

_HEADER = re.compile(r"^\s*/\*\s*---[ \t\r]*\n(?P<yaml>.*?)\n[ \t]*---\s*\*/", re.DOTALL)  # linear: no \s* after \n
_LINE = re.compile(r"LINE (\d+):")
_EPOCH = date(1970, 1, 1)
TARGET_BYTES = 128 * 1024 * 1024  # the `maintenance.target_file_mb` default


class GoldSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    materialized: Literal["full", "incremental"] = "full"
    partition_by: str | None = None
    partition_granularity: Literal["auto", "day", "month", "year"] = "auto"
    incremental_on: list[str] = []
    description: str | None = None
    owner: str | None = None
    # A result column derived from PII that the model itself masked or aggregated: it carries no
    # PII class (without this, every column whose lineage reaches a PII column inherits its class).
    columns: dict[str, Literal["masked", "aggregated"]] = {}


@dataclass(frozen=True, slots=True)
class GoldModel:
    name: str
    path: Path
    sql: str
    sql_line: int  # line of the file where the SELECT starts
    settings: GoldSettings
    upstream: tuple[str, ...]

    @property
    def identifier(self) -> str:
        return f"gold.{self.name}"


@dataclass(frozen=True, slots=True)
class BuildResult:
    dataset: str
    mode: str  # "full", "incremental", "skipped"
    rows_written: int = 0
    partitions: int = 0
    snapshot_id: int | None = None
    duration_s: float = 0.0
    granularity: str | None = None  # day, month or year: how the table is partitioned (None: not)


@dataclass(slots=True)
class _Upstreams:
    snapshots: dict[str, int | None] = field(default_factory=dict)


def load_gold_model(path: Path, root: Path) -> GoldModel:
    """Read one model file (and its sidecar); errors name the file and line."""
    import sqlglot

    from lakestack._yaml import MAX_YAML_BYTES, load_yaml, load_yaml_text, read_capped

    display = str(path.relative_to(root))
    text = read_capped(path, MAX_YAML_BYTES, ProjectError, display)
    settings_data: Any = {}
    smap: Any = None
    offset = 0
    header = _HEADER.match(text)
    if header:
        first_line = text[: header.start("yaml")].count("\n") + 1
        settings_data, smap = load_yaml_text(header.group("yaml"), display, first_line=first_line)
        offset = text[: header.end()].count("\n")
        body = text[header.end() :]
    else:
        body = text
        sidecar = path.with_suffix(".yaml")
        if sidecar.exists():
            settings_data, smap = load_yaml(sidecar, display=str(sidecar.relative_to(root)))
    try:
        settings = GoldSettings.model_validate(settings_data or {})
    except ValidationError as exc:
        if smap is not None:
            message, location = pydantic_problem(exc, smap, GoldSettings)
            raise ProjectError(message, location) from None
        raise ProjectError(
            f"settings: {exc.errors()[0]['msg']} ({'.'.join(map(str, exc.errors()[0]['loc']))})", Location(display, 1)
        ) from None
    leading = len(body) - len(body.lstrip("\n"))
    sql = body.strip().rstrip(";")
    try:
        statements = sqlglot.parse(sql, read=PROJECT_SQL_DIALECT)
    except sqlglot.errors.ParseError as exc:
        line = exc.errors[0].get("line") if exc.errors else None
        raise ProjectError(
            f"SQL does not parse: {exc.errors[0].get('description') if exc.errors else exc}",
            Location(display, (line or 1) + offset + leading),
        ) from None
    if len(statements) != 1 or not isinstance(statements[0], sqlglot.exp.Query):
        raise ProjectError("a Gold model is exactly one SELECT statement", Location(display, offset + leading + 1))
    upstream = sorted(
        {
            f"{t.db}.{t.name}"
            for t in statements[0].find_all(sqlglot.exp.Table)
            if t.db in ("silver", "gold", "bronze") or (t.db == "_lakestack" and t.name.startswith("lookup_"))
        }  # _lakestack.lookup_<name>: an enrichment lookup's cache (pipeline/enrich.py)
    )
    name = path.stem
    model = GoldModel(name, path, sql, offset + leading + 1, settings, tuple(upstream))
    _check_settings(model, display)
    return model


def _check_settings(model: GoldModel, display: str) -> None:
    s = model.settings
    if s.materialized == "incremental" and not s.partition_by:
        raise ProjectError(
            "an incremental model needs partition_by (a DATE column of its result)", Location(display, 1)
        )
    if s.partition_granularity != "auto" and not s.partition_by:
        raise ProjectError(
            "partition_granularity needs partition_by (a DATE column of its result)", Location(display, 1)
        )
    for upstream in s.incremental_on:
        if upstream not in model.upstream:
            raise ProjectError(f"incremental_on names {upstream}, which the SQL does not read", Location(display, 1))
    if f"gold.{model.name}" in model.upstream:
        raise ProjectError(f"model {model.name} reads itself", Location(display, model.sql_line))


def build_order(models: dict[str, GoldModel]) -> list[GoldModel]:
    """Models in dependency order; a cycle is an error naming its models."""
    order: list[GoldModel] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = [*path[path.index(name) :], name]
            raise ProjectError(
                f"Gold models depend on each other in a cycle: {' → '.join(cycle)}",
                Location(str(models[name].path.name)),
            )
        state[name] = "active"
        for upstream in models[name].upstream:
            layer, _, dep = upstream.partition(".")
            if layer == "gold":
                if dep not in models:
                    raise ProjectError(
                        f"model {name} reads gold.{dep}, which no model builds", Location(str(models[name].path.name))
                    )
                visit(dep, [*path, name])
        state[name] = "done"
        order.append(models[name])

    for name in sorted(models):
        visit(name, [])
    return order


class GoldBuild:
    """Builds one Gold model against the warehouse."""

    def __init__(
        self,
        model: GoldModel,
        warehouse: Any,
        run_id: str,
        root: Path,
        *,
        target_bytes: int = TARGET_BYTES,
        environment: Any = None,
    ) -> None:
        self.environment = environment  # its `engine:` computes the model
        self.model = model
        self.warehouse = warehouse
        self.run_id = run_id
        self.root = root
        self.target_bytes = target_bytes  # the environment's compaction target: one data file's size

    def run(self, full_refresh: bool = False, audit: Any = None) -> BuildResult:
        """Build the model. With `audit` (write-audit-publish), the new state of the table is checked
        before it is committed; a failed audit commits nothing, so readers never see it."""
        started = time.perf_counter()
        inputs = self._inputs()
        current = {i.name: i.snapshot_id for i in inputs}
        table = self.warehouse.load(self.model.identifier) if self.warehouse.exists(self.model.identifier) else None
        previous = dict(read_checkpoint(table, UpstreamSnapshots).snapshots) if table is not None else {}
        full_refresh = full_refresh or (table is not None and self._regrain(table))
        if table is not None and not full_refresh and previous == current:
            return BuildResult(
                self.model.identifier,
                "skipped",
                duration_s=time.perf_counter() - started,
                granularity=self._grain(table),
            )
        periods = None
        if table is not None and not full_refresh and self.model.settings.materialized == "incremental":
            periods = self._changed_periods(table, previous, current)
        result = self._execute(inputs, periods)
        failpoint("gold.after_staging")
        if audit is not None and not audit(self.model.identifier, self._staged(table, result, periods)):
            return BuildResult(
                self.model.identifier,
                "blocked",
                result.num_rows,
                len(periods or ()),
                None,
                time.perf_counter() - started,
            )
        granularity = periods.granularity if periods is not None else self._chosen(result, table)
        sequences = {i.name: _sequence(i.table, i.snapshot_id) for i in inputs if i.snapshot_id is not None}
        new_checkpoint = UpstreamSnapshots(current, sequences)
        failpoint("gold.before_publish")
        snapshot = self._commit(table, result, periods, new_checkpoint, granularity)
        failpoint("gold.after_publish")
        mode = "full" if periods is None else "incremental"
        return BuildResult(
            self.model.identifier,
            mode,
            result.num_rows,
            len(periods or ()),
            snapshot,
            time.perf_counter() - started,
            granularity,
        )

    def _grain(self, table: Any) -> Granularity | None:
        """The table's granularity when it is partitioned by one transform of partition_by, else None."""
        spec = table.spec()
        column = self.model.settings.partition_by
        if not column or len(spec.fields) != 1:
            return None
        if table.schema().find_column_name(spec.fields[0].source_id) != column:
            return None
        return granularity_of(spec)

    def _regrain(self, table: Any) -> bool:
        """The table's partitions are not what the settings ask for (a pinned granularity, or
        partition_by changed): the next build is a full one that repartitions it."""
        pinned = self.model.settings.partition_granularity
        if not self.model.settings.partition_by:
            return False
        grain = self._grain(table)
        return grain is None or (pinned != "auto" and grain != pinned)

    def _chosen(self, result: Any, table: Any) -> Granularity | None:
        """The granularity a full build gives the table: pinned, or picked from the result's size."""
        column = self.model.settings.partition_by
        if not column:
            return None
        if column not in result.column_names or not _is_date(result.schema.field(column).type):
            display = str(self.model.path.relative_to(self.root))
            raise ProjectError(
                f"partition_by: '{column}' is not a DATE column of the model's result", Location(display, 1)
            )
        pinned = self.model.settings.partition_granularity
        if pinned != "auto":
            return pinned
        picked = choose_granularity(result, column, self.target_bytes)
        return picked or (self._grain(table) if table is not None else None) or "day"

    def _inputs(self) -> list[Any]:
        """Each upstream the SQL names, pinned at its current snapshot (the only tables the model may read)."""
        from lakestack.engine.base import SqlInput

        inputs = []
        for upstream in self.model.upstream:
            if not self.warehouse.exists(upstream):
                raise RunError(
                    f"{self.model.identifier} reads {upstream}, which does not exist yet ({self.model.path.name})"
                )
            table = self.warehouse.load(upstream)
            snap = table.current_snapshot()
            inputs.append(SqlInput(upstream, table, snap.snapshot_id if snap else None))
        return inputs

    def _changed_periods(self, table: Any, previous: dict[str, Any], current: dict[str, int | None]) -> Periods | None:
        """The table's partitions holding a changed day, or None for a full rebuild."""
        dates = self._changed_dates(previous, current)
        grain = self._grain(table)
        if dates is None or grain is None:
            return None
        spec_id = table.spec().spec_id
        if any(t.file.spec_id != spec_id for t in table.scan().plan_files()):  # files of an older spec
            return None
        return Periods.covering(dates, grain)

    def _changed_dates(self, previous: dict[str, Any], current: dict[str, int | None]) -> list[date] | None:
        """Dates whose upstream rows changed, or None for a full rebuild (a non-incremental upstream changed)."""
        from lakestack.storage.warehouse import partitions_changed

        dates: set[date] = set()
        for upstream, snapshot in current.items():
            before = previous.get(upstream)
            if before == snapshot:
                continue
            if upstream not in self.model.settings.incremental_on or before is None:
                return None
            table = self.warehouse.load(upstream)
            if table.snapshot_by_id(before) is None:  # expired: what changed since is unknown
                return None
            days = partitions_changed(table, before)
            if days is None:
                return None
            dates |= {_EPOCH + timedelta(days=d) for d in days}
        return sorted(dates)

    def _execute(self, inputs: list[Any], periods: Periods | None) -> Any:
        """The model's result as Arrow, computed in the environment engine's project-SQL sandbox over
        `inputs` only; the model's SQL is transpiled from the project's dialect to the engine's."""
        import sqlglot.expressions as exp

        from lakestack.engine import create_engine
        from lakestack.engine.base import MODEL_LIMITS, SqlError

        sql = self.model.sql
        if periods is not None:  # the rebuilt partitions' date ranges
            column = exp.column(str(self.model.settings.partition_by), quoted=True)

            def day(d: date) -> exp.Expression:
                return exp.cast(exp.Literal.string(d.isoformat()), "date")

            ranges = [exp.and_(column.copy() >= day(a), column.copy() < day(b)) for a, b in periods.ranges()]
            sql = (
                exp.select("*")
                .from_(exp.paren(exp.maybe_parse(sql, dialect=PROJECT_SQL_DIALECT)).as_("model"))
                .where(exp.or_(*ranges) if ranges else exp.false())
                .sql(PROJECT_SQL_DIALECT)
            )
        label = f"model {self.model.name}"
        try:
            with create_engine(self.environment, purpose="gold", limits=MODEL_LIMITS) as engine:
                own, sql = engine.transpile(self.model.sql, label=label), engine.transpile(sql, label=label)
                with engine.open_sandbox(inputs, MODEL_LIMITS, label=label) as sandbox:
                    sandbox.check(own)  # the model's own text, before any wrapping of ours
                    return sandbox.table(sql)
        except SqlError as exc:  # point at the model's file and line
            raise self._sql_error(exc) from None

    def _sql_error(self, exc: Any) -> ProjectError | RunError:
        """A refused or failing model is a project error (exit 2) at its file and line; one stopped
        at its time or memory limit is a run error (exit 3)."""
        from lakestack.engine.base import SqlOutOfMemory, SqlTimeout

        display = str(self.model.path.relative_to(self.root))
        if isinstance(exc, SqlTimeout | SqlOutOfMemory):
            return RunError(f"{display}: {exc.reason}")
        line = self.model.sql_line + exc.line - 1 if exc.line else self.model.sql_line
        return ProjectError(exc.reason, Location(display, line))

    def _commit(
        self,
        table: Any,
        result: Any,
        periods: Periods | None,
        checkpoint: UpstreamSnapshots,
        granularity: Granularity | None,
    ) -> int | None:
        from lakestack.storage.warehouse import replace_files

        respec_to = None
        if table is None or (periods is None and not _same_columns(table, result.schema)):
            pii = self.pii_columns(result.schema.names)
            table = self.warehouse.gold_table(
                self.model, result.schema, replace=table is not None, pii=pii, granularity=granularity or "day"
            )
        elif periods is None and granularity is not None and self._grain(table) != granularity:
            respec_to = respec(str(self.model.settings.partition_by), granularity)  # in the same commit
        files = [t.file for t in table.scan().plan_files()]
        if periods is not None:
            wanted = periods.values
            files = [f for f in files if _value(f.partition[0], periods.granularity) in wanted]
        batch = f"gold:{self.model.name}:{ {'upstream': dict(checkpoint.snapshots)} }"  # as before the typed API
        table = replace_files(
            table, files, result, run_id=self.run_id, batch_id=batch, checkpoint=checkpoint, respec=respec_to
        )
        snap = table.current_snapshot()
        return snap.snapshot_id if snap else None

    def _staged(self, table: Any, result: Any, periods: Periods | None) -> Any:
        """The whole table as it would be after this build: kept partitions plus the new rows."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if table is None or periods is None:
            return result
        column = str(self.model.settings.partition_by)
        kept = table.scan().to_arrow()
        rebuilt = pa.array([False] * kept.num_rows, pa.bool_())
        for start, end in periods.ranges():
            inside = pc.and_(pc.greater_equal(kept[column], pa.scalar(start)), pc.less(kept[column], pa.scalar(end)))
            rebuilt = pc.or_(rebuilt, pc.fill_null(inside, False))
        return pa.concat_tables([kept.filter(pc.invert(rebuilt)).cast(result.schema), result])

    def pii_columns(self, columns: list[str]) -> dict[str, str]:
        """Result columns derived from a PII column upstream, with that column's class (via sqlglot
        lineage), except those the model's settings declare `masked` or `aggregated`."""
        unknown = sorted(set(self.model.settings.columns) - set(columns))
        if unknown:
            display = str(self.model.path.relative_to(self.root))
            raise ProjectError(f"columns: '{unknown[0]}' is not a column of the model's result", Location(display, 1))
        from sqlglot.lineage import lineage

        upstream_pii: dict[tuple[str, str], str] = {}
        schema: dict[str, dict[str, dict[str, str]]] = {}
        for identifier in self.model.upstream:
            table = self.warehouse.load(identifier)
            layer, _, name = identifier.partition(".")
            schema.setdefault(layer, {})[name] = {f.name: "varchar" for f in table.schema().fields}
            for key, value in table.properties.items():
                if key.startswith("lakestack.pii."):
                    upstream_pii[(identifier, key.removeprefix("lakestack.pii."))] = value
        if not upstream_pii:
            return {}
        found: dict[str, str] = {}
        for column in columns:
            if column in self.model.settings.columns:  # declared masked or aggregated: inheritance ends
                continue
            try:
                node = lineage(column, self.model.sql, schema=schema, dialect=PROJECT_SQL_DIALECT)
            except Exception:  # lineage cannot follow every construct; be conservative by name
                if any(col == column for _, col in upstream_pii):
                    found[column] = next(v for (_, col), v in upstream_pii.items() if col == column)
                continue
            for leaf in (n for n in node.walk() if not n.downstream):
                source = leaf.source
                table_id = f"{source.db}.{source.name}" if hasattr(source, "db") else ""
                pii = upstream_pii.get((table_id, leaf.name.split(".")[-1]))
                if pii:
                    found[column] = pii
        return found


def _is_date(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_date(kind) or pa.types.is_timestamp(kind))


def _value(value: Any, granularity: Granularity) -> int:
    """A file's partition value as an int (a day transform's may come back as a date)."""
    return value_of(value, granularity) if isinstance(value, date) else int(value)


def _same_columns(table: Any, schema: Any) -> bool:
    """A full build whose columns are the table's replaces its files; other columns replace the
    table (and so its snapshot history)."""
    from lakestack.storage.schema import same_columns

    return same_columns(table, schema)


def _sequence(table: Any, snapshot_id: int) -> int:
    """The sequence number of an upstream snapshot (kept in the checkpoint beside its id)."""
    return int(table.snapshot_by_id(snapshot_id).sequence_number or 0)

"""Gold models: one SQL `SELECT` per file, built in dependency order on DuckDB, committed to `gold.<name>`.

A model is `models/gold/<name>.sql`. Its settings sit in a YAML block comment at the top of the file
or in a `<name>.yaml` sidecar::

    /* ---
    materialized: incremental        # or full (default)
    partition_by: order_date         # a DATE column of the result; incremental models need one
    incremental_on: [silver.orders]  # upstreams whose day partitions map to partition_by
    description: Daily order metrics by currency
    owner: analytics
    --- */
    SELECT ...

Dependencies come from the table references (`silver.x`, `gold.y`) found by sqlglot. An
incremental model rebuilds only the dates whose rows changed in its `incremental_on` upstreams
since its checkpoint; a change in any other upstream rebuilds it fully. Every build commits one
snapshot carrying the upstream snapshot ids it read.
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
from lakestack.errors import Location, ProjectError, RunError
from lakestack.failpoints import failpoint

_HEADER = re.compile(r"^\s*/\*\s*---[ \t\r]*\n(?P<yaml>.*?)\n[ \t]*---\s*\*/", re.DOTALL)  # linear: no \s* after \n
_LINE = re.compile(r"LINE (\d+):")
_EPOCH = date(1970, 1, 1)


class GoldSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    materialized: Literal["full", "incremental"] = "full"
    partition_by: str | None = None
    incremental_on: list[str] = []
    description: str | None = None
    owner: str | None = None


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
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        line = exc.errors[0].get("line") if exc.errors else None
        raise ProjectError(
            f"SQL does not parse: {exc.errors[0].get('description') if exc.errors else exc}",
            Location(display, (line or 1) + offset + leading),
        ) from None
    if len(statements) != 1 or not isinstance(statements[0], sqlglot.exp.Query):
        raise ProjectError("a Gold model is exactly one SELECT statement", Location(display, offset + leading + 1))
    upstream = sorted(
        {f"{t.db}.{t.name}" for t in statements[0].find_all(sqlglot.exp.Table) if t.db in ("silver", "gold", "bronze")}
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

    def __init__(self, model: GoldModel, warehouse: Any, run_id: str, root: Path) -> None:
        self.model = model
        self.warehouse = warehouse
        self.run_id = run_id
        self.root = root

    def run(self, full_refresh: bool = False, audit: Any = None) -> BuildResult:
        """Build the model. With `audit` (write-audit-publish), the new state of the table is checked
        before it is committed; a failed audit commits nothing, so readers never see it."""
        from lakestack.storage.warehouse import last_checkpoint

        started = time.perf_counter()
        inputs = self._inputs()
        current = {i.name: i.snapshot_id for i in inputs}
        table = self.warehouse.load(self.model.identifier) if self.warehouse.exists(self.model.identifier) else None
        checkpoint = (last_checkpoint(table) if table is not None else None) or {}
        previous = checkpoint.get("upstream", {})
        if table is not None and not full_refresh and previous == current:
            return BuildResult(self.model.identifier, "skipped", duration_s=time.perf_counter() - started)
        dates = None
        if table is not None and not full_refresh and self.model.settings.materialized == "incremental":
            dates = self._changed_dates(previous, current)
        result = self._execute(inputs, dates)
        failpoint("gold.after_staging")
        if audit is not None and not audit(self.model.identifier, self._staged(table, result, dates)):
            return BuildResult(
                self.model.identifier,
                "blocked",
                result.num_rows,
                len(dates or []),
                None,
                time.perf_counter() - started,
            )
        new_checkpoint = {"upstream": current}
        failpoint("gold.before_publish")
        snapshot = self._commit(table, result, dates, new_checkpoint)
        failpoint("gold.after_publish")
        mode = "full" if dates is None else "incremental"
        return BuildResult(
            self.model.identifier, mode, result.num_rows, len(dates or []), snapshot, time.perf_counter() - started
        )

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

    def _changed_dates(self, previous: dict[str, Any], current: dict[str, int | None]) -> list[date] | None:
        """Dates to rebuild, or None for a full rebuild (a non-incremental upstream changed)."""
        from lakestack.storage.warehouse import partitions_changed

        dates: set[date] = set()
        for upstream, snapshot in current.items():
            before = previous.get(upstream)
            if before == snapshot:
                continue
            if upstream not in self.model.settings.incremental_on or before is None:
                return None
            days = partitions_changed(self.warehouse.load(upstream), before)
            if days is None:
                return None
            dates |= {_EPOCH + timedelta(days=d) for d in days}
        return sorted(dates)

    def _execute(self, inputs: list[Any], dates: list[date] | None) -> Any:
        """The model's result as Arrow, computed in the project-SQL sandbox over `inputs` only."""
        import sqlglot.expressions as exp

        from lakestack.engine import open_sandbox
        from lakestack.engine.base import MODEL_LIMITS, SqlError

        sql = self.model.sql
        if dates is not None:
            column = exp.column(str(self.model.settings.partition_by), quoted=True)
            where = (
                exp.In(this=column, expressions=[exp.cast(exp.Literal.string(d.isoformat()), "date") for d in dates])
                if dates
                else exp.false()
            )
            sql = (
                exp.select("*")
                .from_(exp.paren(exp.maybe_parse(sql, dialect="duckdb")).as_("model"))
                .where(where)
                .sql("duckdb")
            )
        try:
            with open_sandbox(inputs, MODEL_LIMITS, label=f"model {self.model.name}") as sandbox:
                sandbox.check(self.model.sql)  # the model's own text, before any wrapping of ours
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

    def _commit(self, table: Any, result: Any, dates: list[date] | None, checkpoint: dict[str, Any]) -> int | None:
        from lakestack.storage.warehouse import replace_files

        if table is None or (dates is None and not _same_columns(table, result.schema)):
            pii = self.pii_columns(result.schema.names)
            table = self.warehouse.gold_table(self.model, result.schema, replace=table is not None, pii=pii)
        files = [t.file for t in table.scan().plan_files()]
        if dates is not None:
            wanted = {(d - _EPOCH).days for d in dates}
            files = [f for f in files if _day(f.partition[0]) in wanted]
        batch = f"gold:{self.model.name}:{checkpoint}"
        table = replace_files(table, files, result, run_id=self.run_id, batch_id=batch, checkpoint=checkpoint)
        snap = table.current_snapshot()
        return snap.snapshot_id if snap else None

    def _staged(self, table: Any, result: Any, dates: list[date] | None) -> Any:
        """The whole table as it would be after this build: kept partitions plus the new rows."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if table is None or dates is None:
            return result
        column = str(self.model.settings.partition_by)
        kept = table.scan().to_arrow()
        kept = kept.filter(pc.invert(pc.is_in(kept[column], value_set=pa.array(dates, pa.date32()))))
        return pa.concat_tables([kept.cast(result.schema), result])

    def pii_columns(self, columns: list[str]) -> dict[str, str]:
        """Result columns derived from a PII column upstream, with that column's class (via sqlglot lineage)."""
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
            try:
                node = lineage(column, self.model.sql, schema=schema, dialect="duckdb")
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


def _day(value: Any) -> int:
    return (value - _EPOCH).days if isinstance(value, date) else int(value)


def _same_columns(table: Any, schema: Any) -> bool:
    current = table.schema().as_arrow()
    return [(f.name, f.type) for f in current] == [(f.name, f.type) for f in schema]

"""DuckDB over Iceberg tables planned by pyiceberg (no DuckDB extensions needed or downloaded).

:class:`DuckDBSandbox` is the one locked-down connection every project SQL runs in (queries, Gold
models, `custom_sql` checks): the given tables are registered first (views over their planned data
files, or over Arrow for staged results), then file access, extension loading and settings are
switched off and locked, and each statement must be exactly one SELECT, stopped at its time limit.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lakestack.engine.base import (
    Engine,
    ResultStream,
    Sandbox,
    SqlError,
    SqlFailed,
    SqlInput,
    SqlLimits,
    SqlOutOfMemory,
    SqlRefused,
    SqlTimeout,
    Truncation,
    WriteTarget,
)
from lakestack.storage.datafiles import LocalParquetWrite
from lakestack.storage.readpath import PlannedTable

log = logging.getLogger(__name__)
STREAM_BATCH_ROWS = 8192  # rows per record batch when streaming: memory follows this, not the result
TABLE_BATCH_ROWS = 131_072
_DENIED_PATH = re.compile(r'Cannot access (?:file|directory) "(?P<path>[^"]*)"')
_LINE = re.compile(r"LINE (\d+):")
_MISSING_TABLE = re.compile(r"Table with name (?P<name>.+?) does not exist")


class DuckDBEngine(Engine):
    """The embedded default: one in-memory DuckDB connection (TimeZone UTC), no extensions."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, *, threads: int | None = None, memory_limit: str | None = None) -> None:
        self._threads, self._memory_limit = threads, memory_limit
        self._con: Any = None
        self._files: list[str] = []
        self._closed = False

    @property
    def con(self) -> Any:
        """The connection, opened on first use (an engine asked only for sandboxes never opens one)."""
        if self._con is None:
            import duckdb

            from lakestack.storage.filesystems import attach

            if self._closed:
                raise RuntimeError("the DuckDB engine is closed")
            con = duckdb.connect(
                ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
            )
            con.execute("SET enable_progress_bar = false")
            attach(con)  # an S3 warehouse: its data files are read through pyarrow's filesystem (ADR 25)
            con.execute("SET TimeZone = 'UTC'")
            if self._threads:
                con.execute(f"SET threads = {int(self._threads)}")
            if self._memory_limit:
                con.execute("SET memory_limit = ?", [self._memory_limit])
            self._con = con
        return self._con

    @classmethod
    def for_limits(cls, limits: SqlLimits | None) -> DuckDBEngine:
        """An engine within `limits` (memory and threads); DuckDB's own defaults without."""
        if limits is None:
            return cls()
        return cls(threads=limits.threads, memory_limit=limits.memory_limit)

    def register_table(self, name: str, table: Any, snapshot_id: int | None = None) -> None:
        """A view `name` (optionally `schema.name`) over the table's data files at a snapshot.

        Without delete files the view reads the Parquet files pyiceberg plans; with them, or for an
        empty table, it reads pyiceberg's Arrow scan. A recorded plan (`storage.readpath.PlannedTable`)
        is read as `register_planned` reads it.
        """
        if isinstance(table, PlannedTable) and snapshot_id in (None, table.snapshot_id):
            self.register_planned(name, table)
            return
        import sqlglot.expressions as exp

        view = self._relation(name)
        scan = table.scan(snapshot_id=snapshot_id) if snapshot_id is not None else table.scan()
        tasks = list(scan.plan_files()) if table.current_snapshot() is not None else []
        if not tasks or any(t.delete_files for t in tasks):
            arrow = scan.to_arrow() if tasks else table.schema().as_arrow().empty_table()
            self.register_arrow(name, arrow)
            return
        by_id = field_id_columns(table, scan.projection())
        if by_id is False:  # an evolved table with nested columns: pyiceberg resolves its field ids
            self.register_arrow(name, scan.to_arrow())
            return
        select = exp.select("*").from_(parquet_scan([t.file.file_path for t in tasks], by_id=by_id))
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {select.sql('duckdb')}")
        self._files += [t.file.file_path.removeprefix("file://") for t in tasks]

    def register_planned(self, name: str, planned: Any) -> None:
        """A view `name` over a `storage.readpath.PlannedTable`'s Parquet files (recorded for a
        table whose schema never evolved and whose snapshot has no delete files: read by name)."""
        # the interactive read path: rendered as sqlglot renders `parquet_scan`, without importing
        # sqlglot (~0.15 s of a `lakestack query`); tests/unit/test_engine_sql.py pins the two equal
        self.con.execute(planned_view_sql(name, planned.files, self.con))
        self._files += [_local(p) for p in planned.files]

    def register_files(self, name: str, paths: Sequence[str], table: Any) -> None:
        """A view `name` over exactly `paths` (by field id once the table's schema evolved)."""
        import sqlglot.expressions as exp

        if not paths:
            self.register_arrow(name, table.schema().as_arrow().empty_table())
            return
        by_id = field_id_columns(table, table.schema())
        scan = parquet_scan(list(paths), by_id=by_id if by_id is not False else None)
        view = self._relation(name)
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {exp.select('*').from_(scan).sql('duckdb')}")
        self._files += [_local(p) for p in paths]

    def materialize(self, name: str, query: Any) -> None:
        target = self._relation(name)
        kind = "TABLE" if "." in target else "TEMP TABLE"  # a temp table lives in the temp schema only
        self.con.execute(f"CREATE OR REPLACE {kind} {target} AS {self._sql(query)}")

    def execute(self, query: Any, batch_rows: int = 131_072) -> Any:
        return self.con.sql(self._sql(query)).to_arrow_reader(batch_rows)

    def fetch(self, query: Any) -> Any:
        relation = self.con.sql(self._sql(query))
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2.x / 1.x
        return fetch()

    def rows(self, query: Any) -> list[tuple[Any, ...]]:
        return list(self.con.execute(self._sql(query)).fetchall())

    def records(self, query: Any, most: int) -> tuple[list[str], list[dict[str, Any]]] | None:
        from lakestack.engine.records import small_result

        relation = self.con.sql(self._sql(query))
        found = small_result(relation, most, SqlLimits(max_rows=None, max_bytes=None))
        return None if found is None else (list(relation.columns), found)

    def write_data_files(self, query: Any, target: WriteTarget) -> list[Any]:
        """The result written by DuckDB's own parallel Parquet writer, one `COPY … PARTITION_BY`,
        into a folder storage then adopts (a local Iceberg table: `storage.datafiles`, ADR 44).
        Otherwise it is fetched as Arrow and written by storage's partitioned writer."""
        from lakestack.storage.datafiles import adopt_parquet_files, discard_staged, local_parquet_write
        from lakestack.storage.evolution import conform
        from lakestack.storage.warehouse import write_data_files

        plan = local_parquet_write(target)
        copy = self._copy_to(query, plan) if plan is not None else None
        if plan is None or copy is None:
            data = conform(self.fetch(query), target.schema)
            return write_data_files(target.metadata, target.io, data, target.write_uuid)
        try:
            os.makedirs(plan.folder, exist_ok=True)  # DuckDB creates the last folder only
            written = [p for row in self.con.execute(copy.sql("duckdb")).fetchall() for p in row[1]]
            return adopt_parquet_files(target, plan, written)
        except BaseException:
            discard_staged(plan)
            raise

    def _copy_to(self, query: Any, plan: LocalParquetWrite) -> Any:
        """`COPY (query, cast to the table's columns) TO plan.folder (…)` as a sqlglot expression,
        or None when a column type has no DuckDB equivalent here or the result has a column the
        table lacks (the Arrow path then writes it, or says which column)."""
        from sqlglot import exp

        from lakestack.storage.datafiles import DAY_FOLDER

        known = {
            c.name: _DUCKDB_TYPES.get(c.type) or (c.type.upper() if c.type.startswith("decimal") else None)
            for c in plan.columns
        }
        types = {name: duck for name, duck in known.items() if duck is not None and duck != "UUID"}
        result = set(self.con.sql(self._sql(query)).columns)
        if len(types) < len(known) or not result <= set(types):
            return None
        columns: list[Any] = [
            exp.alias_(
                exp.cast(
                    exp.column(name, quoted=True) if name in result else exp.null(),
                    exp.DataType.build(duck, dialect="duckdb"),
                ),
                name,
                quoted=True,
            )
            for name, duck in types.items()
        ]
        params: list[tuple[str, exp.Expression]] = [("FORMAT", exp.var("parquet"))]
        if plan.day_of is not None:
            day = exp.cast(exp.column(plan.day_of, quoted=True), exp.DataType.build("date"))
            columns.append(exp.alias_(day, DAY_FOLDER, quoted=True))
            params.append(("PARTITION_BY", exp.paren(exp.column(DAY_FOLDER, quoted=True))))
        fields = [
            exp.PropertyEQ(this=exp.to_identifier(c.name, quoted=True), expression=exp.Literal.number(c.field_id))
            for c in plan.columns
        ]
        params += [
            ("FILENAME_PATTERN", exp.Literal.string("part-{i}")),
            ("FIELD_IDS", exp.Struct(expressions=fields)),
            ("COMPRESSION", exp.var(plan.compression)),
            ("ROW_GROUP_SIZE", exp.Literal.number(plan.row_group_rows)),
            ("FILE_SIZE_BYTES", exp.Literal.number(plan.file_bytes)),
        ]
        if plan.compression_level is not None:
            params.append(("COMPRESSION_LEVEL", exp.Literal.number(plan.compression_level)))
        source = exp.maybe_parse(query, dialect="duckdb") if isinstance(query, str) else query
        select = exp.select(*columns).from_(source.subquery("result"))
        return exp.Copy(
            this=select.subquery(),
            kind=False,  # TO
            files=[exp.Literal.string(plan.folder)],
            params=[
                *[exp.CopyParameter(this=exp.var(k), expression=v) for k, v in params],
                exp.CopyParameter(this=exp.var("RETURN_FILES")),
            ],
        )

    def open_sandbox(
        self,
        inputs: Inputs,
        limits: SqlLimits,
        *,
        label: str = "the query",
        naming: Sequence[str] = (),
    ) -> Sandbox:
        return DuckDBSandbox(inputs, limits, label, naming)

    def _relation(self, name: str) -> str:
        """`name` as DuckDB SQL, its schema created first (`silver.orders`)."""
        import sqlglot.expressions as exp

        table = exp.to_table(name, dialect="duckdb")
        if table.db:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(table.db)}")
        return str(table.sql("duckdb"))

    def _sql(self, query: Any) -> str:
        return query if isinstance(query, str) else str(query.sql("duckdb"))

    def register_projected(self, name: str, table: Any, projection: Any, snapshot_id: int | None = None) -> None:
        """A table `name` holding only `projection(source, estimate)` of the table (a role's masked,
        filtered columns), computed now; the raw data files are read here and never become
        reachable to the SQL that runs after the lock (not in `allowed_paths`, no view over them).
        `estimate(query, params)` lets the projection run one statistics query first (its row)."""
        import pyarrow as pa
        import sqlglot.expressions as exp

        target = exp.to_table(name, dialect="duckdb").sql("duckdb")
        alias = None
        if isinstance(table, pa.Table):
            source: Any = exp.to_table(alias := f"_arrow_{abs(hash(name))}")
            self.con.register(alias, table)
        else:
            scan = table.scan(snapshot_id=snapshot_id) if snapshot_id is not None else table.scan()
            tasks = list(scan.plan_files()) if table.current_snapshot() is not None else []
            by_id = field_id_columns(table, scan.projection()) if tasks else None
            if not tasks or any(t.delete_files for t in tasks) or by_id is False:
                arrow = scan.to_arrow() if tasks else table.schema().as_arrow().empty_table()
                source = exp.to_table(alias := f"_arrow_{abs(hash(name))}")
                self.con.register(alias, arrow)
            else:
                source = parquet_scan([t.file.file_path for t in tasks], by_id=by_id)

        def estimate(query: Any, params: dict[str, Any]) -> tuple[Any, ...]:
            return tuple(self.con.execute(query.sql("duckdb"), params or None).fetchone() or ())

        try:
            select, params = projection(source, estimate)
            self.con.execute(f"CREATE OR REPLACE TABLE {target} AS {select.sql('duckdb')}", params or None)
        finally:
            if alias is not None:
                self.con.unregister(alias)

    def register_arrow(self, name: str, arrow: Any) -> None:
        """A view `name` over an Arrow table held in memory (a staged result, an empty table)."""

        view = self._relation(name)
        alias = f"_arrow_{abs(hash(name))}"
        self.con.register(alias, arrow)
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {alias}")

    def files_holding(self, paths: Sequence[str], keys: Sequence[str], relation: str) -> set[str]:
        """Which of the Parquet files `paths` hold a row whose `keys` appear in the view/table `relation`."""
        from sqlglot import exp

        if not paths:
            return set()
        columns = [exp.column(k, quoted=True) for k in keys]
        incoming = exp.select(*[c.copy() for c in columns]).from_(relation).subquery()
        condition = exp.In(this=exp.Tuple(expressions=columns), query=incoming)
        query = (
            exp.select(exp.Distinct(expressions=[exp.column("filename")]))
            .from_(parquet_scan(list(paths), filename=True))
            .where(condition)
        )
        found = {row[0] for row in self.con.execute(query.sql("duckdb")).fetchall()}
        return {p for p in paths if _local(p) in found}

    def lock_down(self, *, memory_limit: str = "1GB", threads: int = 2) -> None:
        """After registering tables: no file access beyond their data files, no settings changes.

        `allowed_paths` lists the exact data files (never a folder: `allowed_directories` would
        also let `COPY … TO` write there)."""
        self.con.execute("SET allowed_paths = ?", [list(self._files)])
        # No spilling: DuckDB would write up to 90% of the free disk under ./.tmp of whatever folder
        # lakestack runs in; memory_limit is the bound, and going over it is a clear error.
        self.con.execute("SET temp_directory = ''")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET allow_community_extensions = false")
        self.con.execute("SET memory_limit = ?", [memory_limit])
        self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("SET lock_configuration = true")

    def sql(self, query: str, params: list[Any] | None = None) -> Any:
        relation = self.con.sql(query, params=params or None)
        if relation is None:
            return None
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2.x / 1.x
        return fetch()

    def close(self) -> None:
        self._closed = True
        if self._con is not None:
            self._con.close()
            self._con = None


class DuckDBSandbox(Sandbox):
    """The locked-down connection for project SQL; see the module docstring."""

    def __init__(self, inputs: Inputs, limits: SqlLimits, label: str = "the query", naming: Sequence[str] = ()) -> None:
        from lakestack.engine.records import is_arrow_table

        self.limits = limits
        self.label = label
        self._engine = DuckDBEngine()
        try:
            con = self._engine.con
            if callable(inputs):  # parse with this connection: a second DuckDB instance costs ~600 MB of address space
                inputs = inputs(sorted({n for sql in naming for n in tables_named(sql, con)}))
            for item in inputs:
                schema = item.name.rpartition(".")[0]
                if schema:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
                if item.projection is not None:
                    self._engine.register_projected(item.name, item.table, item.projection, item.snapshot_id)
                elif is_arrow_table(item.table):  # pyarrow not imported for a query that has none
                    self._engine.register_arrow(item.name, item.table)
                elif isinstance(item.table, PlannedTable):
                    self._engine.register_planned(item.name, item.table)
                else:
                    self._engine.register_table(item.name, item.table, snapshot_id=item.snapshot_id)
            self._engine.lock_down(memory_limit=limits.memory_limit, threads=limits.threads)
        except BaseException:
            self._engine.close()
            raise

    def check(self, sql: str) -> None:
        try:
            statements = self._engine.con.extract_statements(sql)
        except Exception as exc:  # DuckDB's parser error
            raise SqlFailed(
                f"{self.label} does not parse: {_first_line(exc)}", label=self.label, detail=_first_line(exc)
            ) from None
        kinds = [_kind(s) for s in statements]
        if kinds != ["SELECT"]:
            got = ", ".join(kinds) or "nothing"
            raise SqlRefused(
                f"only one read-only SELECT is allowed in {self.label} (got: {got})", label=self.label, detail=got
            )

    def table(self, sql: str) -> Any:
        import pyarrow as pa

        stream = self._start(sql, TABLE_BATCH_ROWS, close_sandbox=False)
        try:
            batches = list(stream)
        finally:
            stream.close()
        if stream.truncated is not None:
            t = stream.truncated
            raise SqlFailed(
                f"{self.label} returns more than its {t.limit} of {t.value:,}", label=self.label, detail=t.limit
            )
        return pa.Table.from_batches(batches, schema=stream.schema)

    def stream(self, sql: str, *, small_rows: int = 0) -> ResultStream:
        return self._start(sql, STREAM_BATCH_ROWS, close_sandbox=True, small_rows=small_rows)

    def _start(self, sql: str, batch_rows: int, *, close_sandbox: bool, small_rows: int = 0) -> ResultStream:
        try:
            self.check(sql)
        except SqlError:
            if close_sandbox:  # the caller never gets the stream that would close it
                self.close()
            raise
        timer = threading.Timer(self.limits.timeout_s, self._interrupt)
        timer.daemon = True
        deadline = time.monotonic() + self.limits.timeout_s
        timer.start()
        try:
            relation = self._engine.con.sql(sql)
            if small_rows:  # a few rows as Python values, no pyarrow (engine/records.py)
                from lakestack.engine.records import RecordsStream, small_result

                records = small_result(relation, small_rows, self.limits)
                if records is not None:
                    return RecordsStream(relation, records, lambda: self._ended(timer, close_sandbox))
            reader = relation.to_arrow_reader(batch_rows)
        except Exception as exc:
            timer.cancel()
            if close_sandbox:
                self.close()
            raise self.translate(exc, sql) from None
        return _DuckDBStream(self, sql, reader, timer, deadline, close_sandbox)

    def _ended(self, timer: threading.Timer, close_sandbox: bool) -> None:
        timer.cancel()
        if close_sandbox:
            self.close()

    def _interrupt(self) -> None:
        try:
            self._engine.con.interrupt()
        except Exception:  # the statement finished and the connection closed as the timer fired
            log.debug("interrupt after close", exc_info=True)

    def translate(self, exc: BaseException, sql: str) -> SqlError:
        """A DuckDB (or Arrow stream) error as one of the SqlError kinds, worded for a person."""
        first, label = _first_line(exc), self.label
        m = _LINE.search(str(exc))
        line = int(m.group(1)) if m else None
        if "INTERRUPT" in first.upper():
            return SqlTimeout(
                f"{label} ran longer than {self.limits.timeout_s:g} s and was stopped", label=label, detail=first
            )
        denied = _DENIED_PATH.search(first)
        if denied or "PERMISSION ERROR" in first.upper():
            path = denied.group("path") if denied else ""
            what = _call_reading(sql, path) if path else ""
            target = f"{what} ({path})" if what and path not in what else (what or path or "it")
            return SqlRefused(
                f"{label} reads outside the lake: {target} is refused; project SQL may read only the lake "
                f"tables it names ({first})",
                label=label,
                detail=first,
                line=line,
            )
        missing = _MISSING_TABLE.search(first)
        if missing and re.search(r"[/\\]|://", missing.group("name")):  # a file or URL as a table: no replacement scans
            return SqlRefused(
                f"{label} reads outside the lake: '{missing.group('name')}' is refused; project SQL may read only "
                f"the lake tables it names ({first})",
                label=label,
                detail=first,
                line=line,
            )
        if "OUT OF MEMORY" in first.upper():
            return SqlOutOfMemory(
                f"{label} needs more than its memory limit ({self.limits.memory_limit}): {first}",
                label=label,
                detail=first,
                line=line,
            )
        return SqlFailed(f"{label} failed: {first}", label=label, detail=first, line=line)

    def close(self) -> None:
        self._engine.close()


class _DuckDBStream(ResultStream):
    def __init__(
        self,
        sandbox: DuckDBSandbox,
        sql: str,
        reader: Any,
        timer: threading.Timer,
        deadline: float,
        close_sandbox: bool,
    ) -> None:
        self._sandbox, self._sql, self._reader = sandbox, sql, reader
        self._timer, self._deadline, self._close_sandbox = timer, deadline, close_sandbox
        self.schema = reader.schema
        self.rows = 0
        self.bytes = 0
        self.truncated = None
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        limits = self._sandbox.limits
        while self.truncated is None:
            self._check_deadline()  # also covers the consumer's writing of the previous batch
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                return
            except Exception as exc:
                raise self._sandbox.translate(exc, self._sql) from None
            batch = self._within_limits(batch, limits)
            if batch.num_rows:
                self.rows += batch.num_rows
                self.bytes += batch.nbytes
                yield batch

    def _within_limits(self, batch: Any, limits: SqlLimits) -> Any:
        """The part of `batch` that fits under max_rows / max_bytes; records a truncation if cut."""
        fit = batch.num_rows
        if limits.max_rows is not None and self.rows + fit > limits.max_rows:
            fit = limits.max_rows - self.rows
            self.truncated = Truncation(self.rows + fit, "max_rows", limits.max_rows)
        if limits.max_bytes is not None and batch.num_rows and self.bytes + batch.nbytes > limits.max_bytes:
            per_row = max(batch.nbytes / batch.num_rows, 1.0)
            by_bytes = max(int((limits.max_bytes - self.bytes) / per_row), 0)
            if by_bytes < fit:
                fit = by_bytes
                self.truncated = Truncation(self.rows + fit, "max_bytes", limits.max_bytes)
        return batch if fit == batch.num_rows else batch.slice(0, fit)

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            limits, label = self._sandbox.limits, self._sandbox.label
            raise SqlTimeout(
                f"{label} ran longer than {limits.timeout_s:g} s (writing its result included) and was stopped",
                label=label,
            )

    def read_all(self) -> Any:
        import pyarrow as pa

        return pa.Table.from_batches(list(self), schema=self.schema)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._timer.cancel()
        try:
            self._reader.close()
        finally:
            if self._close_sandbox:
                self._sandbox.close()


Inputs = Sequence[SqlInput] | Callable[[list[str]], Sequence[SqlInput]]


def open_sandbox(
    inputs: Inputs, limits: SqlLimits | None = None, *, label: str = "the query", naming: Sequence[str] = ()
) -> Sandbox:
    """The one way project SQL reaches DuckDB: a locked-down connection over `inputs` only.

    `inputs` may be a function of the table names that the SQL texts in `naming` contain (parsed
    by the sandbox's own connection before the lock), returning the tables to register."""
    return DuckDBSandbox(inputs, limits or SqlLimits(), label, naming)


def tables_named(sql: str, con: Any = None) -> list[str]:
    """The tables a SELECT names (`silver.orders`, `query_table('gold.x')` included), lower-cased as
    the catalog stores them; [] when the SQL is not one SELECT (the sandbox then refuses it).

    Parse only, never bind: this runs before the lock, and binding `EXPORT DATABASE 'dir'` creates
    the folder, binding `read_csv(...)` opens the file (so no `get_table_names`)."""
    import json

    import duckdb

    try:
        if con is None:
            with duckdb.connect(":memory:") as parser:  # never duckdb's default connection: it stays open
                row = parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        else:
            row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        tree = json.loads(row[0] if row else "{}")
    except Exception:  # no JSON serialiser: nothing is registered, and the query says what is missing
        return []
    if tree.get("error"):
        return []
    names: set[str] = set()
    _collect_tables(tree, names)
    return sorted(names)


def _collect_tables(node: Any, names: set[str]) -> None:
    """Walk DuckDB's parse tree (json_serialize_sql) for base tables and `query_table('x.y')`."""
    if isinstance(node, list):
        for item in node:
            _collect_tables(item, names)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "BASE_TABLE" and node.get("table_name"):
        names.add(".".join(p for p in (node.get("schema_name"), node["table_name"]) if p).lower())
    function = node.get("function") if node.get("type") == "TABLE_FUNCTION" else None
    if isinstance(function, dict) and str(function.get("function_name", "")).lower() == "query_table":
        for argument in function.get("arguments") or function.get("children") or []:
            text = _string_constant(argument.get("expression", argument) if isinstance(argument, dict) else None)
            if text:
                names.add(text.replace('"', "").lower())
    for value in node.values():
        _collect_tables(value, names)


def _string_constant(expression: Any) -> str | None:
    if not isinstance(expression, dict) or expression.get("class") != "CONSTANT":
        return None
    literal = expression.get("literal") or expression.get("value") or {}
    text = literal.get("text", literal.get("value")) if isinstance(literal, dict) else None
    return text if isinstance(text, str) else None


def _kind(statement: Any) -> str:
    """A statement's type by name; DuckDB types the Python enum does not know (UPDATE EXTENSIONS is
    29) are named from the statement's own first words."""
    try:
        return str(statement.type.name)
    except Exception:
        words = str(getattr(statement, "query", "")).split()
        return " ".join(words[:2]).upper() or "UNKNOWN"


def _call_reading(sql: str, path: str) -> str:
    """The function call of `sql` that names `path` (`read_csv('/etc/passwd')`), or ''."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except Exception:
        return ""
    for func in tree.find_all(exp.Func):
        if isinstance(func, exp.Literal | exp.Array):
            continue
        literals = [lit.this for lit in func.find_all(exp.Literal) if lit.is_string]
        if path in literals:
            text = func.sql("duckdb", normalize_functions="lower")
            return text if len(text) <= 80 else text[:77] + "..."
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _quoted(identifier: str) -> str:
    """A quoted DuckDB identifier, as sqlglot renders `exp.to_identifier(x, quoted=True)`."""
    return '"' + identifier.replace('"', '""') + '"'


def _string(value: str) -> str:
    """A DuckDB string literal, as sqlglot renders `exp.Literal.string(x)` (no backslash escapes)."""
    return "'" + value.replace("'", "''") + "'"


def planned_view_sql(name: str, files: Sequence[str], con: Any = None) -> str:
    """`CREATE OR REPLACE VIEW layer.name AS SELECT * FROM read_parquet([...], hive_partitioning =
    FALSE)` for a view over a recorded plan's files; with `con`, the view's schema is created first.

    No `union_by_name`: a plan is recorded only for a table with one schema, so its files share
    their columns, and DuckDB binds later files by name (it refuses a file missing a column). With
    it, DuckDB read every file's footer to bind the view: 0.15 s of a 0.5 s query over 365 files."""
    schema, _, table = name.rpartition(".")
    if schema and con is not None:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
    view = f"{_quoted(schema)}.{_quoted(table)}" if schema else _quoted(table)
    scan = ", ".join(_string(_local(f)) for f in files)
    return f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM READ_PARQUET([{scan}], hive_partitioning = FALSE)"


def _local(path: str) -> str:
    return path.removeprefix("file://")


def parquet_scan(paths: list[str], *, filename: bool = False, by_id: Any = None) -> Any:
    """`read_parquet([...])` over data files, by column name, ignoring Hive-style folder names; with
    `by_id` (from :func:`field_id_columns`), by Iceberg field id instead."""
    from sqlglot import exp

    options = [("union_by_name", exp.true()) if by_id is None else ("schema", by_id)]
    options.append(("hive_partitioning", exp.false()))
    if filename:
        options.append(("filename", exp.true()))
    return exp.Table(
        this=exp.func(
            "read_parquet",
            exp.Array(expressions=[exp.Literal.string(_local(p)) for p in paths]),
            *[exp.EQ(this=exp.column(k), expression=v) for k, v in options],
        )
    )


_DUCKDB_TYPES = {
    "boolean": "BOOLEAN",
    "int": "INTEGER",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "uuid": "UUID",
    "binary": "BLOB",
}


def field_id_columns(table: Any, schema: Any) -> Any:
    """How DuckDB must read the data files of a table whose schema evolved (renamed, added or widened
    columns): a `schema` map from Iceberg field id to the column's current name and type, so files
    written under an older schema read as the current one. None for a table that never evolved (read
    by name); False when a column is nested (DuckDB maps top-level field ids only)."""
    from sqlglot import exp

    if len(table.metadata.schemas) < 2:
        return None
    entries = []
    for field in schema.fields:
        text = str(field.field_type)
        duck = _DUCKDB_TYPES.get(text) or (text.upper() if text.startswith("decimal") else None)
        if duck is None:
            return False
        spec = exp.Struct(
            expressions=[
                exp.PropertyEQ(this=exp.to_identifier("name"), expression=exp.Literal.string(field.name)),
                exp.PropertyEQ(this=exp.to_identifier("type"), expression=exp.Literal.string(duck)),
                exp.PropertyEQ(this=exp.to_identifier("default_value"), expression=exp.Null()),
            ]
        )
        entries.append(exp.PropertyEQ(this=exp.Literal.number(field.field_id), expression=spec))
    return exp.ToMap(this=exp.Struct(expressions=entries))

"""Spark over Iceberg tables planned by pyiceberg (`engine: spark`, `pip install 'lakestack[spark]'`).

Spark here has no Iceberg runtime (it cannot fetch Maven packages offline), so it never sees a
catalog: lakestack plans a snapshot's data files with pyiceberg, Spark reads them as Parquet (by
Iceberg field id), computes, and its executors write the result as Parquet data files with
lakestack's own writer; storage commits those files with the checkpoint in one Iceberg
transaction, exactly as with DuckDB (ADR 0024). Model SQL is DuckDB's dialect, made Spark SQL by
`engine.spark_sql`, and results take the types DuckDB gives the same SQL.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lakestack.engine.base import (
    Engine,
    ResultStream,
    Sandbox,
    SqlFailed,
    SqlInput,
    SqlLimits,
    SqlOutOfMemory,
    SqlRefused,
    SqlTimeout,
    WriteTarget,
)

log = logging.getLogger(__name__)
Inputs = Sequence[SqlInput] | Callable[[list[str]], Sequence[SqlInput]]
FLUSH_BYTES = 256 * 1024 * 1024  # Arrow bytes an executor task holds before it writes files
# Spark SQL functions that reach outside the given tables (files, the JVM) are refused in models/checks.
_REFUSED_FUNCTIONS = {"reflect", "java_method", "try_reflect", "read_files", "input_file_name"}
_FILE_SOURCES = {"parquet", "csv", "json", "orc", "text", "avro", "binaryfile", "delta", "iceberg", "file"}


class SparkEngine(Engine):
    """Spark (`local[N]` or a cluster) behind the engine seam; relations are temp views."""

    name = "spark"
    dialect = "spark"

    def __init__(self, environment: Any = None, *, purpose: str = "pipeline", limits: SqlLimits | None = None) -> None:
        from lakestack.engine.spark_session import get_session, settings_of

        self.environment = environment
        self.purpose = purpose
        self.limits = limits
        self.session = get_session(environment)
        self.catalog = settings_of(environment)["catalog"]
        self._prefix = f"ls{uuid.uuid4().hex[:8]}_"
        self._views: dict[str, str] = {}  # relation name (lower case) → temp view
        self._cached: list[Any] = []
        self._closed = False

    # -- relations -------------------------------------------------------------------------------
    def register_table(self, name: str, table: Any, snapshot_id: int | None = None) -> None:
        scan = table.scan(snapshot_id=snapshot_id) if snapshot_id is not None else table.scan()
        tasks = list(scan.plan_files()) if table.current_snapshot() is not None else []
        schema = table.schema() if snapshot_id is None else scan.projection()
        if tasks and any(t.delete_files for t in tasks):  # pyiceberg applies the deletes
            self.register_arrow(name, scan.to_arrow())
            return
        self._view(name, self._parquet([t.file.file_path for t in tasks], schema))

    def register_files(self, name: str, paths: Sequence[str], table: Any) -> None:
        self._view(name, self._parquet(list(paths), table.schema()))

    def register_arrow(self, name: str, data: Any) -> None:
        self._view(name, self._from_arrow(data))

    def materialize(self, name: str, query: Any) -> None:
        frame = self.frame(query).persist()
        frame.count()  # computed now, kept by Spark's block manager (memory, then disk)
        self._cached.append(frame)
        self._view(name, frame)

    # -- results ---------------------------------------------------------------------------------
    def execute(self, query: Any, batch_rows: int = 131_072) -> Any:
        import pyarrow as pa

        frame = self.frame(query)
        schema = arrow_schema(frame.schema)
        return pa.RecordBatchReader.from_batches(schema, stream_batches(frame, schema, batch_rows))

    def fetch(self, query: Any) -> Any:
        frame = self.frame(query)
        return frame.toArrow().cast(arrow_schema(frame.schema))

    def write_data_files(self, query: Any, target: WriteTarget) -> list[Any]:
        """Executors write the files (lakestack's partitioned writer, one Spark task per group of
        day partitions); the driver only collects their `DataFile` entries."""
        from pyspark.sql import functions as F

        frame = self.frame(query)
        column = day_partition_column(target.metadata)
        if column is not None:  # one task per day: one file per day, not one per day and task
            parts = int(self.session.conf.get("spark.sql.shuffle.partitions") or 4)
            frame = frame.repartition(parts, F.to_date(F.col(column)))
        job = _WriteJob(target.metadata, target.io, target.write_uuid, target.schema, FLUSH_BYTES)
        rows = frame.mapInArrow(job, "datafile binary").collect()
        return [pickle.loads(row["datafile"]) for row in rows]

    def files_holding(self, paths: Sequence[str], keys: Sequence[str], relation: str) -> set[str]:
        from pyspark.sql import functions as F

        if not paths:
            return set()
        given = {_plain_path(p): p for p in paths}
        stored = self.session.read.parquet(*[_spark_path(p) for p in paths])
        keyed = stored.select(*[F.col(f"`{k}`") for k in keys], F.input_file_name().alias("__file"))
        wanted = self.frame(f"SELECT DISTINCT {', '.join(f'`{k}`' for k in keys)} FROM {relation}")
        found = keyed.join(wanted, on=list(keys), how="left_semi").select("__file").distinct().collect()
        return {given.get(_plain_path(r["__file"]), r["__file"]) for r in found}

    # -- project SQL -----------------------------------------------------------------------------
    def open_sandbox(
        self, inputs: Inputs, limits: SqlLimits, *, label: str = "the query", naming: Sequence[str] = ()
    ) -> Sandbox:
        return SparkSandbox(SparkEngine(self.environment, purpose=self.purpose), inputs, limits, label, naming)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for view in self._views.values():
            self.session.catalog.dropTempView(view)
        for frame in self._cached:
            frame.unpersist()

    # -- helpers ---------------------------------------------------------------------------------
    def frame(self, query: Any) -> Any:
        """A DataFrame for `query` (a sqlglot expression, or Spark SQL) over this engine's relations."""
        return self.session.sql(self.render(query))

    def render(self, query: Any) -> str:
        """Spark SQL with relation names (`silver.orders`) turned into this engine's temp views."""
        import sqlglot
        import sqlglot.expressions as exp

        from lakestack.engine.spark_sql import rewrite

        # A Spark SQL string may still hold DuckDB-only calls sqlglot passed through (epoch()).
        parsed: Any = sqlglot.parse_one(query, read="spark") if isinstance(query, str) else query.copy()
        tree = rewrite(parsed)

        def rename(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
                name = ".".join(p for p in (node.args.get("db") and node.db, node.name) if p).lower()
                view = self._views.get(name)
                if view is not None:
                    return exp.Table(this=exp.to_identifier(view), alias=node.args.get("alias") or _alias(node))
            return node

        tree = tree.transform(rename)
        return str(self._by_name(tree).sql("spark"))

    def _by_name(self, tree: Any) -> Any:
        """DuckDB's `UNION [ALL] BY NAME` (Spark SQL has none): each side's columns are asked of
        Spark, innermost union first, and both sides select the union of them in the left's order
        (NULL where a side lacks one), as DuckDB does."""
        import sqlglot.expressions as exp

        while True:
            unions = [u for u in tree.find_all(exp.Union) if u.args.get("by_name")]
            inner = [u for u in unions if not any(v is not u and v.find_ancestor(exp.Union) is u for v in unions)]
            if not inner:
                return tree
            union = inner[0]
            left, right = union.this, union.expression
            left_cols = self.session.sql(left.sql("spark")).columns
            right_cols = self.session.sql(right.sql("spark")).columns
            names = left_cols + [c for c in right_cols if c not in left_cols]

            def side(query: Any, has: list[str], alias: str, names: list[str] = names) -> Any:
                picks = [
                    exp.column(n, quoted=True) if n in has else exp.alias_(exp.Null(), n, quoted=True) for n in names
                ]
                return exp.select(*picks).from_(exp.paren(query.copy()).as_(alias))

            fixed = exp.Union(
                this=side(left, left_cols, "__l"),
                expression=side(right, right_cols, "__r"),
                distinct=union.args.get("distinct"),
            )
            if union is tree:
                tree = fixed
            else:
                union.replace(fixed)

    def _view(self, name: str, frame: Any) -> None:
        view = self._prefix + name.lower().replace(".", "__")
        frame.createOrReplaceTempView(view)
        self._views[name.lower()] = view

    def _parquet(self, paths: list[str], schema: Any) -> Any:
        """The Parquet files `paths` read by the Iceberg `schema`'s field ids (no rows when none)."""
        spark_schema = spark_schema_of(schema)
        if not paths:
            return self.session.createDataFrame([], spark_schema)
        return self.session.read.schema(spark_schema).parquet(*[_spark_path(p) for p in paths])

    def _from_arrow(self, data: Any) -> Any:
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = from_arrow_schema(data.schema)
        if not data.num_rows:
            return self.session.createDataFrame([], schema)
        return self.session.createDataFrame(data, schema=schema)


def _alias(node: Any) -> Any:
    """A `silver.orders` reference keeps `orders` as its alias, so `orders.col` still resolves."""
    import sqlglot.expressions as exp

    return exp.TableAlias(this=exp.to_identifier(node.name)) if node.args.get("db") else None


def _plain_path(path: str) -> str:
    return "/" + path.removeprefix("file:").lstrip("/")


def _spark_path(path: str) -> str:
    return "file://" + _plain_path(path) if path.startswith(("/", "file:")) else path


def spark_schema_of(schema: Any) -> Any:
    """The Spark schema of an Iceberg schema, with each top-level field's id (read by field id)."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    fields = []
    for nested, arrow in zip(schema.fields, schema.as_arrow(), strict=True):
        kind = from_arrow_type(_no_large(arrow.type))
        fields.append(StructField(nested.name, kind, not nested.required, {"parquet.field.id": nested.field_id}))
    return StructType(fields)


def _no_large(kind: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    if pa.types.is_large_list(kind):
        return pa.list_(_no_large(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _no_large(f.type), f.nullable) for f in kind])
    return kind


def arrow_schema(spark_schema: Any) -> Any:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema, prefers_large_types=False)


def day_partition_column(metadata: Any) -> str | None:
    """The source column of a table partitioned by one day transform, else None."""
    from pyiceberg.transforms import DayTransform

    spec = metadata.spec()
    if len(spec.fields) != 1 or not isinstance(spec.fields[0].transform, DayTransform):
        return None
    name: str = metadata.schema().find_column_name(spec.fields[0].source_id)
    return name


class _WriteJob:
    """Runs in each executor task: its Arrow batches → lakestack's partitioned Parquet writer →
    pickled pyiceberg `DataFile`s. File names carry a per-task UUID derived from the commit's."""

    def __init__(self, metadata: Any, io: Any, write_uuid: Any, schema: Any, flush_bytes: int) -> None:
        self.metadata, self.io, self.write_uuid, self.schema, self.flush_bytes = (
            metadata,
            io,
            write_uuid,
            schema,
            flush_bytes,
        )

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        from lakestack.storage.evolution import conform
        from lakestack.storage.warehouse import write_data_files

        context = TaskContext.get()
        task = f"{context.partitionId()}-{context.attemptNumber()}" if context is not None else "0-0"
        pending: list[Any] = []
        size = 0
        for flush in itertools.count():
            for batch in batches:
                pending.append(batch)
                size += batch.nbytes
                if size >= self.flush_bytes:
                    break
            if not pending:
                return
            data = conform(pa.Table.from_batches(pending), self.schema)
            pending, size = [], 0
            write_uuid = uuid.uuid5(self.write_uuid, f"{task}-{flush}")
            for data_file in write_data_files(self.metadata, self.io, data, write_uuid):
                yield pa.RecordBatch.from_pydict({"datafile": [pickle.dumps(data_file)]})


def stream_batches(frame: Any, schema: Any, batch_rows: int, cast_to: Any = None) -> Iterator[Any]:
    """The frame's result as Arrow batches, one Spark partition at a time on the driver: executors
    serialise their batches (Arrow IPC), `toLocalIterator` fetches partition after partition."""
    import pyarrow as pa

    def to_ipc(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            for start in range(0, max(batch.num_rows, 1), batch_rows):
                piece = batch.slice(start, batch_rows)
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, piece.schema) as writer:
                    writer.write_batch(piece)
                yield pa.RecordBatch.from_pydict({"ipc": [sink.getvalue().to_pybytes()]})

    names = frame.columns
    positional = frame.toDF(*[f"_c{i}" for i in range(len(names))])  # any name (`x / 1.0`, duplicates) survives
    for row in positional.mapInArrow(to_ipc, "ipc binary").toLocalIterator(prefetchPartitions=True):
        for batch in pa.ipc.open_stream(row["ipc"]):
            if batch.num_rows:
                table = pa.Table.from_batches([batch]).rename_columns(names).cast(cast_to or schema)
                yield from table.to_batches()


# -- the sandbox for models and checks ----------------------------------------------------------


class SparkResult(ResultStream):
    def __init__(self, sandbox: SparkSandbox, schema: Any, batches: Iterator[Any], limits: SqlLimits) -> None:
        self._sandbox, self.schema, self._batches, self._limits = sandbox, schema, batches, limits

    def __iter__(self) -> Iterator[Any]:
        from lakestack.engine.base import Truncation

        size = 0
        for batch in self._sandbox.guarded(self._batches):
            size += batch.nbytes
            limit = self._limits.max_rows
            if limit is not None and self.rows + batch.num_rows > limit:
                self.truncated = Truncation(limit, "max_rows", limit)
                yield batch.slice(0, limit - self.rows)
                self.rows = limit
                return
            if self._limits.max_bytes is not None and size > self._limits.max_bytes:
                self.truncated = Truncation(self.rows, "max_bytes", self._limits.max_bytes)
                return
            self.rows += batch.num_rows
            yield batch

    def read_all(self) -> Any:
        import pyarrow as pa

        return pa.Table.from_batches(list(self), schema=self.schema)

    def close(self) -> None:
        self._sandbox.close()


class SparkSandbox(Sandbox):
    """Project SQL (Gold models, checks) on Spark over the given inputs only: exactly one query,
    no file or JVM access by name, the time limit enforced by cancelling the statement's jobs.
    Untrusted SQL (`lakestack query`, the HTTP API) never comes here: it stays on DuckDB."""

    def __init__(
        self, engine: SparkEngine, inputs: Inputs, limits: SqlLimits, label: str, naming: Sequence[str]
    ) -> None:
        self._engine, self.limits, self.label = engine, limits, label
        self._schemas: dict[str, Any] = {}
        try:
            if callable(inputs):
                inputs = inputs(sorted({n for sql in naming for n in tables_named(sql)}))
            for item in inputs:
                self._register(item)
        except BaseException:
            engine.close()
            raise

    def _register(self, item: SqlInput) -> None:
        import pyarrow as pa

        if isinstance(item.table, pa.Table):
            self._engine.register_arrow(item.name, item.table)
            self._schemas[item.name.lower()] = item.table.schema
        else:
            self._engine.register_table(item.name, item.table, snapshot_id=item.snapshot_id)
            self._schemas[item.name.lower()] = item.table.schema().as_arrow()

    def check(self, sql: str) -> None:
        import sqlglot
        import sqlglot.expressions as exp

        try:
            statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
        except sqlglot.errors.ParseError as exc:
            raise SqlRefused(f"{self.label} does not parse: {str(exc).splitlines()[0]}", label=self.label) from None
        if len(statements) != 1 or not isinstance(statements[0], exp.Query):
            raise SqlRefused(f"{self.label} must be exactly one SELECT", label=self.label)
        ctes = {c.alias_or_name.lower() for c in statements[0].find_all(exp.CTE)}
        for table in statements[0].find_all(exp.Table):
            name = ".".join(p for p in (table.db, table.name) if p).lower()
            unknown = table.db.lower() in _FILE_SOURCES or (name not in self._schemas and name not in ctes)
            if unknown and table.name and isinstance(table.this, exp.Identifier):
                raise SqlRefused(f"{self.label} reads '{name}', which it was not given", label=self.label)
        for func in statements[0].find_all(exp.Anonymous):
            if str(func.this).lower() in _REFUSED_FUNCTIONS:
                raise SqlRefused(
                    f"{self.label} calls {func.this}(), which reaches outside its tables", label=self.label
                )

    def _prepared(self, sql: str) -> tuple[Any, Any]:
        """The DataFrame for `sql` and the schema its result takes (DuckDB's, for transpiled SQL)."""
        from lakestack.engine.spark_sql import duckdb_schema, original_of, sql_schema, to_spark

        original = original_of(sql)
        target = None
        if original is not None:
            sql = to_spark(original, sql_schema(self._schemas))  # now with the input types known
            target = duckdb_schema(original, self._schemas)
        self.check(sql)
        frame = self._engine.frame(sql)
        schema = arrow_schema(frame.schema)
        if target is not None and target.names == schema.names:
            schema = target
        return frame, schema

    def table(self, sql: str) -> Any:
        stream = self.stream(sql, close=False)
        table = stream.read_all()
        if stream.truncated is not None:
            raise SqlFailed(
                f"{self.label}: the result is over its limit ({stream.truncated.limit} {stream.truncated.value})",
                label=self.label,
            )
        return table

    def stream(self, sql: str, close: bool = True, *, small_rows: int = 0) -> ResultStream:  # Arrow always
        frame, schema = self.guard(lambda: self._prepared(sql))
        batches = stream_batches(frame, arrow_schema(frame.schema), 131_072, cast_to=schema)
        result = SparkResult(self, schema, batches, self.limits)
        if not close:
            result.close = lambda: None  # type: ignore[method-assign]
        return result

    def guard(self, run: Callable[[], Any]) -> Any:
        """`run()` under the time limit, Spark errors as SqlErrors."""
        timer = self._timer()
        try:
            return run()
        except Exception as exc:
            raise self._translate(exc, timer) from None
        finally:
            timer.cancel()

    def guarded(self, batches: Iterator[Any]) -> Iterator[Any]:
        """`batches`, read under the time limit (a slow consumer counts too), errors as SqlErrors."""
        timer = self._timer()
        try:
            yield from batches
        except Exception as exc:
            raise self._translate(exc, timer) from None
        finally:
            timer.cancel()

    def _timer(self) -> threading.Timer:
        """Cancels this thread's Spark jobs once the time limit has passed."""
        context = self._engine.session.sparkContext
        group = f"lakestack-{uuid.uuid4().hex}"
        context.setJobGroup(group, self.label, interruptOnCancel=True)
        timer = threading.Timer(self.limits.timeout_s, context.cancelJobGroup, [group])
        timer.daemon = True
        timer.start()
        return timer

    def _translate(self, exc: Exception, timer: threading.Timer) -> Exception:
        from lakestack.engine.spark_session import first_line

        if isinstance(exc, SqlRefused | SqlFailed):
            return exc
        text = str(getattr(exc, "java_exception", None) or exc)
        detail = python_error(text) or first_line(text)
        if not timer.is_alive() and "cancel" in text.lower():
            return SqlTimeout(f"{self.label} ran past {self.limits.timeout_s:g} s", label=self.label)
        if "OutOfMemoryError" in text:
            return SqlOutOfMemory(f"{self.label} ran out of memory: {detail}", label=self.label, detail=detail)
        return SqlFailed(f"{self.label} failed on Spark: {detail}", label=self.label, detail=detail)

    def close(self) -> None:
        self._engine.close()


def python_error(text: str) -> str | None:
    """The last line of a Python worker's traceback quoted in a Spark error (the error itself)."""
    if "Traceback (most recent call last)" not in text:
        return None
    lines = [line.strip() for line in text.split("Traceback (most recent call last)", 1)[1].splitlines()]
    errors = [line for line in lines if line and not line.startswith(("File ", "^", "at ")) and ":" in line]
    return errors[-1][:500] if errors else None


def tables_named(sql: str) -> list[str]:
    """The tables (`schema.name`, lower case) a Spark SELECT reads, CTEs left out."""
    import sqlglot
    import sqlglot.expressions as exp

    tree = sqlglot.parse_one(sql, read="spark")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    names = {".".join(p for p in (t.db, t.name) if p).lower() for t in tree.find_all(exp.Table) if t.name}
    return sorted(names - ctes)

"""Database pull sources (`kind: database`): a table or a query of PostgreSQL or MySQL/MariaDB.

Rows are read in one ordered query, `batch_rows` at a time (PostgreSQL through ADBC's streamed
COPY, MySQL through an unbuffered PyMySQL cursor: never the whole table in memory), validated
against the contract like the rows of a Parquet file, and committed to Bronze every
`commit_rows`. Each commit carries the source's high-water mark as a `Cursors` checkpoint
(`storage/checkpoints.py`), so the rows and the mark land together or not at all:

- **incremental**: rows are ordered by (cursor, key); the mark is the last committed row's
  (cursor, key) and the next read asks for rows after it (`c > v OR (c = v AND k > kv)`), so
  rows sharing a cursor value at a commit boundary are neither lost nor pulled twice. Rows with a
  NULL cursor are never pulled; a row updated with a smaller cursor value is not seen again.
- **full**: every run pulls the whole table ordered by key; the mark names the pull and the last
  committed key, and a pull interrupted by a crash resumes after that key (its rows are not
  appended twice) before a new pull starts.

A value the contract cannot hold (a type, bound, enum or pattern) sends its row to
`quarantine.<source>` with the reason; that commit comes first and carries the same mark, so a
crash between the two commits does not quarantine a row twice. An unreachable server is a
StorageError (exit 3), an unknown table or column a ConfigError naming the project file (exit 2).
Snowflake and Redshift URLs go through the same path (ADBC's drivers); they are not tested here.
"""

from __future__ import annotations

import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from lakestack.contracts.arrow import records_to_arrow
from lakestack.contracts.model import Contract
from lakestack.contracts.validate import Issue, RecordValidator
from lakestack.errors import ConfigError, Location, MissingExtraError, RunError, StorageError, UsageError
from lakestack.failpoints import failpoint
from lakestack.ingest.base import FileOutcome, IngestObserver, Source, SourceReport
from lakestack.ingest.rows import reason, repeat, stamp
from lakestack.ingest.versions import Versions
from lakestack.storage.checkpoints import Cursors, read_checkpoint
from lakestack.storage.schema import error_struct_type

log = logging.getLogger(__name__)

Mark = tuple[Any, ...]  # the values of the order columns of one row


# -- the high-water mark ---------------------------------------------------------------------------
def encode_value(value: Any) -> list[str]:
    """A cursor or key value as `[type, text]` JSON: exact, and typed back by `decode_value`."""
    if isinstance(value, bool):
        return ["bool", "1" if value else "0"]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    if isinstance(value, datetime):
        return ["datetime", value.isoformat()]
    if isinstance(value, date):
        return ["date", value.isoformat()]
    if isinstance(value, str):
        return ["str", value]
    raise UsageError(f"a {type(value).__name__} value cannot be a cursor or key (use a number, text, date or time)")


def decode_value(item: Sequence[str]) -> Any:
    kind, text = item
    decoders: dict[str, Any] = {
        "bool": lambda t: t == "1",
        "int": int,
        "float": float,
        "decimal": Decimal,
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "str": str,
    }
    return decoders[kind](text)


@dataclass(frozen=True, slots=True)
class PullState:
    """What Bronze's checkpoint says about a source: the mark after which rows are read, and for
    a full pull, which pull it belongs to and whether it finished."""

    mode: str
    after: Mark | None = None
    pull: str | None = None
    done: bool = True

    def encode(self) -> dict[str, Any]:
        after = [encode_value(v) for v in self.after] if self.after is not None else None
        out: dict[str, Any] = {"mode": self.mode, "after": after}
        if self.mode == "full":
            out.update(pull=self.pull, done=self.done)
        return out

    @classmethod
    def decode(cls, value: Any) -> PullState | None:
        if not isinstance(value, dict) or "mode" not in value:
            return None
        after = tuple(decode_value(v) for v in value["after"]) if value.get("after") is not None else None
        return cls(value["mode"], after, value.get("pull"), bool(value.get("done", True)))


# -- connections -----------------------------------------------------------------------------------
class Connection(ABC):
    """One open connection to a source database; `rows` streams a query's rows as dicts."""

    dialect: str  # sqlglot's name for the database's SQL
    where: str  # host:port/db, for messages (never the user or password)

    @abstractmethod
    def rows(self, sql: str, batch_rows: int) -> Iterator[list[dict[str, Any]]]: ...

    @abstractmethod
    def close(self) -> None: ...


def where(url: str) -> str:
    parts = urlsplit(url)
    try:
        host, port = parts.hostname or "localhost", parts.port
    except ValueError:
        return "the configured database"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/{parts.path.lstrip('/')}"


def connect(url: str, source: str, timeout: float) -> Connection:
    """An open connection for `url` (a resolved secret: never logged); the driver by its scheme."""
    scheme = urlsplit(url).scheme.lower().split("+")[0]
    if scheme in ("postgresql", "postgres"):
        return _Postgres(url, source, timeout)
    if scheme == "redshift":  # ADBC's PostgreSQL driver dropped Redshift in 1.11: psycopg speaks its protocol
        return _Psycopg(url, source, timeout)
    if scheme in ("mysql", "mariadb"):
        return _MySQL(url, source, timeout)
    if scheme == "snowflake":
        return _Snowflake(url, source)
    raise ConfigError(
        f"database source '{source}': unknown URL scheme '{scheme}' (postgresql://, mysql://, mariadb://, "
        "redshift://, snowflake://)"
    )


class _Postgres(Connection):
    dialect = "postgres"

    def __init__(self, url: str, source: str, timeout: float) -> None:
        try:
            import adbc_driver_postgresql.dbapi as pg  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingExtraError(f"the database source '{source}'", "postgres") from exc
        self.where = where(url)
        if "connect_timeout=" not in url:
            url += ("&" if "?" in url else "?") + f"connect_timeout={max(1, int(timeout))}"
        try:
            self.con: Any = pg.connect(url, autocommit=True)
            with self.con.cursor() as cur:  # a cursor's text literals and naive values are UTC
                cur.execute("SET TIME ZONE 'UTC'")
        except Exception as exc:
            raise StorageError(f"database source '{source}' ({self.where}) cannot be reached: {_first(exc)}") from None

    def rows(self, sql: str, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
        cur = self.con.cursor()
        try:
            cur.execute(sql)
            for batch in cur.fetch_record_batch():  # COPY streamed: one Arrow batch in memory at a time
                for start in range(0, batch.num_rows, batch_rows):
                    yield _dicts(batch.slice(start, batch_rows))
        finally:
            cur.close()

    def close(self) -> None:
        self.con.close()


class _Psycopg(Connection):
    """Redshift (or any server speaking PostgreSQL's protocol without binary COPY) through psycopg 3,
    a server-side cursor fetched `batch_rows` at a time. Tested against PostgreSQL, not Redshift."""

    dialect = "redshift"

    def __init__(self, url: str, source: str, timeout: float) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MissingExtraError(f"the database source '{source}'", "postgres") from exc
        self.where = where(url)
        plain = "postgresql" + url[url.index("://") :]
        try:
            self.con: Any = psycopg.connect(plain, connect_timeout=max(1, int(timeout)))
            self.con.execute("SET TIME ZONE 'UTC'")
        except Exception as exc:
            raise StorageError(f"database source '{source}' ({self.where}) cannot be reached: {_first(exc)}") from None

    def rows(self, sql: str, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
        with self.con.cursor(name="lakestack_pull") as cur:  # server-side: rows stay on the server until fetched
            cur.execute(sql)
            names: list[str] | None = None
            while chunk := cur.fetchmany(batch_rows):
                names = names or [d.name for d in cur.description]
                yield [dict(zip(names, row, strict=True)) for row in chunk]
        self.con.rollback()

    def close(self) -> None:
        self.con.close()


class _MySQL(Connection):
    dialect = "mysql"

    def __init__(self, url: str, source: str, timeout: float) -> None:
        try:
            import pymysql  # type: ignore[import-untyped]
            import pymysql.cursors  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingExtraError(f"the database source '{source}'", "mysql") from exc
        self.where = where(url)
        parts = urlsplit(url)
        try:
            self.con: Any = pymysql.connect(
                host=parts.hostname or "localhost",
                port=parts.port or 3306,
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                database=parts.path.lstrip("/") or None,
                connect_timeout=max(1, int(timeout)),
                charset="utf8mb4",
                cursorclass=pymysql.cursors.SSCursor,  # unbuffered: rows stream from the server
            )
            with self.con.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
        except Exception as exc:
            code = exc.args[0] if exc.args else None
            if code == 1049:  # unknown database
                raise ConfigError(f"database source '{source}' ({self.where}): {_first(exc)}") from None
            raise StorageError(f"database source '{source}' ({self.where}) cannot be reached: {_first(exc)}") from None

    def rows(self, sql: str, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
        cur = self.con.cursor()
        try:
            cur.execute(sql)
            names = [d[0] for d in cur.description]
            while chunk := cur.fetchmany(batch_rows):
                yield [dict(zip(names, row, strict=True)) for row in chunk]
        finally:
            cur.close()

    def close(self) -> None:
        self.con.close()


class _Snowflake(Connection):
    """Snowflake through ADBC's driver (`pip install adbc-driver-snowflake`); not tested offline."""

    dialect = "snowflake"

    def __init__(self, url: str, source: str) -> None:
        try:
            import adbc_driver_snowflake.dbapi as sf  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError(
                f"database source '{source}': a snowflake:// URL needs ADBC's Snowflake driver (pip install "
                "adbc-driver-snowflake; not part of any lakestack extra: it is not tested offline)"
            ) from exc
        self.where = where(url)
        try:
            self.con: Any = sf.connect(url[len("snowflake://") :])
        except Exception as exc:
            raise StorageError(f"database source '{source}' ({self.where}) cannot be reached: {_first(exc)}") from None

    rows = _Postgres.rows  # the same ADBC cursor API

    def close(self) -> None:
        self.con.close()


def _dicts(batch: Any) -> list[dict[str, Any]]:
    """An Arrow batch as row dicts, converted a column at a time (several times faster than
    `RecordBatch.to_pylist`, which builds each value through a scalar). Zoned timestamps become
    naive UTC (the session runs in UTC; a naive timestamp is read as UTC), which converts twice as
    fast; an opaque type (PostgreSQL's numeric) converts as its text."""
    names = batch.schema.names
    columns = []
    for column in batch.columns:
        if isinstance(column.type, pa.ExtensionType):
            numeric = getattr(column.type, "type_name", None) == "numeric"
            column = column.storage
            if numeric:  # PostgreSQL's numeric comes as text: Decimal, as MySQL's and psycopg's do
                columns.append([None if v is None else Decimal(v) for v in column.to_pylist()])
                continue
        if pa.types.is_timestamp(column.type) or pa.types.is_date32(column.type):
            columns.append(_temporal(column))
            continue
        columns.append(column.to_pylist())
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _temporal(column: Any) -> list[Any]:
    """Timestamps (as naive UTC) and dates as Python values through numpy, ten times faster than
    Arrow's `to_pylist`. A value Python's datetime cannot hold (PostgreSQL's `infinity`, year
    10000) stays a number, which the contract refuses: its row is quarantined, not the pull failed."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us"))  # zoned: the same instants, naive UTC
    values: list[Any] = column.to_numpy(zero_copy_only=False).astype(object).tolist()
    return values


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else 'no message'}"


# -- SQL -------------------------------------------------------------------------------------------
def build_query(
    dialect: str, table: str | None, query: str | None, columns: Sequence[str], order: Sequence[str], after: Mark | None
) -> str:
    """SELECT the columns FROM the table (or the query as a subquery) WHERE (order) > after ORDER BY
    order, built as a sqlglot tree: names quoted, values literals, nothing pasted."""
    import sqlglot
    from sqlglot import exp

    if table is not None:
        source: exp.Expression = exp.to_table(table, dialect=dialect)
    else:
        assert query is not None
        parsed = sqlglot.parse(query, read=dialect)
        if len(parsed) != 1 or not isinstance(parsed[0], exp.Query):
            raise ValueError("'query' must be one SELECT statement")
        source = parsed[0].subquery("lakestack_q")
    names = list(dict.fromkeys([*columns, *order]))
    select = exp.select(*[exp.column(c, quoted=True) for c in names]).from_(source)
    if after is not None:
        select = select.where(_after(order, after))
    for name in order:
        select = select.where(exp.column(name, quoted=True).is_(exp.null()).not_())
    # no NULL can come (filtered above): order as the dialect does by default, so no NULLS clause
    # (or MySQL's CASE emulation of one) keeps the server from reading the key's index in order
    nulls_first = sqlglot.Dialect.get_or_raise(dialect).NULL_ORDERING == "nulls_are_small"
    select = select.order_by(*[exp.Ordered(this=exp.column(c, quoted=True), nulls_first=nulls_first) for c in order])
    return select.sql(dialect=dialect)


def _after(order: Sequence[str], after: Mark) -> Any:
    """(c1, c2, ...) > (v1, v2, ...) spelt out: c1 > v1 OR (c1 = v1 AND c2 > v2) OR ..."""
    from sqlglot import exp

    terms = []
    for i, name in enumerate(order):
        parts: list[exp.Expression] = [
            exp.EQ(this=exp.column(order[j], quoted=True), expression=_literal(after[j])) for j in range(i)
        ]
        parts.append(exp.GT(this=exp.column(name, quoted=True), expression=_literal(after[i])))
        terms.append(exp.and_(*parts) if len(parts) > 1 else parts[0])
    return exp.or_(*terms) if len(terms) > 1 else terms[0]


def _literal(value: Any) -> Any:
    from sqlglot import exp

    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | Decimal):
        return exp.Literal.number(str(value))
    if isinstance(value, float):
        return exp.Literal.number(repr(value))
    if isinstance(value, datetime):  # the server reads the text as the column's type
        text = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return exp.Literal.string(text.isoformat(sep=" ") + ("+00:00" if value.tzinfo else ""))
    if isinstance(value, date):
        return exp.Literal.string(value.isoformat())
    return exp.Literal.string(str(value))


# -- the source ------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Buffer:
    bronze: list[pa.Table] = field(default_factory=list)
    quarantine: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    last: Mark | None = None


@dataclass(slots=True)
class _Totals:
    rows_in: int = 0
    landed: int = 0
    quarantined: int = 0
    commits: int = 0
    snapshots: dict[str, int] = field(default_factory=dict)


class DatabaseSource(Source):
    """Rows of a database table or query, pulled in full or incrementally by a cursor column."""

    kind = "database"

    def __init__(self, name: str, contract: Contract, settings: Any, *, location: Location | None = None) -> None:
        self.name = name
        self.contract = contract
        self.settings = settings
        self.location = location  # where the block is in lakestack.yaml, for errors about it
        key = list(settings.key or contract.key or ())
        if not key:
            raise ConfigError(
                f"database source '{name}' needs a key to order and resume its pull: set 'key' or give the "
                "contract one",
                location,
            )
        self.key = key
        self.order = ([settings.cursor] if settings.mode == "incremental" else []) + key
        self.validator = RecordValidator(contract)
        self.versions = Versions(contract)  # what quarantine replay asks a source for
        self.label = settings.table or "query"
        self._held: Any = None

    @property
    def cursor_name(self) -> str:
        return f"database:{self.name}"

    def pending(self, warehouse: Any) -> tuple[list[Any], int]:
        """Nothing is waiting in a landing folder: a pull asks the database when it runs."""
        return [], 0

    def state(self, table: Any) -> PullState | None:
        return PullState.decode(read_checkpoint(table, Cursors).values.get(self.cursor_name))

    def _read_held(self, table: Any) -> PullState | None:
        """Bronze's mark, remembered as read: a commit lands only if it is still that (a fence)."""
        self._held = read_checkpoint(table, Cursors).values.get(self.cursor_name)
        return PullState.decode(self._held)

    # -- ingesting -----------------------------------------------------------------------------
    def ingest(
        self, warehouse: Any, run_id: str, observer: IngestObserver, only: list[str] | None = None
    ) -> SourceReport:
        if only:
            raise UsageError(f"source '{self.name}' pulls from a database: --file is for file sources")
        started = time.perf_counter()
        observer.source_started(self.name, 1, 0)
        bronze = warehouse.bronze_table(self.contract)
        quarantine = warehouse.quarantine_table(self.name)
        begin = self._begin(self._read_held(bronze), run_id)
        q_state = self.state(quarantine)
        same = q_state is not None and q_state.mode == begin.mode and q_state.pull == begin.pull
        q_after = q_state.after if same and q_state is not None else None
        conn = connect(self.settings.url.resolve(), self.name, self.settings.connect_timeout)
        totals = _Totals()
        try:
            totals = self._pull(conn, begin, q_after, bronze, quarantine, run_id)
        finally:
            conn.close()
        what = f"{self.settings.mode} pull"
        outcome = FileOutcome(
            self.label,
            "landed",
            None,
            0,
            totals.rows_in,
            totals.landed,
            totals.quarantined,
            reason=f"{what}: {totals.rows_in:,} rows in {totals.commits} commit(s)",
        )
        observer.file_finished(self.name, outcome)
        return SourceReport(self.name, (outcome,), time.perf_counter() - started, totals.snapshots)

    def _begin(self, held: PullState | None, run_id: str) -> PullState:
        """Where this run's read starts: after the committed mark (incremental), or a new full pull
        unless the last one was interrupted (then it resumes after its last committed key)."""
        mode = self.settings.mode
        if held is not None and held.mode != mode:
            log.info("source %s: mode changed from %s to %s; the pull starts over", self.name, held.mode, mode)
            held = None
        if mode == "incremental":
            return PullState("incremental", held.after if held else None)
        if held is not None and not held.done:
            return held
        return PullState("full", None, run_id, False)

    def _pull(
        self, conn: Connection, begin: PullState, q_after: Mark | None, bronze: Any, quarantine: Any, run_id: str
    ) -> _Totals:
        try:
            sql = build_query(
                conn.dialect,
                self.settings.table,
                self.settings.query,
                self.contract.column_names,
                self.order,
                begin.after,
            )
        except Exception as exc:
            raise ConfigError(f"database source '{self.name}': {exc}", self.location) from None
        totals = _Totals()
        state, buf, line = begin, _Buffer(), 0
        rows = conn.rows(sql, self.settings.batch_rows)
        while True:
            try:
                chunk = next(rows, None)
            except Exception as exc:
                raise self._driver_error(conn, exc) from None
            if chunk is None:
                break
            self._collect(chunk, line, q_after, buf, totals)
            line += len(chunk)
            if buf.rows >= self.settings.commit_rows:
                state = self._commit(buf, state, False, bronze, quarantine, run_id, totals)
                buf = _Buffer()
        if buf.rows or (state.mode == "full" and not state.done):
            self._commit(buf, state, True, bronze, quarantine, run_id, totals)
        return totals

    def _driver_error(self, conn: Connection, exc: BaseException) -> Exception:
        """A driver's error as ours: an unknown table or column (exit 2), or anything else (exit 3)."""
        state = getattr(exc, "sqlstate", None)
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = _first(exc)
        if state in ("42P01", "42703", "3F000", "42601", "42883") or code in (1146, 1054, 1064, 1049):
            what = "table or column not found" if state in ("42P01", "42703", "3F000") or code in (1146, 1054) else ""
            prefix = f"{what}: " if what else ""
            return ConfigError(f"database source '{self.name}' ({conn.where}): {prefix}{text}", self.location)
        return StorageError(
            f"database source '{self.name}' ({conn.where}) failed while reading; what was committed before stays "
            f"committed and the next run goes on from there: {text}"
        )

    def _collect(
        self, chunk: list[dict[str, Any]], line: int, q_after: Mark | None, buf: _Buffer, totals: _Totals
    ) -> None:
        """Validate one batch of rows into the buffer's Bronze and quarantine parts."""
        import msgspec

        names = self.contract.column_names
        marks = [tuple(r[c] for c in self.order) for r in chunk]
        raws = [msgspec.json.encode(r, enc_hook=str).decode() for r in chunk]
        records = chunk if set(self.order) <= set(names) else [{c: r[c] for c in names} for r in chunk]
        outcome = self.validator.validate_objects(records)
        n_valid = len(outcome.valid)
        typed = records_to_arrow(outcome.valid, self.contract)
        idx = outcome.valid_positions
        meta = {
            "_raw": pa.array([raws[i] for i in idx], pa.string()),
            "_ingested_at": pa.nulls(n_valid, pa.timestamp("us", tz="UTC")),
            "_source": repeat(self.name, n_valid, pa.string()),
            "_source_file": repeat(self.label, n_valid, pa.string()),
            "_source_line": pa.array([line + i + 1 for i in idx], pa.int64()),
            "_file_date": pa.nulls(n_valid, pa.date32()),
            "_source_position": pa.array([_position(marks[i]) for i in idx], pa.string()),
            "_run_id": pa.nulls(n_valid, pa.string()),
            "_contract_version": repeat(self.contract.version, n_valid, pa.int32()),
        }
        for col, values in meta.items():
            typed = typed.append_column(col, values)
        bad = [(i, issues) for i, issues in outcome.invalid if q_after is None or marks[i] > q_after]
        buf.bronze.append(typed)
        if bad:
            buf.quarantine.append(self._quarantine_rows(bad, raws, marks, line))
        buf.rows += len(chunk)
        buf.last = marks[-1]
        totals.rows_in += len(chunk)
        totals.landed += n_valid
        totals.quarantined += len(outcome.invalid)

    def _quarantine_rows(
        self, bad: list[tuple[int, list[Issue]]], raws: list[str], marks: list[Mark], line: int
    ) -> pa.Table:
        n = len(bad)
        errors = [[{"path": i.path, "rule": i.rule, "message": i.message} for i in issues] for _, issues in bad]
        return pa.table(
            {
                "_source": repeat(self.name, n, pa.string()),
                "_source_file": repeat(self.label, n, pa.string()),
                "_source_line": pa.array([line + i + 1 for i, _ in bad], pa.int64()),
                "_file_hash": pa.nulls(n, pa.string()),
                "_source_position": pa.array([_position(marks[i]) for i, _ in bad], pa.string()),
                "_scope": repeat("record", n, pa.string()),
                "_raw": pa.array([raws[i] for i, _ in bad], pa.string()),
                "_errors": pa.array(errors, pa.list_(error_struct_type())),
                "_reason": pa.array([reason(issues) for _, issues in bad], pa.string()),
                "_contract_version": repeat(self.contract.version, n, pa.int32()),
                "_run_id": pa.nulls(n, pa.string()),
                "_ingested_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
            }
        )

    def _commit(
        self,
        buf: _Buffer,
        state: PullState,
        last: bool,
        bronze: Any,
        quarantine: Any,
        run_id: str,
        totals: _Totals,
    ) -> PullState:
        """Commit the buffer: its quarantine part, then its Bronze part, each with the new mark."""
        from lakestack.storage.warehouse import append

        after = buf.last if buf.last is not None else state.after
        new = PullState(state.mode, after, state.pull, last if state.mode == "full" else True)
        mark = Cursors({self.cursor_name: new.encode()})
        now = datetime.now(UTC)
        key = f"{run_id}:{self.name}:" + hashlib.sha256(repr(new.encode()).encode()).hexdigest()[:16]
        if buf.quarantine:
            rows = stamp(pa.concat_tables(buf.quarantine), run_id, now)
            quarantine = append(quarantine, rows, run_id=run_id, batch_id=f"{key}:q", checkpoint=mark)
            totals.snapshots[f"quarantine.{self.name}"] = quarantine.current_snapshot().snapshot_id
        failpoint("database.after_quarantine_commit")
        data = (
            stamp(pa.concat_tables(buf.bronze), run_id, now) if buf.bronze else bronze.schema().as_arrow().empty_table()
        )
        failpoint("database.before_bronze_commit")
        held_before = self._held

        def attempt(table: Any) -> tuple[pa.Table, Cursors]:
            if read_checkpoint(table, Cursors).values.get(self.cursor_name) != held_before:
                raise RunError(
                    f"bronze.{self.name}: another run pulled from the database while this one read (its mark "
                    "moved); nothing more was committed by this run, and the next run goes on from the new mark"
                )
            return data, mark

        bronze = append(bronze, None, run_id=run_id, batch_id=f"{key}:b", attempt=attempt)
        totals.snapshots[f"bronze.{self.name}"] = bronze.current_snapshot().snapshot_id
        totals.commits += 1
        self._held = mark.values[self.cursor_name]
        failpoint("database.after_bronze_commit")
        return new


def _position(mark: Mark) -> str:
    import msgspec

    return msgspec.json.encode(mark, enc_hook=str).decode()

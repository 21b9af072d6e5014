"""DuckDB over Iceberg tables planned by pyiceberg (no DuckDB extensions needed or downloaded)."""

from __future__ import annotations

from typing import Any

from lakestack.engine.base import Engine


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, *, threads: int | None = None, memory_limit: str | None = None) -> None:
        import duckdb

        self.con = duckdb.connect(
            ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        self.con.execute("SET enable_progress_bar = false")
        self._files: list[str] = []
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])

    def register(self, name: str, table: Any, snapshot_id: int | None = None) -> None:
        """A view `name` (optionally `schema.name`) over the table's data files at a snapshot.

        Without delete files the view reads the Parquet files pyiceberg plans; with them, or for an
        empty table, it reads pyiceberg's Arrow scan.
        """
        import sqlglot.expressions as exp

        view = exp.to_table(name, dialect="duckdb").sql("duckdb")
        scan = table.scan(snapshot_id=snapshot_id) if snapshot_id is not None else table.scan()
        tasks = list(scan.plan_files()) if table.current_snapshot() is not None else []
        if not tasks or any(t.delete_files for t in tasks):
            arrow = scan.to_arrow() if tasks else table.schema().as_arrow().empty_table()
            alias = f"_arrow_{abs(hash(name))}"
            self.con.register(alias, arrow)
            self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {alias}")
            return
        select = exp.select("*").from_(parquet_scan([t.file.file_path for t in tasks]))
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {select.sql('duckdb')}")
        self._files += [t.file.file_path.removeprefix("file://") for t in tasks]

    def files_holding(self, paths: list[str], keys: list[str], table: str) -> set[str]:
        """Which of the Parquet files `paths` hold a row whose `keys` appear in the view/table `table`."""
        from sqlglot import exp

        if not paths:
            return set()
        columns = [exp.column(k, quoted=True) for k in keys]
        condition = exp.In(
            this=exp.Tuple(expressions=columns), query=exp.select(*[c.copy() for c in columns]).from_(table).subquery()
        )
        query = (
            exp.select(exp.Distinct(expressions=[exp.column("filename")]))
            .from_(parquet_scan(paths, filename=True))
            .where(condition)
        )
        found = {row[0] for row in self.con.execute(query.sql("duckdb")).fetchall()}
        return {p for p in paths if _local(p) in found}

    def lock_down(self, *, memory_limit: str = "2GB", threads: int = 2) -> None:
        """After registering tables: no file access beyond their data files, no settings changes."""
        from sqlglot import exp

        paths = exp.Array(expressions=[exp.Literal.string(f) for f in self._files]).sql("duckdb")
        self.con.execute(f"SET allowed_paths = {paths}")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET memory_limit = ?", [memory_limit])
        self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("SET lock_configuration = true")

    def read_only_query(self, query: str, *, timeout_s: float = 60.0) -> Any:
        """Run exactly one SELECT, interrupted after `timeout_s` seconds."""
        import threading

        from lakestack.errors import UsageError

        try:
            statements = self.con.extract_statements(query)
        except Exception as exc:  # a parser error from DuckDB
            raise UsageError(f"the query does not parse: {str(exc).splitlines()[0]}") from None
        if len(statements) != 1 or "SELECT" not in str(statements[0].type):
            kinds = ", ".join(str(s.type).removeprefix("StatementType.") for s in statements) or "nothing"
            raise UsageError(f"only one read-only SELECT is allowed (got: {kinds})")
        timer = threading.Timer(timeout_s, self.con.interrupt)
        timer.start()
        try:
            return self.sql(query)
        except Exception as exc:
            if "INTERRUPT" in str(exc).upper():
                raise UsageError(f"the query ran longer than {timeout_s:g} s and was stopped") from None
            raise UsageError(f"the query failed: {str(exc).splitlines()[0]}") from None
        finally:
            timer.cancel()

    def sql(self, query: str, params: list[Any] | None = None) -> Any:
        relation = self.con.sql(query, params=params or None)
        if relation is None:
            return None
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2.x / 1.x
        return fetch()

    def close(self) -> None:
        self.con.close()


def _local(path: str) -> str:
    return path.removeprefix("file://")


def parquet_scan(paths: list[str], *, filename: bool = False) -> Any:
    """`read_parquet([...])` over data files, by column name, ignoring Hive-style folder names."""
    from sqlglot import exp

    options = [("union_by_name", exp.true()), ("hive_partitioning", exp.false())]
    if filename:
        options.append(("filename", exp.true()))
    return exp.Table(
        this=exp.func(
            "read_parquet",
            exp.Array(expressions=[exp.Literal.string(_local(p)) for p in paths]),
            *[exp.EQ(this=exp.column(k), expression=v) for k, v in options],
        )
    )

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
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])

    def register(self, name: str, table: Any, snapshot_id: int | None = None) -> None:
        """A view over the table's current data files, or its Arrow scan when deletes exist."""
        import sqlglot.expressions as exp

        scan = table.scan(snapshot_id=snapshot_id)
        tasks = list(scan.plan_files())
        view = exp.to_identifier(name).sql("duckdb")
        if not tasks:
            self.con.register(name, table.schema().as_arrow().empty_table())
            return
        if any(t.delete_files for t in tasks):
            self.con.register(name, scan.to_arrow())
            return
        files = exp.Array(expressions=[exp.Literal.string(t.file.file_path.removeprefix("file://")) for t in tasks])
        options = [
            exp.EQ(this=exp.column(k), expression=v)
            for k, v in (("union_by_name", exp.true()), ("hive_partitioning", exp.false()))
        ]
        source = exp.func("read_parquet", files, *options)
        select = exp.select("*").from_(exp.Table(this=source))
        self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {select.sql('duckdb')}")

    def sql(self, query: str, params: list[Any] | None = None) -> Any:
        relation = self.con.sql(query, params=params or None)
        if relation is None:
            return None
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2.x / 1.x
        return fetch()

    def close(self) -> None:
        self.con.close()

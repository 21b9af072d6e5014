"""SQL the DuckDB engine renders without sqlglot on the interactive read path is what sqlglot renders,
and runs: views over recorded plans (bound by name, a file missing a column refused), quoted
identifiers and strings, `allowed_paths` as a parameter."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot.expressions as exp

from lakestack.engine.duckdb import DuckDBEngine, _quoted, _string, planned_view_sql
from lakestack.storage.readpath import PlannedTable


def test_the_view_over_a_plan_is_what_sqlglot_renders() -> None:
    files = ["file:///w/gold/x/data/a.parquet", "/w/it's \\ odd/b.parquet"]
    scan = exp.Table(
        this=exp.func(
            "read_parquet",
            exp.Array(expressions=[exp.Literal.string(f.removeprefix("file://")) for f in files]),
            exp.EQ(this=exp.column("hive_partitioning"), expression=exp.false()),
        )
    )
    select = exp.select("*").from_(scan).sql("duckdb")
    assert planned_view_sql("gold.fact_sales", files) == f'CREATE OR REPLACE VIEW "gold"."fact_sales" AS {select}'
    for name in ("silver", 'we"ird', "a b"):
        assert _quoted(name) == exp.to_identifier(name, quoted=True).sql("duckdb")
    for value in ("/a/b.parquet", "it's", "back\\slash", "new\nline"):
        assert _string(value) == exp.Literal.string(value).sql("duckdb")


def test_a_planned_view_reads_its_files_and_the_lock_allows_only_them(tmp_path: Path) -> None:
    odd = tmp_path / "it's here"
    odd.mkdir()
    paths = [odd / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(pa.table({"n": [0, 10], "m": ["a", "b"]}), paths[0])
    pq.write_table(pa.table({"m": ["c", "d"], "n": [1, 11]}), paths[1])  # another column order
    other = tmp_path / "c.parquet"
    pq.write_table(pa.table({"n": [99]}), other)
    engine = DuckDBEngine()
    try:
        engine.register_table(
            "gold.t", PlannedTable("gold.t", "file:///m.json", 1, tuple(f"file://{p}" for p in paths))
        )
        engine.lock_down()
        assert sorted(r[0] for r in engine.rows("SELECT n FROM gold.t")) == [0, 1, 10, 11]
        with pytest.raises(duckdb.Error):  # a file outside the plan, after the lock
            engine.rows(f"SELECT * FROM read_parquet({_string(str(other))})")
    finally:
        engine.close()
    short = tmp_path / "short.parquet"
    pq.write_table(pa.table({"n": [5]}), short)
    engine = DuckDBEngine()
    try:
        files = (f"file://{paths[0]}", f"file://{short}")
        engine.register_table("gold.t", PlannedTable("gold.t", "file:///m.json", 1, files))
        with pytest.raises(duckdb.Error, match=r"short\.parquet"):  # a file missing a column: refused, never nulls
            engine.rows("SELECT m FROM gold.t")
    finally:
        engine.close()

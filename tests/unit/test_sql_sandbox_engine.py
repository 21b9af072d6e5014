"""The project-SQL sandbox on Arrow inputs (DuckDB in memory, no disk): what it registers, which
statements it runs, where a streamed result stops, and how it words its errors."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pytest

from lakestack.cli.results import parse_size
from lakestack.engine import open_sandbox
from lakestack.engine.base import SqlFailed, SqlInput, SqlLimits, SqlRefused, SqlTimeout
from lakestack.engine.duckdb import tables_named

ORDERS = pa.table({"id": list(range(10_000)), "note": ["x" * 100] * 10_000})


def test_tables_named_come_from_the_parse_tree_only() -> None:
    sql = (
        "WITH a AS (SELECT 1) SELECT * FROM Silver.Orders, query_table('gold.x'), a "
        "WHERE id IN (SELECT id FROM _lakestack.check_results) UNION ALL SELECT * FROM memory.bronze.o"
    )
    assert tables_named(sql) == ["_lakestack.check_results", "a", "bronze.o", "gold.x", "silver.orders"]
    assert tables_named("UPDATE EXTENSIONS") == [] and tables_named("SELEC 1") == []


def test_only_the_tables_asked_for_are_registered() -> None:
    asked: list[list[str]] = []

    def inputs(named: list[str]) -> list[SqlInput]:
        asked.append(named)
        return [SqlInput("silver.orders", ORDERS)]

    sql = "SELECT count(*) AS n FROM silver.orders"
    with open_sandbox(inputs, naming=[sql]) as sandbox:
        assert sandbox.table(sql).to_pylist() == [{"n": 10_000}]
        with pytest.raises(SqlFailed, match="the query failed: Catalog Error"):
            sandbox.table("SELECT * FROM silver.customers")
    assert asked == [["silver.orders"]]


@pytest.mark.parametrize(
    ("sql", "got"),
    [
        ("UPDATE EXTENSIONS", "UPDATE EXTENSIONS"),  # statement type 29: unknown to the Python enum
        ("SELECT 1; SELECT 2", "SELECT, SELECT"),
        ("  ", "nothing"),
        ("INSTALL httpfs", "LOAD"),
        ("PIVOT silver.orders ON id", "MULTI"),
    ],
)
def test_anything_but_one_select_is_refused_by_name(sql: str, got: str) -> None:
    with open_sandbox([]) as sandbox, pytest.raises(SqlRefused) as refused:
        sandbox.check(sql)
    assert str(refused.value) == f"only one read-only SELECT is allowed in the query (got: {got})"


def test_a_stream_stops_exactly_at_max_rows() -> None:
    limits = SqlLimits(max_rows=8_193)  # one row past the first batch of 8,192
    with open_sandbox([SqlInput("t.orders", ORDERS)], limits).stream("SELECT * FROM t.orders") as stream:
        rows = sum(b.num_rows for b in stream)
        assert rows == stream.rows == 8_193
        assert stream.truncated is not None and (stream.truncated.rows, stream.truncated.limit) == (8_193, "max_rows")


def test_a_stream_stops_under_max_bytes() -> None:
    limits = SqlLimits(max_bytes=200_000)
    with open_sandbox([SqlInput("t.orders", ORDERS)], limits).stream("SELECT * FROM t.orders") as stream:
        table = stream.read_all()
    assert stream.truncated is not None and stream.truncated.limit == "max_bytes"
    assert 0 < table.num_rows == stream.truncated.rows < ORDERS.num_rows and table.nbytes <= 200_000


def test_a_whole_result_over_its_limit_is_an_error_not_a_short_table() -> None:
    sandbox = open_sandbox([SqlInput("t.orders", ORDERS)], SqlLimits(max_rows=10))
    with sandbox, pytest.raises(SqlFailed, match="returns more than its max_rows of 10"):
        sandbox.table("SELECT * FROM t.orders")


def test_the_deadline_covers_the_consumer() -> None:
    import time

    def slow_writer(stream: Iterable[object]) -> None:
        for _ in stream:
            time.sleep(0.3)  # DuckDB is idle meanwhile: only the deadline can stop this

    stream = open_sandbox([], SqlLimits(timeout_s=0.5)).stream("SELECT * FROM range(100000)")
    with stream, pytest.raises(SqlTimeout, match=r"ran longer than 0.5 s \(writing its result included\)"):
        slow_writer(stream)


def test_files_and_settings_are_out_of_reach() -> None:
    with open_sandbox([], label="model m") as sandbox:
        with pytest.raises(SqlRefused, match=r"^model m reads outside the lake: read_text\('/etc/hostname'\)"):
            sandbox.table("SELECT * FROM read_text('/etc/hostname')")
        locked = sandbox.table(
            "SELECT value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration', "
            "'temp_directory') ORDER BY name"
        ).column(0)
        assert locked.to_pylist() == ["false", "true", ""]


@pytest.mark.parametrize(
    ("text", "size"), [("500000", 500_000), ("256MB", 256 * 2**20), ("4GiB", 4 * 2**30), ("1.5k", 1536), ("0", 0)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size

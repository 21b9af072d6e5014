"""Small results as DuckDB's Python values (engine/records.py): the same rows, and the same printed
output, as the Arrow path gives; anything else (other types, a result that may reach a limit) is
read through Arrow as before."""

from __future__ import annotations

import io
from typing import Any

import pytest

from lakestack.cli import results
from lakestack.cli.render import make_console
from lakestack.engine import open_sandbox
from lakestack.engine.base import SqlLimits

TYPED = """
SELECT * FROM (VALUES
  (1::TINYINT, 2::SMALLINT, 3::INTEGER, 4::BIGINT, 5::HUGEINT, 250::UTINYINT, 7::UBIGINT, 1.5::FLOAT, 0.1::FLOAT,
   2.25::DOUBLE, 1.00::DECIMAL(12, 2), 123456789012345678901234567890.12::DECIMAL(38, 2), -0.5::DECIMAL(4, 3),
   'text é', DATE '2026-01-02', TIME '01:02:03.5', TIMESTAMP '2026-01-02 03:04:05.123456',
   TIMESTAMPTZ '2026-01-02 03:04:05+02', [1, NULL, 3]::INTEGER[], {'p': 1, 'q': 'z'}, [{'x': 1.50::DECIMAL(4, 2)}],
   'ab'::BLOB, true, '5f6a9c1e-9b7d-4c57-8f8e-2d0b1d6c7e11'::UUID, [TIMESTAMPTZ '2026-01-01 00:00:00+00'],
   {'big': 9::HUGEINT, 'id': '5f6a9c1e-9b7d-4c57-8f8e-2d0b1d6c7e11'::UUID}),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) AS t(a, b, c, d, e, f, g, h, h2, i, j, k, l, m, n, o, p, q, r, s, u, v, w, x, y, z)
"""
ARROW_ONLY = [
    "SELECT INTERVAL 1 DAY AS a",
    "SELECT MAP {'a': 1} AS a",
    "SELECT 'x'::ENUM('x', 'y') AS a",
    "SELECT TIMESTAMP_NS '2020-01-01' AS a",
    "SELECT [1, 2]::INTEGER[2] AS a",
    "SELECT 5::UHUGEINT AS a",
    "SELECT [INTERVAL 1 DAY] AS a",
    "SELECT {'a': MAP {'k': 1}} AS a",
    "SELECT 1 AS a, 2 AS a",
]


def _stream(sql: str, small: int = 0, limits: SqlLimits | None = None) -> Any:
    return open_sandbox([], limits or SqlLimits()).stream(sql, small_rows=small)


def _arrow_rows(sql: str) -> list[dict[str, Any]]:
    with _stream(sql) as stream:
        assert stream.records is None
        return results.pylist(stream.read_all())


def test_small_results_read_as_the_arrow_path_reads_them() -> None:
    with _stream(TYPED, small=10) as stream:
        assert stream.records is not None
        assert stream.records == _arrow_rows(TYPED)
        assert [repr(r) for r in stream.records] != []
        for mine, arrow in zip(stream.records, _arrow_rows(TYPED), strict=True):
            for name in mine:  # the same Python types too (Decimal for HUGEINT, text for UUID, UTC zones)
                assert type(mine[name]) is type(arrow[name]), name
                assert repr(mine[name]) == repr(arrow[name])


@pytest.mark.parametrize("fmt", ["json-document", "ndjson", "table"])
def test_printed_output_is_the_same_on_both_paths(fmt: str) -> None:
    def printed(small: int) -> str:
        sink = io.BytesIO()
        text = io.StringIO()
        with _stream(TYPED + " ORDER BY a NULLS LAST", small=small) as stream:
            assert (stream.records is not None) == bool(small)
            if fmt == "json-document":
                results.json_document(stream, sink)
            elif fmt == "ndjson":
                results._ndjson(stream, sink)
            else:
                console = make_console()
                console.file = text
                results.write_result(stream, "table", None, show=1, console=console)
        return sink.getvalue().decode() + text.getvalue()

    assert printed(small=100) == printed(small=0)
    assert "2026-01-02T01:04:05+00:00" in printed(small=100) or fmt == "table"


@pytest.mark.parametrize("sql", ARROW_ONLY)
def test_types_python_reads_otherwise_stay_on_arrow(sql: str) -> None:
    with _stream(sql, small=10) as stream:
        assert stream.records is None
        assert stream.read_all().num_rows == 1


def test_a_result_over_the_small_size_streams_arrow_whole() -> None:
    sql = "SELECT i, i * 2 AS j FROM range(25) t(i) ORDER BY i"
    with _stream(sql, small=24) as stream:
        assert stream.records is None
        assert [r["i"] for r in results.pylist(stream.read_all())] == list(range(25))
    with _stream(sql, small=25) as stream:
        assert stream.records is not None and [r["i"] for r in stream.records] == list(range(25))
        assert stream.rows == 25 and stream.truncated is None


@pytest.mark.parametrize(
    ("limits", "limit"),
    [(SqlLimits(max_rows=5), "max_rows"), (SqlLimits(max_bytes=100), "max_bytes")],
)
def test_a_result_that_may_reach_a_limit_is_cut_by_the_arrow_path(limits: SqlLimits, limit: str) -> None:
    sql = "SELECT i, repeat('x', 20) AS s FROM range(10) t(i)"
    with _stream(sql, small=100, limits=limits) as stream:
        assert stream.records is None
        stream.read_all()
        assert stream.truncated is not None and stream.truncated.limit == limit


def test_an_empty_result_keeps_its_columns() -> None:
    sink = io.BytesIO()
    with _stream("SELECT 1 AS a, 'x' AS b WHERE false", small=10) as stream:
        assert stream.records == []
        results.json_document(stream, sink)
    assert sink.getvalue().startswith(b'{"columns": ["a", "b"], "rows": [\n], "rows_returned": 0')


def test_a_records_stream_still_gives_arrow_when_iterated() -> None:
    with _stream(TYPED, small=10) as stream:
        table = stream.read_all()
        assert str(table.schema.field("j").type) == "decimal128(12, 2)"
        assert results.pylist(table) == stream.records


def test_the_sandbox_refuses_the_same_sql_on_the_small_path() -> None:
    from lakestack.engine.base import SqlError

    for sql in ["COPY (SELECT 1) TO '/tmp/x.csv'", "SELECT * FROM read_csv('/etc/passwd')", "SET threads = 1"]:
        with pytest.raises(SqlError):
            _stream(sql, small=10)

"""The database source's pure parts: the SQL it builds (per dialect), the mark's JSON round trip,
and the project-file checks of `database:` blocks and `sftp://` landings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lakestack.config import load_project_config
from lakestack.errors import ConfigError
from lakestack.ingest.database import PullState, build_query, decode_value, encode_value


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            "postgres",
            'SELECT "id", "name", "ts" FROM s.t WHERE (("ts" > \'2026-01-01 10:00:00\' OR ("ts" = '
            '\'2026-01-01 10:00:00\' AND "id" > 7)) AND NOT "ts" IS NULL) AND NOT "id" IS NULL ORDER BY "ts", "id"',
        ),
        (
            "mysql",
            "SELECT `id`, `name`, `ts` FROM s.t WHERE ((`ts` > '2026-01-01 10:00:00' OR (`ts` = "
            "'2026-01-01 10:00:00' AND `id` > 7)) AND NOT `ts` IS NULL) AND NOT `id` IS NULL ORDER BY `ts`, `id`",
        ),
    ],
)
def test_the_incremental_query_reads_after_the_cursor_and_key(dialect: str, expected: str) -> None:
    mark = (datetime(2026, 1, 1, 10), 7)  # drivers' timestamps arrive as naive UTC
    assert build_query(dialect, "s.t", None, ["id", "name", "ts"], ["ts", "id"], mark) == expected


def test_a_query_is_a_subquery_and_text_values_are_escaped() -> None:
    sql = build_query("postgres", None, "SELECT * FROM a WHERE x = 1", ["k"], ["k"], ("it's",))
    assert sql == (
        'SELECT "k" FROM (SELECT * FROM a WHERE x = 1) AS lakestack_q WHERE "k" > \'it\'\'s\' AND NOT "k" IS NULL '
        'ORDER BY "k"'
    )
    with pytest.raises(ValueError, match="one SELECT"):
        build_query("postgres", None, "DELETE FROM a", ["k"], ["k"], None)


@pytest.mark.parametrize(
    "value",
    [
        1,
        2**70,
        1.5,
        Decimal("12.340"),
        "x",
        True,
        date(2026, 1, 2),
        datetime(2026, 1, 2, 3, 4, 5, 6),
        datetime(2026, 1, 2, tzinfo=UTC),
    ],
)
def test_mark_values_round_trip_exactly(value: object) -> None:
    back = decode_value(encode_value(value))
    assert back == value and type(back) is type(value)


def test_pull_state_round_trip() -> None:
    state = PullState("full", (3, "b"), "run-1", False)
    assert PullState.decode(state.encode()) == state
    assert PullState.decode(None) is None


def _project(tmp: Path, body: str) -> Path:
    (tmp / "lakestack.yaml").write_text("name: t\nsources:\n  a:\n" + body)
    return tmp


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    kind: database\n    contract: a\n", "needs a 'database:' block"),
        ("    kind: database\n    contract: a\n    database: {url: postgresql://u:p@h/db, table: t}\n", "secret"),
        (
            "    kind: database\n    contract: a\n    database: {url: {secret: U}}\n",
            "exactly one of 'table' or 'query'",
        ),
        (
            "    kind: database\n    contract: a\n    database: {url: {secret: U}, table: t, mode: incremental}\n",
            "needs 'cursor'",
        ),
        ("    contract: a\n    landing: sftp://h/../etc\n", "sftp://"),
        ("    contract: a\n    landing: 'sftp://u:pw@h/x'\n", "no password"),
    ],
)
def test_bad_blocks_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_project_config(_project(tmp_path, body))
    assert "lakestack.yaml:" in str(info.value)

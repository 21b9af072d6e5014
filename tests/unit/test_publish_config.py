"""`publish:` blocks of lakestack.yaml: what is accepted, and where a mistake is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.config import load_project_config
from lakestack.errors import ConfigError
from lakestack.publish.postgres import describe_diff, where

GOOD = """\
name: shop
publish:
  analytics:
    url: {secret: ANALYTICS_URL}
    schema: marts
    role: business
    datasets:
      gold.sales: {mode: incremental, by: key, primary_key: [order_id], indexes: [[day], [a, b]]}
      silver.orders: {table: raw.orders}
"""


def test_a_block_is_read(tmp_path: Path) -> None:
    (tmp_path / "lakestack.yaml").write_text(GOOD)
    block = load_project_config(tmp_path).publish["analytics"]
    assert (block.db_schema, block.role, block.optional, block.url.secret) == (
        "marts",
        "business",
        False,
        "ANALYTICS_URL",
    )
    assert block.datasets["gold.sales"].indexes == [["day"], ["a", "b"]]
    assert block.datasets["silver.orders"].mode == "replace"


@pytest.mark.parametrize(
    ("change", "where_", "message"),
    [
        ("url: {secret: ANALYTICS_URL}", "4 (publish.analytics.url)", "must be a secret reference"),
        ("schema: marts", "5 (publish.analytics.schema)", "should match pattern"),
        ("by: key, primary_key: [order_id]", "8 (publish.analytics.datasets.gold.sales)", "needs 'primary_key'"),
        ("gold.sales:", "8 (publish.analytics.datasets)", "cannot be published: name a Gold or Silver"),
    ],
)
def test_a_wrong_block_names_the_line(tmp_path: Path, change: str, where_: str, message: str) -> None:
    wrong = {
        "url: {secret: ANALYTICS_URL}": "url: postgresql://lake:pw@db/marts",
        "schema: marts": "schema: Marts",
        "by: key, primary_key: [order_id]": "by: key",
        "gold.sales:": "bronze.sales:",
    }[change]
    (tmp_path / "lakestack.yaml").write_text(GOOD.replace(change, wrong))
    with pytest.raises(ConfigError, match=message) as raised:
        load_project_config(tmp_path)
    assert f"lakestack.yaml:{where_}" in str(raised.value)
    assert "pw@" not in str(raised.value)


def test_messages_name_the_server_never_the_password() -> None:
    assert where("postgresql://lake:Hunt@r2Secret@db.internal:6432/marts") == "db.internal:6432/marts"
    assert where("postgresql://db") == "db:5432/postgres"


def test_a_column_diff_says_what_changed() -> None:
    before = [("id", "bigint"), ("name", "text"), ("price", "integer")]
    after = [("id", "bigint"), ("price", "text"), ("channel", "text")]
    assert describe_diff(before, after) == "added channel (text); removed name (text); changed price: integer → text"

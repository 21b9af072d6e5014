"""DuckDB model SQL made Spark SQL (engine/spark_sql.py) and the Spark session's settings; no JVM.
That Spark then computes what DuckDB does is tests/integration/test_spark.py."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa
import pytest
import sqlglot

from lakestack.engine.spark_sql import duckdb_schema, sql_schema, to_spark


def _spark(sql: str, schema: dict[str, dict[str, str]] | None = None) -> str:
    out = to_spark(sql, schema)
    sqlglot.parse_one(out, read="spark")  # what we make, Spark's dialect parses
    return out


def test_asof_join_becomes_a_range_join_on_the_next_key_value() -> None:
    out = _spark("SELECT l.k, r.v FROM l ASOF LEFT JOIN r ON l.k = r.k AND l.t >= r.t")
    assert "ASOF LEFT JOIN" not in out.upper()
    assert "LEFT JOIN (SELECT *, LEAD(`t`) OVER (PARTITION BY `k` ORDER BY `t`" in out
    assert "l.t >= r.t" in out and "l.t < `r`.`__asof_next`" in out


def test_asof_join_the_other_way_round_uses_lag() -> None:
    out = _spark("SELECT * FROM l ASOF JOIN r ON l.k = r.k AND r.t <= l.t")
    assert "LEAD(`t`)" in out  # b.y <= a.x is a.x >= b.y
    out = _spark("SELECT * FROM l ASOF JOIN r ON l.k = r.k AND l.t <= r.t")
    assert "LAG(`t`)" in out


def test_asof_join_without_an_inequality_cannot_be_translated() -> None:
    with pytest.raises(sqlglot.errors.UnsupportedError, match="exactly one"):
        to_spark("SELECT * FROM l ASOF JOIN r ON l.k = r.k")


def test_range_in_from_excludes_its_stop_and_is_empty_when_stop_is_not_after_start() -> None:
    out = _spark(
        "SELECT CAST(d AS DATE) AS day FROM range(DATE '2026-01-01', DATE '2026-01-04', INTERVAL 1 DAY) AS days(d)"
    )
    assert "EXPLODE(IF(" in out and "SEQUENCE(" in out and "ARRAY()" in out
    assert "WHERE `d` < CAST(CAST('2026-01-04' AS DATE) AS TIMESTAMP)" in out
    assert out.rstrip().endswith("AS days")


def test_isodow_is_spark_dayofweek_iso() -> None:
    assert "EXTRACT(DAYOFWEEK_ISO FROM d)" in _spark("SELECT isodow(d) FROM t")


def test_date_minus_date_is_datediff_where_types_are_known() -> None:
    schema = {"gold.f": {"d": "DATE", "e": "DATE", "n": "BIGINT"}}
    out = _spark("SELECT (SELECT max(d) FROM gold.f) - e AS days, n - 1 AS m FROM gold.f", schema)
    assert "DATEDIFF(" in out and "n - 1" in out
    assert "DATEDIFF(" not in _spark("SELECT n - 1 FROM gold.f", schema)


def test_division_and_epoch_are_doubles_as_in_duckdb() -> None:
    out = _spark("SELECT count(*) / 3, epoch(a - b) FROM t")
    assert "CAST(COUNT(*) AS DOUBLE) / 3" in out
    assert "UNIX_MICROS(CAST(a AS TIMESTAMP)) - UNIX_MICROS(CAST(b AS TIMESTAMP))" in out


def test_duckdb_types_a_model_over_empty_inputs() -> None:
    schemas = {"gold.fact_sales": pa.schema([("amount", pa.decimal128(18, 2)), ("d", pa.date32())])}
    schema = duckdb_schema(
        "SELECT d, sum(amount) AS total, rank() OVER (ORDER BY d) AS r FROM gold.fact_sales GROUP BY d", schemas
    )
    assert schema.field("total").type == pa.decimal128(38, 2)
    assert schema.field("r").type == pa.int64()
    assert duckdb_schema("SELECT nope FROM gold.fact_sales", schemas) is None
    assert sql_schema(schemas) == {"gold.fact_sales": {"amount": "DECIMAL(18, 2)", "d": "DATE"}}


def test_session_settings_are_offline_and_the_project_s_conf_wins() -> None:
    from lakestack.engine.spark_session import session_conf, settings_of

    assert settings_of(None) == {"master": "local[2]", "app_name": "lakestack", "conf": {}, "catalog": "planned"}
    block = SimpleNamespace(
        master="spark://10.0.0.5:7077", app_name="nw", conf={"spark.sql.shuffle.partitions": 64}, catalog="native"
    )
    settings = settings_of(SimpleNamespace(spark=block))
    assert settings["master"] == "spark://10.0.0.5:7077" and settings["catalog"] == "native"
    conf = session_conf(settings["master"], settings["app_name"], settings["conf"])
    assert conf["spark.ui.enabled"] == "false" and conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.jars.packages"] == "" and conf["spark.sql.shuffle.partitions"] == "64"
    assert "spark.driver.bindAddress" not in conf  # only local masters are pinned to loopback


def test_the_environment_block_takes_a_spark_section() -> None:
    from lakestack.config import EnvironmentConfig

    env = EnvironmentConfig(engine="spark", spark={"master": "local[4]", "catalog": "native", "conf": {"a": 1}})
    assert env.spark.master == "local[4]" and env.spark.catalog == "native"
    with pytest.raises(ValueError, match="catalog"):
        EnvironmentConfig(engine="spark", spark={"catalog": "hive"})


def test_the_java_error_s_first_line_is_what_the_jvm_printed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lakestack.engine.spark_session import java_error

    log = tmp_path / "driver.log"
    log.write_text("starting\n/opt/spark/bin/spark-class: line 71: /nope/bin/java: No such file or directory\n")
    assert java_error(RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited"), log).endswith(
        "/nope/bin/java: No such file or directory"
    )

"""Column lineage of Gold models: sqlglot's lineage over the model SQL, with transformation types."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.lineage.columns import Transformation, column_lineage
from lakestack.pipeline.gold import load_gold_model
from lakestack.pipeline.project import Project
from lakestack.pipeline.scaffold import copy_example

DIRECT_IDENTITY = (Transformation("DIRECT", "IDENTITY"),)
DIRECT_TRANSFORMATION = (Transformation("DIRECT", "TRANSFORMATION"),)
DIRECT_AGGREGATION = (Transformation("DIRECT", "AGGREGATION"),)
SILVER_COLUMNS = ("_ingested_at", "_source_file", "_source_line", "_run_id")


@pytest.fixture(scope="module")
def northwind(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The project `lakestack example northwind DIR` writes (its files; no data needed)."""
    return Project.load(copy_example("northwind", tmp_path_factory.mktemp("nw") / "northwind"))


def _silver_columns(project: Project) -> dict[str, list[str]]:
    """Each Silver table's columns: its contract's, plus the lineage columns Silver adds."""
    found = {}
    for name, dataset in project.config.datasets.items():
        if dataset.layer == "silver":
            contract = project.contract(dataset.source or name)
            found[f"silver.{name}"] = [*contract.column_names, *SILVER_COLUMNS]
    return found


def test_fact_sales_names_its_upstream_columns_across_the_join(northwind: Project) -> None:
    model = load_gold_model(northwind.models["fact_sales"], northwind.root)
    result = column_lineage(model.sql, _silver_columns(northwind))
    fields = result.fields
    # `lines.*` expanded from the CTE over silver.orders: every column found, copied as is
    assert fields["order_id"] == {("silver.orders", "order_id"): DIRECT_IDENTITY}
    assert fields["unit_price"] == {("silver.orders", "unit_price"): DIRECT_IDENTITY}
    assert fields["order_date"] == {("silver.orders", "order_ts"): DIRECT_TRANSFORMATION}
    assert fields["amount"] == {
        ("silver.orders", "quantity"): DIRECT_TRANSFORMATION,
        ("silver.orders", "unit_price"): DIRECT_TRANSFORMATION,
    }
    # across the ASOF join: the USD amount reads both tables
    assert fields["amount_usd"] == {
        ("silver.fx_rates", "rate"): DIRECT_TRANSFORMATION,
        ("silver.orders", "currency"): DIRECT_TRANSFORMATION,
        ("silver.orders", "quantity"): DIRECT_TRANSFORMATION,
        ("silver.orders", "unit_price"): DIRECT_TRANSFORMATION,
    }
    assert set(fields["usd_rate"]) == {("silver.fx_rates", "rate"), ("silver.orders", "currency")}
    assert fields["is_revenue"] == {("silver.orders", "status"): DIRECT_TRANSFORMATION}
    # the join keys and the CTE's filter decide which rows exist: dataset-wide (INDIRECT)
    assert result.dataset[("silver.fx_rates", "base_currency")] == (Transformation("INDIRECT", "JOIN"),)
    assert result.dataset[("silver.fx_rates", "rate_date")] == (Transformation("INDIRECT", "JOIN"),)
    assert result.dataset[("silver.orders", "currency")] == (Transformation("INDIRECT", "JOIN"),)
    assert result.dataset[("silver.fx_rates", "quote_currency")] == (Transformation("INDIRECT", "FILTER"),)
    assert len(fields) == 17  # every result column of the model has lineage


def test_an_aggregate_model_over_gold(northwind: Project) -> None:
    fact = load_gold_model(northwind.models["fact_sales"], northwind.root)
    fact_columns = list(column_lineage(fact.sql, _silver_columns(northwind)).fields)
    model = load_gold_model(northwind.models["daily_order_metrics"], northwind.root)
    result = column_lineage(model.sql, {"gold.fact_sales": fact_columns})
    assert result.fields["units"] == {("gold.fact_sales", "quantity"): DIRECT_AGGREGATION}
    assert result.fields["orders"] == {("gold.fact_sales", "order_id"): DIRECT_AGGREGATION}
    assert result.fields["currency"] == {("gold.fact_sales", "currency"): DIRECT_IDENTITY}
    assert result.dataset == {
        ("gold.fact_sales", "currency"): (Transformation("INDIRECT", "GROUP_BY"),),
        ("gold.fact_sales", "order_date"): (Transformation("INDIRECT", "GROUP_BY"),),
        ("gold.fact_sales", "is_revenue"): (Transformation("INDIRECT", "FILTER"),),  # sum(...) FILTER (WHERE ...)
        ("gold.fact_sales", "status"): (Transformation("INDIRECT", "FILTER"),),
    }


def test_every_northwind_model_gets_lineage_from_known_columns(northwind: Project) -> None:
    from lakestack.pipeline.gold import build_order

    known = _silver_columns(northwind)
    models = {name: load_gold_model(path, northwind.root) for name, path in northwind.models.items()}
    for model in build_order(models):  # upstream models first: their columns are known when needed
        result = column_lineage(model.sql, known)
        assert result.fields, model.name
        for column, inputs in result.fields.items():
            for (table, field), kinds in inputs.items():
                assert field in known[table], (model.name, column, table, field)
                assert all(k.type == "DIRECT" for k in kinds)
        for (table, field), kinds in result.dataset.items():
            assert field in known[table] and all(k.type == "INDIRECT" for k in kinds), (model.name, table, field)
        known[model.identifier] = list(result.fields)
    assert len(known) == len(_silver_columns(northwind)) + len(models)


def test_windows_filters_sorts_and_masking() -> None:
    sql = """
        SELECT md5(email) AS email_hash,
               row_number() OVER (PARTITION BY region ORDER BY ts) AS n,
               sum(amount) FILTER (WHERE ok) AS total
        FROM silver.users
        WHERE active
        GROUP BY ALL
        ORDER BY email_hash
    """
    result = column_lineage(sql, {"silver.users": ["email", "region", "ts", "amount", "ok", "active"]})
    assert result.fields["email_hash"] == {
        ("silver.users", "email"): (Transformation("DIRECT", "TRANSFORMATION", True),)
    }
    assert result.dataset[("silver.users", "region")] == (Transformation("INDIRECT", "WINDOW"),)
    assert result.dataset[("silver.users", "ok")] == (Transformation("INDIRECT", "FILTER"),)
    assert Transformation("INDIRECT", "FILTER") in result.dataset[("silver.users", "active")]
    assert Transformation("INDIRECT", "SORT") in result.dataset[("silver.users", "email")]


def test_select_star_resolves_only_with_the_upstream_schema() -> None:
    sql = "SELECT * FROM silver.orders AS o JOIN silver.customers AS c USING (customer_id)"
    upstream = {"silver.orders": ["order_id", "customer_id"], "silver.customers": ["customer_id", "country"]}
    result = column_lineage(sql, upstream)
    assert result.fields["country"] == {("silver.customers", "country"): DIRECT_IDENTITY}
    assert result.fields["order_id"] == {("silver.orders", "order_id"): DIRECT_IDENTITY}
    assert ("silver.orders", "customer_id") in result.dataset
    assert "country" not in column_lineage(sql, {}).fields  # without the schema, `*` names nothing


def test_a_column_sqlglot_cannot_follow_is_left_out(tmp_path: Path) -> None:
    result = column_lineage("SELECT 1 AS one, a FROM silver.t", {"silver.t": ["a"]}, columns=["one", "a", "missing"])
    assert "missing" not in result.fields
    assert result.fields["one"] == {}
    assert result.fields["a"] == {("silver.t", "a"): DIRECT_IDENTITY}

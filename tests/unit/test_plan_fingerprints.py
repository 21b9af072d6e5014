"""Plan fingerprints: a Gold model's layout and comments are no change; its SQL and settings are."""

from __future__ import annotations

from pathlib import Path

from lakestack.pipeline.gold import load_gold_model
from lakestack.pipeline.plan import Change, Plan, PlanRefused, model_fingerprint

SQL = "SELECT order_date, count(*) AS n FROM silver.orders GROUP BY order_date"


def _model(root: Path, text: str) -> str:
    path = root / "models" / "gold" / "daily.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return model_fingerprint(load_gold_model(path, root))


def test_layout_and_comments_are_no_change_but_sql_and_settings_are(tmp_path: Path) -> None:
    base = _model(tmp_path, SQL)
    relaid = "-- daily counts\nSELECT\n    order_date,\n    COUNT(*) AS n  /* rows */\n"
    relaid += "FROM silver.orders\nGROUP BY order_date\n"
    assert _model(tmp_path, relaid) == base
    assert _model(tmp_path, SQL.replace("count(*)", "count(DISTINCT order_id)")) != base
    settings = "/* ---\nmaterialized: incremental\npartition_by: order_date\n--- */\n" + SQL
    assert _model(tmp_path, settings) != base
    described = "/* ---\ndescription: daily\n--- */\n" + SQL
    assert _model(tmp_path, described) != base  # settings are part of it, description included


def test_a_refused_change_refuses_the_whole_plan() -> None:
    drop = Change("drop", "gold.old", "no longer in the project", destructive=True, refused="needs --allow-destructive")
    plan = Plan("p", "prod", (Change("create", "bronze.orders", "new"), drop))
    assert plan.refused == (drop,) and not plan.empty
    error = PlanRefused(plan)
    assert error.exit_code == 2 and "gold.old: needs --allow-destructive" in str(error)
    assert Change("evolve", "silver.orders", "v1 → v2").record == "schema:silver.orders"
    assert Plan("p", "dev").empty

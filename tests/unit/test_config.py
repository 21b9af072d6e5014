"""Project files: each mistake fails at load with the file, line or key, and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.errors import ConfigError, ProjectError
from lakestack.pipeline.project import Project


def _write(project: Path, text: str) -> None:
    (project / "lakestack.yaml").write_text(text)


def test_the_fixture_project_loads(project: Path) -> None:
    loaded = Project.load(project)
    assert loaded.name == "shop"
    assert set(loaded.config.sources) == {"orders", "clicks"}
    assert loaded.contract("clicks").kind == "event"
    assert loaded.landing("orders") == project / "landing" / "orders"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: shop\nsources:\n  orders: {contract: orders, landng: x}\n",
            r"lakestack.yaml:3 \(sources.orders.landng\): unknown key 'landng' \(expected one of: kind, contract",
        ),
        (
            "name: shop\nsources:\n  orders: {contract: payments}\n",
            r"lakestack.yaml:3 \(sources.orders.contract\): source 'orders' names contract 'payments', which does not "
            r"exist \(expected contracts/payments.v1.json \(events\) or contracts/payments.v1.yaml",
        ),
        ("name: shop\nsources:\n  orders: {contract: orders.v7}\n", r"available versions: v1"),
        ("name: shop\nsources: [\n", r"lakestack.yaml:\d+:\d+: invalid YAML"),
        (
            "name: shop\ndatasets:\n  daily: {layer: gold}\n  daily: {layer: gold}\n",
            r"lakestack.yaml:4 \(datasets.daily\): 'daily' is defined twice \(first on line 3\)",
        ),
        (
            "name: shop\nsources:\n  orders: {contract: orders}\ndatasets:\n  sales: {layer: silver}\n",
            r"lakestack.yaml:5 \(datasets.sales.layer\): silver dataset 'sales' reads source 'sales', which is not",
        ),
        (
            "name: shop\nsources:\n  orders: {contract: orders}\ndatasets:\n  orders: {layer: silver, key: [nope]}\n",
            r"\(datasets.orders.key\): key names 'nope', which is not a column of contract orders.v1",
        ),
        (
            "name: shop\nsources:\n  orders: {contract: orders}\n"
            "datasets:\n  orders: {layer: silver, partition_by: email}\n",
            r"partitioned by day of a timestamp or date column",
        ),
        ("name: Shop\n", r"\(name\): .*lower-case"),
        ("sources: {}\n", r"missing required key 'name'"),
        ("name: shop\ndefault_environment: prod\n", r"default_environment 'prod' is not one of: dev"),
        ("name: shop\nenvironments:\n  dev: {engine: presto}\n", r"lakestack.yaml:3 \(environments.dev.engine\)"),
        ("name: shop\nsources:\n  orders: {contract: orders, landing: ../elsewhere}\n", r"no '\.\.'"),
        ("- just\n- a list\n", r"must be a mapping"),
        (
            "name: shop\nsources:\n  orders: {kind: kafka, contract: orders}\n",
            r"lakestack.yaml:3 \(sources.orders\): a kafka source needs a 'kafka:' block",
        ),
        ("name: shop\nsources:\n  orders: {kind: mqtt, contract: orders}\n", r"\(sources.orders.kind\)"),
        (
            "name: shop\nsources:\n  orders: {kind: http, contract: orders, http: {max_depth: 500}}\n",
            r"\(sources.orders.http.max_depth\)",
        ),
        (
            "name: shop\nsources:\n  orders: {kind: nats, contract: orders, nats: {stream: S, subjekt: x}}\n",
            r"unknown key 'subjekt'",
        ),
    ],
)
def test_project_file_mistakes(project: Path, text: str, message: str) -> None:
    _write(project, text)
    with pytest.raises(ConfigError, match=message):
        Project.load(project)


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no lakestack\.yaml here"):
        Project.load(tmp_path)


def test_two_models_with_one_name(project: Path) -> None:
    (project / "models" / "gold").mkdir(parents=True)
    (project / "models" / "silver").mkdir(parents=True)
    (project / "models" / "gold" / "daily.sql").write_text("select 1")
    (project / "models" / "silver" / "daily.sql").write_text("select 1")
    with pytest.raises(ProjectError, match="two models are named 'daily'"):
        Project.load(project)


def test_secrets_are_references_and_never_printed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(project, "name: shop\nenvironments:\n  dev: {catalog: {uri: {secret: SHOP_CATALOG}}}\n")
    config = Project.load(project).config
    uri = config.environments["dev"].catalog.uri
    assert str(uri) == "<secret SHOP_CATALOG>"
    with pytest.raises(ConfigError, match="secret 'SHOP_CATALOG' is not set"):
        uri.resolve()  # type: ignore[union-attr]
    monkeypatch.setenv("SHOP_CATALOG", "postgresql://user:hunter2@db/cat")
    assert uri.resolve() == "postgresql://user:hunter2@db/cat"  # type: ignore[union-attr]
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: shop\ndescription: !!python/name:os.system\n", r"lakestack.yaml:2 \(description\): YAML tag"),
        ("name: shop\nd: !!binary aGk=\n", r"lakestack.yaml:2 \(d\): YAML tag '!!binary' is not allowed"),
        ("name: shop\nd: &a [1, *a]\n", r"lakestack.yaml:2 \(d.1\): .*recursive alias"),
        ("name: shop\nd: {<<: {a: 1}}\n", r"lakestack.yaml:2 \(d\): merge keys"),
        ("name: shop\nd: " + "[" * 65 + "]" * 65 + "\n", r"nested more than 64 levels"),
        ("name: shop\nd: " + "9" * 5000 + "\n", r"lakestack.yaml:2 \(d\): invalid value: Exceeds the limit"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
            r"lakestack.yaml:4 \(d.*\): aliases \(\*name\) expand to more than 10,000 values",
        ),
    ],
)
def test_project_file_yaml_is_data_only_and_bounded(project: Path, text: str, message: str) -> None:
    _write(project, text)
    with pytest.raises(ConfigError, match=message):
        Project.load(project)


def test_aliases_within_the_limit_expand(tmp_path: Path) -> None:
    from lakestack._yaml import MAX_ALIAS_VALUES, load_yaml_text

    items = ", ".join(["*a"] * (MAX_ALIAS_VALUES // 2))  # each alias builds the list and its one item
    data, _ = load_yaml_text(f"a: &a [v]\nb: [{items}]\n", "f.yaml")
    assert len(data["b"]) == MAX_ALIAS_VALUES // 2 and data["b"][0] == ["v"]
    with pytest.raises(ProjectError, match="expand to more than"):
        load_yaml_text(f"a: &a [v]\nb: [{items}, *a]\n", "f.yaml")


def test_a_model_header_reports_lines_of_the_sql_file(project: Path) -> None:
    from lakestack.pipeline.gold import load_gold_model

    folder = project / "models" / "gold"
    folder.mkdir(parents=True)
    path = folder / "daily.sql"
    path.write_text("\n\n/* ---\nmaterialized: full\nownr: me\n--- */\nSELECT 1 AS one\n")
    with pytest.raises(ProjectError, match=r"models/gold/daily.sql:5 \(ownr\): unknown key 'ownr'"):
        load_gold_model(path, project)
    path.write_text("/* ---\r\nmaterialized: full\r\n--- */\r\nSELECT 1 AS one\r\n")  # CRLF files too
    assert load_gold_model(path, project).settings.materialized == "full"

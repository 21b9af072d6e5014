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

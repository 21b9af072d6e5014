"""The AWS resource model of `lakestack deploy`: what a project asks for, and the wildcard check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deploy_support import LANDING_BUCKET, SENTINELS, STREAM, TOPIC, WAREHOUSE_BUCKET, write_project
from lakestack.config import load_project_config
from lakestack.deploy.resources import NAMESPACES, SYSTEM_TABLES, Target, aws_resources, wildcards

SRC = Path(__file__).parents[2] / "src" / "lakestack"


@pytest.fixture
def resources(tmp_path: Path) -> dict[str, dict[str, object]]:
    root = write_project(tmp_path / "shop")
    found = aws_resources(load_project_config(root), "prod", root, Target("123456789012", "us-east-1"))
    return {r.key: dict(r.spec) for r in found}


def test_namespaces_are_the_warehouse_s() -> None:
    from lakestack.storage.warehouse import NAMESPACES as WAREHOUSE

    assert tuple(NAMESPACES) == tuple(WAREHOUSE)


def test_every_system_table_in_the_code_is_granted() -> None:
    named = set()
    for path in SRC.rglob("*.py"):
        named |= set(re.findall(r"[\"']_lakestack\.([a-z_]+)[\"']", path.read_text()))
    assert named, "no _lakestack.<table> found in src/"
    assert named <= set(SYSTEM_TABLES), sorted(named - set(SYSTEM_TABLES))


def test_buckets_are_versioned_encrypted_private_with_lifecycle(resources: dict[str, dict[str, object]]) -> None:
    lake, landing = resources[f"s3_bucket:{WAREHOUSE_BUCKET}"], resources[f"s3_bucket:{LANDING_BUCKET}"]
    for bucket in (lake, landing):
        assert bucket["versioning"] == "Enabled" and bucket["encryption"] == "AES256"
        assert set(bucket["public_access_block"].values()) == {True}  # type: ignore[attr-defined]
    rules = {r["id"]: r for r in landing["lifecycle"]}  # type: ignore[attr-defined]
    assert {r["prefix"] for r in rules.values() if "expiration_days" in r} == {"orders/", "refunds/"}
    raw = [r for r in lake["lifecycle"] if r["id"] == "raw-bronze"]  # type: ignore[attr-defined]
    assert raw == [
        {"id": "raw-bronze", "prefix": "warehouse/bronze.db/", "transition_days": 30, "storage_class": "STANDARD_IA"}
    ]
    assert not any("expiration_days" in r for r in lake["lifecycle"])  # type: ignore[attr-defined]  # never Iceberg files


def test_databases_streams_secrets_alarms(resources: dict[str, dict[str, object]]) -> None:
    assert {k for k in resources if k.startswith("glue_database:")} == {f"glue_database:{n}" for n in NAMESPACES}
    assert resources[f"kinesis_stream:{STREAM}"]["shard_count"] == 1
    secrets = sorted(k for k in resources if k.startswith("secret:"))
    assert secrets == [f"secret:shop/prod/{n}" for n in sorted(SENTINELS)]
    alarm = resources["alarm:lakestack-shop-prod-sla-orders_fresh"]
    assert alarm["namespace"] == "Shop" and alarm["dimensions"] == {"Sla": "orders_fresh"}
    assert alarm["actions"] == [TOPIC] and alarm["period"] == 300


def test_policies_name_exact_prefixes_and_arns(resources: dict[str, dict[str, object]]) -> None:
    role = "lakestack-shop-prod-pipeline"
    docs = {k.rpartition("/")[2]: v["document"] for k, v in resources.items() if k.startswith("iam_role_policy:")}
    assert sorted(docs) == ["alerts", "catalog", "secrets", "storage", "streams"]
    for name, doc in docs.items():
        assert wildcards(doc) == [], name  # type: ignore[arg-type]
    text = json.dumps(docs)
    assert f"arn:aws:s3:::{WAREHOUSE_BUCKET}/warehouse/*" in text
    assert f"arn:aws:s3:::{LANDING_BUCKET}/orders/*" in text and f"arn:aws:s3:::{LANDING_BUCKET}/*" not in text
    assert "arn:aws:glue:us-east-1:123456789012:table/silver/orders" in text
    assert "arn:aws:glue:us-east-1:123456789012:table/gold/daily_orders" in text
    assert f"arn:aws:kinesis:us-east-1:123456789012:stream/{STREAM}" in text
    assert "${secret_arn:shop/prod/ANALYTICS_DB_URL}" in text
    assert resources[f"iam_role:{role}"]["path"] == "/lakestack/shop/prod/"
    for value in SENTINELS.values():
        assert value not in json.dumps(resources)


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ({"Action": ["s3:GetObject"], "Resource": "*"}, "wildcard resource '*'"),
        ({"Action": ["s3:*"], "Resource": ["arn:aws:s3:::b/p/*"]}, "wildcard action 's3:*'"),
        ({"Action": ["s3:Get*"], "Resource": ["arn:aws:s3:::b/p/*"]}, "wildcard action 's3:Get*'"),
        ({"Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*/x"]}, "wildcard resource"),
        ({"Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/p*"]}, "wildcard resource"),
        ({"Action": ["glue:GetTable"], "Resource": ["arn:aws:glue:r:1:table/bronze/*"]}, "wildcard resource"),
        ({"Action": ["kinesis:GetRecords"], "Resource": ["arn:aws:kinesis:r:1:stream/?"]}, "wildcard resource"),
        ({"NotAction": ["iam:*"], "Resource": ["arn:aws:s3:::b/p/*"]}, "NotAction"),
    ],
)
def test_the_wildcard_check_catches(statement: dict[str, object], problem: str) -> None:
    found = wildcards({"Statement": [{"Effect": "Allow", **statement}]})
    assert found and problem in found[0]


def test_the_wildcard_check_passes_exact_names() -> None:
    ok = {"Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::bkt/p/q/*", "arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"]}
    assert wildcards({"Statement": [{"Effect": "Allow", **ok}]}) == []


def test_a_kinesis_source_in_another_region_is_a_project_error(tmp_path: Path) -> None:
    from lakestack.errors import ConfigError

    root = write_project(tmp_path / "shop")
    # no kinesis.region: boto3 resolves the region, the one deployed to
    assert aws_resources(load_project_config(root), "prod", root, Target("123456789012", "eu-west-1"))
    text = (root / "lakestack.yaml").read_text()
    pinned = text.replace("kinesis: {stream_name:", "kinesis: {region: us-east-1, stream_name:")
    assert pinned != text
    (root / "lakestack.yaml").write_text(pinned)
    with pytest.raises(ConfigError) as caught:
        aws_resources(load_project_config(root), "prod", root, Target("123456789012", "eu-west-1"))
    assert "source 'clicks' reads Kinesis in us-east-1" in str(caught.value)
    lines = (root / "lakestack.yaml").read_text().splitlines()
    assert caught.value.location is not None and lines[caught.value.location.line - 1].strip().startswith("clicks:")


def test_policies_over_the_inline_limit_are_refused_before_aws(tmp_path: Path) -> None:
    from lakestack.errors import ConfigError

    root = write_project(tmp_path / "shop")
    for i in range(150):  # 150 Gold models: a table ARN each in the catalog policy
        (root / "models" / "gold" / f"mart_number_{i:03d}.sql").write_text("SELECT 1 AS n\n")
    with pytest.raises(ConfigError, match="IAM allows 10,240"):
        aws_resources(load_project_config(root), "prod", root, Target("123456789012", "us-east-1"))

"""`lakestack deploy aws` end to end against a moto server on 127.0.0.1, through the real CLI and boto3:
plan, apply, apply again (nothing to do), drift repaired, an apply failing midway and re-run to
completion, destroy; every policy in IAM free of wildcards; the Terraform export equal to the plan;
no secret value in any output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aws_support import moto_server, own_moto_server  # noqa: F401  (fixtures)
from deploy_support import SENTINELS, resources_from_hcl, write_project
from lake_support import cli
from lakestack.deploy.resources import canonical, wildcards

ACCOUNT, REGION = "123456789012", "us-east-1"
pytestmark = pytest.mark.integration


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli(root, "deploy", "aws", "--env", "prod", *args, timeout=120, **SENTINELS)
    for value in SENTINELS.values():  # a secret's value never reaches any output
        assert value not in result.stdout and value not in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


@pytest.fixture
def project(tmp_path: Path, own_moto_server: str, request: pytest.FixtureRequest) -> Path:  # noqa: F811
    name = request.node.name.removeprefix("test_").split("_")[0][:8]  # distinct names per test
    return write_project(tmp_path / name, own_moto_server, name=f"dp{name}")


def test_plan_apply_again_drift_destroy(project: Path, own_moto_server: str, tmp_path: Path) -> None:  # noqa: F811
    name = project.name
    lake, landing, role = f"dp{name}-lake-prod", f"dp{name}-landing-prod", f"lakestack-dp{name}-prod-pipeline"

    # --dry-run > plan.json: the plan as JSON, nothing changed
    planned = _cli(project, "--dry-run")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(planned.stdout)
    plan = json.loads(plan_file.read_text())
    assert plan["summary"] == {"create": 20, "update": 0, "unchanged": 0, "delete": 0}
    assert (plan["account"], plan["region"]) == (ACCOUNT, REGION)
    s3 = _client(own_moto_server, "s3")
    assert lake not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for change in plan["changes"]:  # every planned policy is scoped
        if change["kind"] == "iam_role_policy":
            assert wildcards(change["spec"]["document"]) == [], change["name"]

    # the Terraform export declares the same resources and policies as the boto3 plan
    out = tmp_path / "infra"
    assert cli(project, "deploy", "terraform", "--env", "prod", "-o", str(out), **SENTINELS).returncode == 0
    pytest.importorskip("hcl2")
    from_hcl = resources_from_hcl(out, ACCOUNT, REGION)
    assert sorted(from_hcl) == sorted(f"{c['kind']}:{c['name']}" for c in plan["changes"])
    for change in plan["changes"]:
        assert canonical(from_hcl[f"{change['kind']}:{change['name']}"]) == canonical(change["spec"]), change["name"]

    # apply creates everything, as planned
    applied = _json(_cli(project, "--apply", "--json"))
    assert len(applied["applied"]) == 20 and {c["action"] for c in applied["applied"]} == {"create"}
    _assert_resources(own_moto_server, lake, landing, role, f"dp{name}")

    # apply again: nothing to do
    again = _json(_cli(project, "--apply", "--json"))
    assert again["summary"] == {"create": 0, "update": 0, "unchanged": 20, "delete": 0}
    assert again["applied"] == []

    # drift (versioning suspended by hand, an alarm deleted) is planned as update + create and repaired
    s3.put_bucket_versioning(Bucket=lake, VersioningConfiguration={"Status": "Suspended"})
    _client(own_moto_server, "cloudwatch").delete_alarms(AlarmNames=[f"lakestack-dp{name}-prod-sla-orders_fresh"])
    drift = _json(_cli(project, "--plan", "--json"))
    pending = {
        (c["action"], c["name"], tuple(c.get("fields", []))) for c in drift["changes"] if c["action"] != "unchanged"
    }
    assert pending == {("update", lake, ("versioning",)), ("create", f"lakestack-dp{name}-prod-sla-orders_fresh", ())}
    _json(_cli(project, "--apply", "--json"))
    assert _json(_cli(project, "--json"))["summary"]["unchanged"] == 20

    # destroy: refused without --yes; a bucket holding files is kept without --delete-data
    s3.put_object(Bucket=lake, Key="warehouse/bronze.db/orders/data/x.parquet", Body=b"x")
    refused = _cli(project, "--destroy")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    kept = _cli(project, "--destroy", "--yes")
    assert kept.returncode == 3 and f"bucket {lake} is not empty" in kept.stderr and "--delete-data" in kept.stderr
    left = _json(_cli(project, "--destroy", "--dry-run"))
    # apply stops at the first failure: the landing bucket (after the lake's) is still there too
    assert [(c["kind"], c["name"]) for c in left["changes"]] == [("s3_bucket", lake), ("s3_bucket", landing)]
    gone = _json(_cli(project, "--destroy", "--yes", "--delete-data", "--json"))
    assert [c["name"] for c in gone["applied"]] == [lake, landing]
    assert _json(_cli(project, "--destroy", "--dry-run"))["summary"]["delete"] == 0
    iam = _client(own_moto_server, "iam")
    assert role not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert lake not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def _assert_resources(endpoint: str, lake: str, landing: str, role: str, prefix: str) -> None:
    s3 = _client(endpoint, "s3")
    for bucket in (lake, landing):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert set(block.values()) == {True}
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=landing)["Rules"]
    assert {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in lifecycle if "Expiration" in r} == {
        "orders/": 30,
        "refunds/": 30,
    }
    glue = _client(endpoint, "glue")
    assert {"bronze", "silver", "gold", "quarantine", "_lakestack"} <= {
        d["Name"] for d in glue.get_databases()["DatabaseList"]
    }
    kinesis = _client(endpoint, "kinesis")
    assert (
        kinesis.describe_stream_summary(StreamName=f"{prefix}-clicks-prod")["StreamDescriptionSummary"]["StreamStatus"]
        == "ACTIVE"
    )
    sm = _client(endpoint, "secretsmanager")
    secrets = {s["Name"] for s in sm.list_secrets()["SecretList"] if s["Name"].startswith(f"{prefix}/prod/")}
    assert secrets == {f"{prefix}/prod/{n}" for n in SENTINELS}
    with pytest.raises(sm.exceptions.ResourceNotFoundException):  # created empty: no value was ever set
        sm.get_secret_value(SecretId=f"{prefix}/prod/ANALYTICS_DB_URL")
    iam = _client(endpoint, "iam")
    documents = [iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]]
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert sorted(names) == ["alerts", "catalog", "secrets", "storage", "streams"]
    documents += [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in names]
    for document in documents:  # every policy in IAM: no wildcard action or resource
        assert wildcards(document) == [], document
        for statement in document["Statement"]:
            assert statement.get("Resource") != "*"
    text = json.dumps(documents)
    assert "${secret_arn:" not in text  # resolved to the secrets' real ARNs
    assert f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{prefix}/prod/ANALYTICS_DB_URL-" in text
    alarms = _client(endpoint, "cloudwatch").describe_alarms(AlarmNamePrefix=f"lakestack-{prefix}-prod-")[
        "MetricAlarms"
    ]
    assert sorted(a["AlarmName"] for a in alarms) == [
        f"lakestack-{prefix}-prod-sla-orders_fresh",
        f"lakestack-{prefix}-prod-sla-runs_succeed",
    ]


def test_failure_midway_reports_and_reruns(project: Path, own_moto_server: str) -> None:  # noqa: F811
    prefix = f"dp{project.name}"
    blocked = f"{prefix}/prod/S3_KEY_ID"
    sm = _client(own_moto_server, "secretsmanager")
    sm.create_secret(Name=blocked)  # a secret of that name, scheduled for deletion: AWS refuses to create it
    sm.delete_secret(SecretId=blocked, RecoveryWindowInDays=7)

    failed = _cli(project, "--apply")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    message = " ".join(failed.stderr.split())
    assert f"create secret {blocked} failed: ResourceExistsException" in message
    assert (
        f"created s3_bucket {prefix}-lake-prod" in message
        and f"created secret {prefix}/prod/ANALYTICS_DB_URL" in message
    )
    assert "restore-secret" in message and "Run the same command again" in message
    iam = _client(own_moto_server, "iam")
    assert f"lakestack-{prefix}-prod-pipeline" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}

    replan = _json(_cli(project, "--json"))  # what was created is now unchanged; the rest still to do
    assert replan["summary"]["unchanged"] == 9 and replan["summary"]["create"] == 11

    sm.restore_secret(SecretId=blocked)  # what the message says to do
    done = _json(_cli(project, "--apply", "--json"))
    assert {(c["action"], c["name"]) for c in done["applied"]} >= {("update", blocked)}
    assert _json(_cli(project, "--json"))["summary"] == {"create": 0, "update": 0, "unchanged": 20, "delete": 0}
    assert _json(_cli(project, "--destroy", "--yes", "--json"))["summary"]["delete"] == 20


def test_unreachable_endpoint_is_exit_3(tmp_path: Path) -> None:
    root = write_project(tmp_path / "shop", "http://127.0.0.1:9")  # nothing listens on port 9
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    result = cli(root, "deploy", "aws", "--env", "prod", timeout=120, **SENTINELS, **keys)
    assert result.returncode == 3, result.stderr
    assert "could not ask STS who we are" in result.stderr and "Traceback" not in result.stderr


def test_unknown_environment_is_exit_2(tmp_path: Path) -> None:
    root = write_project(tmp_path / "shop")
    result = cli(root, "deploy", "aws", "--env", "staging", "--json")
    assert result.returncode == 2
    assert "no environment 'staging'" in json.loads(result.stdout)["message"]


def test_sla_alarms_watch_what_lakestack_sla_publishes(tmp_path: Path, moto_server: str) -> None:  # noqa: F811
    """The alarm `deploy aws` creates for an SLA watches the metric `lakestack sla` sends to CloudWatch."""
    import yaml

    from lakestack.config import load_project_config
    from lakestack.deploy.resources import Target, aws_resources

    root = tmp_path / "slashop"
    assert cli(tmp_path, "init", "slashop", "--path", str(root)).returncode == 0
    data = yaml.safe_load((root / "lakestack.yaml").read_text())
    data["environments"]["dev"]["metrics"] = {
        "cloudwatch": {"namespace": "SlaShop", "endpoint_url": moto_server, "region": REGION}
    }
    (root / "lakestack.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "slas.yaml").write_text("slas:\n  runs_succeed: {kind: availability, job: run, min_success: 90%}\n")
    assert cli(root, "run").returncode == 0
    evaluated = cli(root, "sla", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert [r["status"] for r in json.loads(evaluated.stdout)] == ["ok"]

    alarm = next(
        r for r in aws_resources(load_project_config(root), "dev", root, Target(ACCOUNT, REGION)) if r.kind == "alarm"
    )
    cloudwatch = _client(moto_server, "cloudwatch")
    listed = cloudwatch.list_metrics(Namespace=alarm.spec["namespace"], MetricName=alarm.spec["metric"])["Metrics"]
    dimensions = [{d["Name"]: d["Value"] for d in m["Dimensions"]} for m in listed]
    assert alarm.spec["dimensions"] in dimensions, (alarm.spec, listed)
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace=alarm.spec["namespace"],
        MetricName=alarm.spec["metric"],
        Dimensions=[{"Name": k, "Value": v} for k, v in alarm.spec["dimensions"].items()],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert stats and max(p["Maximum"] for p in stats) == 0.0  # met: below the alarm's threshold

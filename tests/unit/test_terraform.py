"""`lakestack deploy terraform`: the HCL, parsed back with python-hcl2, declares exactly the resources
and IAM policies of the resource model boto3 plans from, and no secret value and no wildcard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy_support import SENTINELS, resources_from_hcl, write_project
from lakestack.config import load_project_config
from lakestack.deploy.resources import Target, aws_resources, canonical, wildcards
from lakestack.deploy.terraform import files, write

pytest.importorskip("hcl2", reason="python-hcl2 (the dev extra) parses the HCL back")
ACCOUNT, REGION = "210987654321", "us-east-1"  # the Kinesis source reads us-east-1


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "shop")


def test_hcl_parsed_back_equals_the_resource_model(project: Path, tmp_path: Path) -> None:
    config = load_project_config(project)
    out = tmp_path / "infra"
    written = write(config, "prod", project, out)
    assert sorted(p.name for p in written) == ["main.tf", "variables.tf", "versions.tf"]
    from_hcl = resources_from_hcl(out, ACCOUNT, REGION)
    planned = {r.key: dict(r.spec) for r in aws_resources(config, "prod", project, Target(ACCOUNT, REGION))}
    assert sorted(from_hcl) == sorted(planned)
    for key, spec in planned.items():
        assert canonical(from_hcl[key]) == canonical(spec), key
    kinds = {key.partition(":")[0] for key in planned}
    assert kinds == {"s3_bucket", "glue_database", "kinesis_stream", "secret", "iam_role", "iam_role_policy", "alarm"}


def test_every_hcl_policy_is_free_of_wildcards(project: Path, tmp_path: Path) -> None:
    from deploy_support import hcl_policies

    write(load_project_config(project), "prod", project, tmp_path / "infra")
    policies = hcl_policies(tmp_path / "infra")
    assert len(policies) == 6  # the trust policy and five permission policies
    for name, document in policies.items():
        assert wildcards(document) == [], name
        for statement in document["Statement"]:  # type: ignore[attr-defined]
            for resource in statement.get("Resource", []):
                assert resource != "*" and not resource.endswith(":*"), (name, resource)


def test_no_secret_value_in_the_hcl(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SENTINELS.items():
        monkeypatch.setenv(name, value)
    text = "\n".join(files(load_project_config(project), "prod", project).values())
    for value in SENTINELS.values():
        assert value not in text
    assert 'name = "shop/prod/ANALYTICS_DB_URL"' in text  # the secret is named, empty
    assert "secret_string" not in text


def test_hcl_strings_are_escaped() -> None:
    from lakestack.deploy.terraform import value

    assert value('a "b" ${x} %{y}') == '"a \\"b\\" $${x} %%{y}"'
    assert value("arn:aws:glue:${var.region}:${var.account_id}:catalog") == (
        '"arn:aws:glue:${var.region}:${var.account_id}:catalog"'
    )
    assert json.loads(value("plain")) == "plain"

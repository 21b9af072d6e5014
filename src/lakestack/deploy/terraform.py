"""`lakestack deploy terraform`: the resources of `resources.py` as Terraform HCL (AWS provider 5.x).

Writes `versions.tf` (provider), `variables.tf` (`account_id`, `region`) and `main.tf`. ARNs are
built from `${var.region}` and `${var.account_id}`; a policy names a secret by its resource's
`.arn`; IAM documents are `aws_iam_policy_document` data blocks. No secret value is written:
secrets are created empty (set their values with `aws secretsmanager put-secret-value`).
Terraform is not run here; `terraform validate` and `terraform plan` are left to the user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lakestack.config import ProjectConfig
from lakestack.deploy.resources import Resource, Target, aws_resources, secret_of_ref, wildcards
from lakestack.errors import ConfigError

TF_TARGET = Target(account="${var.account_id}", region="${var.region}")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_VARS = ("${var.account_id}", "${var.region}")
RECOVERY_DAYS = 7


class Expr(str):
    """An HCL expression written as is (a reference such as `aws_iam_role.x.id`)."""


def value(v: Any, indent: int = 0) -> str:
    """A Python value as an HCL expression."""
    pad = "  " * indent
    if isinstance(v, Expr):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        rows = [f"{pad}  {_key(k)} = {value(x, indent + 1)}" for k, x in v.items()]
        return "{\n" + "\n".join(rows) + f"\n{pad}}}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x, indent) for x in v) + "]"
    raise TypeError(f"no HCL for {type(v).__name__}")


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    escaped = escaped.replace("${", "$${").replace("%{", "%%{")
    for var in _VARS:  # the only interpolations lakestack writes on purpose
        escaped = escaped.replace("$" + var, var)
    return f'"{escaped}"'


def _key(k: str) -> str:
    return k if _IDENT.match(k) else _string(k)


class Block:
    """`type "label" ... { attributes and nested blocks }`."""

    def __init__(self, kind: str, *labels: str) -> None:
        self.kind, self.labels = kind, labels
        self.items: list[tuple[str, Any]] = []

    def set(self, name: str, v: Any) -> Block:
        self.items.append((name, v))
        return self

    def block(self, kind: str) -> Block:
        child = Block(kind)
        self.items.append(("", child))
        return child

    def render(self, indent: int = 0) -> str:
        pad = "  " * indent
        head = " ".join([self.kind, *(_string(label) for label in self.labels)])
        lines = [f"{pad}{head} {{"]
        for name, item in self.items:
            if isinstance(item, Block):
                lines.append(item.render(indent + 1))
            else:
                lines.append(f"{pad}  {name} = {value(item, indent + 1)}")
        lines.append(f"{pad}}}")
        return "\n".join(lines)


# -- resources → blocks ------------------------------------------------------------------------
def blocks(resources: Sequence[Resource]) -> list[Block]:
    secrets = {r.name: r.tf_name for r in resources if r.kind == "secret"}
    roles = {r.name: r.tf_name for r in resources if r.kind == "iam_role"}
    out: list[Block] = []
    for r in resources:
        if r.kind == "s3_bucket":
            out += _bucket(r)
        elif r.kind == "glue_database":
            b = Block("resource", "aws_glue_catalog_database", r.tf_name).set("name", r.name)
            b.set("description", r.spec["description"])
            if "location" in r.spec:
                b.set("location_uri", r.spec["location"])
            out.append(b.set("parameters", dict(r.spec["parameters"])))
        elif r.kind == "kinesis_stream":
            b = Block("resource", "aws_kinesis_stream", r.tf_name).set("name", r.name)
            b.set("shard_count", r.spec["shard_count"]).set("retention_period", r.spec["retention_hours"])
            out.append(b.set("tags", dict(r.spec["tags"])))
        elif r.kind == "secret":
            b = Block("resource", "aws_secretsmanager_secret", r.tf_name).set("name", r.name)
            b.set("description", r.spec["description"]).set("recovery_window_in_days", RECOVERY_DAYS)
            out.append(b.set("tags", dict(r.spec["tags"])))
        elif r.kind == "iam_role":
            trust = f"{r.tf_name}_trust"
            out.append(_policy_document(trust, r.spec["assume_role_policy"], secrets))
            b = Block("resource", "aws_iam_role", r.tf_name).set("name", r.name).set("path", r.spec["path"])
            b.set("description", r.spec["description"])
            b.set("assume_role_policy", Expr(f"data.aws_iam_policy_document.{trust}.json"))
            out.append(b.set("tags", dict(r.spec["tags"])))
        elif r.kind == "iam_role_policy":
            role, _, name = r.name.partition("/")
            out.append(_policy_document(r.tf_name, r.spec["document"], secrets))
            b = Block("resource", "aws_iam_role_policy", r.tf_name).set("name", name)
            b.set("role", Expr(f"aws_iam_role.{roles[role]}.id"))
            out.append(b.set("policy", Expr(f"data.aws_iam_policy_document.{r.tf_name}.json")))
        elif r.kind == "alarm":
            out.append(_alarm(r))
    return out


def _bucket(r: Resource) -> list[Block]:
    t, ref = r.tf_name, Expr(f"aws_s3_bucket.{r.tf_name}.id")
    bucket = Block("resource", "aws_s3_bucket", t).set("bucket", r.name).set("tags", dict(r.spec["tags"]))
    versioning = Block("resource", "aws_s3_bucket_versioning", t).set("bucket", ref)
    versioning.block("versioning_configuration").set("status", r.spec["versioning"])
    sse = Block("resource", "aws_s3_bucket_server_side_encryption_configuration", t).set("bucket", ref)
    sse.block("rule").block("apply_server_side_encryption_by_default").set("sse_algorithm", r.spec["encryption"])
    public = Block("resource", "aws_s3_bucket_public_access_block", t).set("bucket", ref)
    names = {"BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"}
    for key, on in r.spec["public_access_block"].items():
        if key in names:
            public.set(re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(), on)
    lifecycle = Block("resource", "aws_s3_bucket_lifecycle_configuration", t).set("bucket", ref)
    for rule in r.spec["lifecycle"]:
        b = lifecycle.block("rule").set("id", rule["id"]).set("status", "Enabled")
        b.block("filter").set("prefix", rule["prefix"])
        if "expiration_days" in rule:
            b.block("expiration").set("days", rule["expiration_days"])
        if "noncurrent_expiration_days" in rule:
            b.block("noncurrent_version_expiration").set("noncurrent_days", rule["noncurrent_expiration_days"])
        if "abort_upload_days" in rule:
            b.block("abort_incomplete_multipart_upload").set("days_after_initiation", rule["abort_upload_days"])
        if "transition_days" in rule:
            b.block("transition").set("days", rule["transition_days"]).set("storage_class", rule["storage_class"])
    return [bucket, versioning, sse, public, lifecycle]


def _policy_document(name: str, document: Mapping[str, Any], secrets: Mapping[str, str]) -> Block:
    doc = Block("data", "aws_iam_policy_document", name)
    for s in document["Statement"]:
        b = doc.block("statement")
        if "Sid" in s:
            b.set("sid", s["Sid"])
        b.set("effect", s["Effect"]).set("actions", list(s["Action"]))
        if "Resource" in s:
            b.set("resources", [_resource(x, secrets) for x in s["Resource"]])
        for kind, ids in (s.get("Principal") or {}).items():
            b.block("principals").set("type", kind).set("identifiers", list(ids))
        for test, variables in (s.get("Condition") or {}).items():
            for variable, values in variables.items():
                b.block("condition").set("test", test).set("variable", variable).set("values", list(values))
    return doc


def _resource(arn: str, secrets: Mapping[str, str]) -> str:
    secret = secret_of_ref(arn)
    return Expr(f"aws_secretsmanager_secret.{secrets[secret]}.arn") if secret is not None else arn


def _alarm(r: Resource) -> Block:
    s = r.spec
    b = Block("resource", "aws_cloudwatch_metric_alarm", r.tf_name).set("alarm_name", r.name)
    b.set("alarm_description", s["description"]).set("namespace", s["namespace"]).set("metric_name", s["metric"])
    b.set("dimensions", dict(s["dimensions"])).set("statistic", s["statistic"]).set("period", s["period"])
    b.set("evaluation_periods", s["evaluation_periods"]).set("threshold", s["threshold"])
    b.set("comparison_operator", s["comparison"]).set("treat_missing_data", s["treat_missing_data"])
    return b.set("alarm_actions", list(s["actions"])).set("tags", dict(s["tags"]))


# -- files -------------------------------------------------------------------------------------
HEADER = "# Written by `lakestack deploy terraform`; regenerate instead of editing. No secret values here.\n"


def files(config: ProjectConfig, environment: str, root: Path) -> dict[str, str]:
    """The HCL files of an environment: name → text."""
    resources = aws_resources(config, environment, root, TF_TARGET)
    for r in resources:
        if r.kind == "iam_role_policy" and wildcards(r.spec["document"]):
            raise ConfigError(f"policy {r.name} is not scoped: {'; '.join(wildcards(r.spec['document']))}")
    env = config.environments[environment]
    region = Block("variable", "region").set("type", Expr("string"))
    region.set("description", "The AWS region of the environment")
    if env.s3.region:
        region.set("default", env.s3.region)
    account = Block("variable", "account_id").set("type", Expr("string"))
    account.set("description", "The AWS account id the ARNs in policies name")
    versions = (
        "terraform {\n  required_providers {\n    aws = {\n"
        '      source  = "hashicorp/aws"\n      version = ">= 5.0"\n    }\n  }\n}\n\n'
        'provider "aws" {\n  region = var.region\n}\n'
    )
    return {
        "versions.tf": HEADER + versions,
        "variables.tf": HEADER + _join([region, account]),
        "main.tf": HEADER + _join(blocks(resources)),
    }


def _join(items: Iterable[Block]) -> str:
    return "\n\n".join(b.render() for b in items) + "\n"


def write(config: ProjectConfig, environment: str, root: Path, out: Path) -> list[Path]:
    """Write the HCL files into `out` (created); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files(config, environment, root).items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written

"""The AWS resources one environment of a project needs, as plain values (no I/O, no boto3).

:func:`aws_resources` derives them from the project file, `slas.yaml` and the Gold model files:

- an S3 bucket per bucket the environment's warehouse or an S3 landing folder names: versioning on,
  default encryption (SSE-S3), every public access blocked, lifecycle rules (landing files expire,
  Bronze's raw files move to Standard-IA, old versions expire, unfinished uploads are aborted);
- a Glue database per namespace lakestack writes (when the catalog is `type: glue`);
- a Kinesis stream per Kinesis source;
- a Secrets Manager secret per secret the environment references (its name only, never a value),
  when the environment's secrets provider is `aws-secretsmanager`;
- a CloudWatch alarm per SLA of `slas.yaml`;
- one IAM role with inline policies scoped to the exact bucket prefixes, Glue catalog, database and
  table ARNs, stream ARNs, secret ARNs and SNS topics: no `*` action, no `*` resource (the only `*`
  is the one ending an S3 object prefix, `arn:aws:s3:::bucket/prefix/*`; see :func:`wildcards`).

A secret's ARN ends in a suffix AWS chooses when it creates it, so a policy names it as
``${secret_arn:NAME}`` (:func:`secret_arn_ref`) until apply knows it; Terraform writes the
secret resource's `.arn` there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lakestack.config import EnvironmentConfig, ProjectConfig, SecretRef
from lakestack.errors import ConfigError

# the namespaces lakestack's warehouse creates (storage/warehouse.py NAMESPACES; a unit test pins it)
NAMESPACES = ("bronze", "silver", "gold", "quarantine", "_lakestack")
# lakestack's own tables in `_lakestack` (a unit test checks every one named in src/ is here)
SYSTEM_TABLES = (
    "alerts",
    "api_keys",
    "applied",
    "audit",
    "check_failures",
    "check_results",
    "lookup_calls",
    "runs",
    "sla_results",
    "token_vault",
)
KINDS = ("s3_bucket", "glue_database", "kinesis_stream", "secret", "iam_role", "iam_role_policy", "alarm")
TRUSTED_SERVICES = ("ecs-tasks.amazonaws.com", "glue.amazonaws.com")
LANDING_EXPIRE_DAYS = 30
RAW_TRANSITION_DAYS = 30
NONCURRENT_EXPIRE_DAYS = 30
ABORT_UPLOAD_DAYS = 7
KINESIS_SHARDS = 1
KINESIS_RETENTION_HOURS = 24
INLINE_POLICY_LIMIT = 10_240  # characters of inline policy per IAM role, whitespace not counted
SLA_METRIC = "SlaBreach"  # 1 while an SLA is breached, 0 while met; dimension Sla=<name>
TAG_PROJECT, TAG_ENV, TAG_MANAGED = "lakestack:project", "lakestack:environment", "lakestack:managed-by"
_SECRET_REF = re.compile(r"^\$\{secret_arn:([^}]+)\}$")
_S3 = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")


@dataclass(frozen=True, slots=True)
class Resource:
    """One AWS resource: its kind, its name in AWS and the attributes lakestack manages (JSON values)."""

    kind: str
    name: str
    spec: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def tf_name(self) -> str:
        """A Terraform resource name: lower-case letters, digits and `_`."""
        name = re.sub(r"[^a-z0-9_]", "_", self.name.lower()).strip("_") or "x"
        return name if name[0].isalpha() else f"r_{name}"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the resources go: the account and region ARNs are built from (Terraform: `${var.…}`)."""

    account: str
    region: str
    partition: str = "aws"


def secret_arn_ref(secret_id: str) -> str:
    """A secret's ARN before AWS has chosen it: resolved by apply, `.arn` in Terraform."""
    return "${secret_arn:" + secret_id + "}"


def secret_of_ref(value: str) -> str | None:
    match = _SECRET_REF.match(value)
    return match.group(1) if match else None


def base_name(project: str, environment: str) -> str:
    """The prefix of the names lakestack gives (roles, alarms): `lakestack-<project>-<env>`."""
    return f"lakestack-{project}-{environment}".replace("_", "-")


def tags(project: str, environment: str) -> dict[str, str]:
    return {TAG_PROJECT: project, TAG_ENV: environment, TAG_MANAGED: "lakestack"}


def split_s3(url: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` as (`bucket`, `a/b`)."""
    match = _S3.match(url)
    if match is None:
        raise ConfigError(f"'{url}' is not an S3 location (s3://bucket/prefix)")
    return match.group(1), (match.group(2) or "").strip("/")


# -- the model ---------------------------------------------------------------------------------
def aws_resources(config: ProjectConfig, environment: str, root: Path, target: Target) -> list[Resource]:
    """Every resource environment `environment` of the project at `root` needs, in creation order."""
    if environment not in config.environments:
        known = ", ".join(config.environments)
        raise ConfigError(f"no environment '{environment}' in lakestack.yaml (environments: {known})")
    env = config.environments[environment]
    tagset = tags(config.name, environment)
    out: list[Resource] = []
    out += _buckets(config, env, tagset)
    out += _glue_databases(env, tagset)
    out += _streams(config, tagset, target)
    out += _secrets(config, env, tagset)
    role = base_name(config.name, environment) + "-pipeline"
    out.append(_role(role, config.name, environment, tagset))
    out += _role_policies(role, config, env, root, target)
    out += _alarms(config, environment, env, root, target)
    return out


def _buckets(config: ProjectConfig, env: EnvironmentConfig, tagset: dict[str, str]) -> list[Resource]:
    landings: dict[str, list[str]] = {}
    warehouse: dict[str, str] = {}
    if env.warehouse.startswith("s3://"):
        bucket, prefix = split_s3(env.warehouse)
        warehouse[bucket] = prefix
        landings.setdefault(bucket, [])
    for source in config.sources.values():
        if source.landing and source.landing.startswith("s3://"):
            bucket, prefix = split_s3(source.landing)
            landings.setdefault(bucket, []).append(prefix)
    out = []
    for bucket in sorted(landings):
        rules = _lifecycle(sorted(set(landings[bucket])), warehouse.get(bucket))
        spec = {
            "versioning": "Enabled",
            "encryption": "AES256",
            "public_access_block": dict.fromkeys(
                ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
            ),
            "lifecycle": rules,
            "tags": tagset,
        }
        out.append(Resource("s3_bucket", bucket, spec))
    return out


def _join(prefix: str, rest: str) -> str:
    return f"{prefix}/{rest}" if prefix else rest


def _lifecycle(landings: list[str], warehouse: str | None) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "id": "old-versions",
            "prefix": "",
            "noncurrent_expiration_days": NONCURRENT_EXPIRE_DAYS,
            "abort_upload_days": ABORT_UPLOAD_DAYS,
        }
    ]
    for i, prefix in enumerate(landings):
        rules.append({"id": f"landing-{i + 1}", "prefix": prefix + "/", "expiration_days": LANDING_EXPIRE_DAYS})
    if warehouse is not None:  # Bronze keeps every raw record: cheaper storage, never expired
        rules.append(
            {
                "id": "raw-bronze",
                "prefix": _join(warehouse, "bronze.db/"),
                "transition_days": RAW_TRANSITION_DAYS,
                "storage_class": "STANDARD_IA",
            }
        )
    return rules


def _glue_databases(env: EnvironmentConfig, tagset: dict[str, str]) -> list[Resource]:
    if env.catalog.type != "glue":
        return []
    out = []
    for ns in NAMESPACES:
        spec: dict[str, Any] = {"description": f"lakestack {ns} tables", "parameters": tagset}
        if env.warehouse.startswith("s3://"):
            spec["location"] = env.warehouse.rstrip("/") + f"/{ns}.db"
        out.append(Resource("glue_database", ns, spec))
    return out


def _streams(config: ProjectConfig, tagset: dict[str, str], target: Target) -> list[Resource]:
    from lakestack.config import locate

    for name, source in config.sources.items():
        kinesis = source.kinesis
        if (
            source.kind == "kinesis"
            and kinesis
            and kinesis.region is not None  # unset: the region boto3 resolves, the one deployed to
            and not target.region.startswith("${")
            and kinesis.region != target.region
        ):
            raise ConfigError(
                f"source '{name}' reads Kinesis in {kinesis.region} (its kinesis.region), "
                f"but the environment deploys to {target.region}: set kinesis.region to {target.region}",
                locate(config, "sources", name, "kinesis"),
            )
    names = sorted({s.kinesis.stream_name for s in config.sources.values() if s.kind == "kinesis" and s.kinesis})
    spec = {"shard_count": KINESIS_SHARDS, "retention_hours": KINESIS_RETENTION_HOURS, "tags": tagset}
    return [Resource("kinesis_stream", name, spec) for name in names]


def secret_names(config: ProjectConfig, env: EnvironmentConfig) -> list[str]:
    """The names of the secrets an environment references (its block, sources, publish targets)."""
    found: set[str] = set()
    for model in (env, *config.sources.values(), *config.publish.values()):
        found |= set(_secret_refs(model))
    return sorted(found)


def _secret_refs(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, SecretRef):
        yield value.secret
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_refs(getattr(value, name), name)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_refs(item)
    elif isinstance(value, str) and key.endswith("_secret"):  # api_key_secret, token_secret, ...
        yield value


def _secrets(config: ProjectConfig, env: EnvironmentConfig, tagset: dict[str, str]) -> list[Resource]:
    if env.secrets.provider != "aws-secretsmanager":
        return []
    spec = {"description": "lakestack secret (value set outside lakestack)", "tags": tagset}
    return [Resource("secret", env.secrets.prefix + name, spec) for name in secret_names(config, env)]


def _role(role: str, project: str, environment: str, tagset: dict[str, str]) -> Resource:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": list(TRUSTED_SERVICES)}, "Action": ["sts:AssumeRole"]}
        ],
    }
    spec = {
        "path": role_path(project, environment),
        "assume_role_policy": trust,
        "description": f"lakestack pipeline of {project} ({environment})",
        "tags": tagset,
    }
    return Resource("iam_role", role, spec)


def role_path(project: str, environment: str) -> str:
    return f"/lakestack/{project}/{environment}/"


# -- policies ----------------------------------------------------------------------------------
def _role_policies(
    role: str, config: ProjectConfig, env: EnvironmentConfig, root: Path, target: Target
) -> list[Resource]:
    documents = {
        "storage": _storage_statements(config, env, target),
        "catalog": _catalog_statements(config, env, root, target),
        "streams": _stream_statements(config, target),
        "secrets": _secret_statements(config, env),
        "alerts": _alert_statements(env),
    }
    out = []
    for name, statements in documents.items():
        if statements:
            document = {"Version": "2012-10-17", "Statement": statements}
            out.append(Resource("iam_role_policy", f"{role}/{name}", {"role": role, "document": document}))
    size = sum(len(canonical(r.spec["document"])) for r in out)
    if size > INLINE_POLICY_LIMIT:
        raise ConfigError(
            f"the role's policies would hold {size:,} characters; IAM allows {INLINE_POLICY_LIMIT:,} of inline "
            "policy per role: the project names too many tables for one role (managed policies are not built)"
        )
    return out


def _storage_statements(config: ProjectConfig, env: EnvironmentConfig, target: Target) -> list[dict[str, Any]]:
    p = target.partition
    prefixes: dict[str, set[str]] = {}
    out: list[dict[str, Any]] = []
    if env.warehouse.startswith("s3://"):
        bucket, prefix = split_s3(env.warehouse)
        prefixes.setdefault(bucket, set()).add(prefix)
        out.append(
            _allow(
                "WarehouseObjects",
                ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                [f"arn:{p}:s3:::{bucket}/{_join(prefix, '*')}"],
            )
        )
    landing = []
    for source in config.sources.values():
        if source.landing and source.landing.startswith("s3://"):
            bucket, prefix = split_s3(source.landing)
            prefixes.setdefault(bucket, set()).add(prefix)
            landing.append(f"arn:{p}:s3:::{bucket}/{_join(prefix, '*')}")
    if landing:
        out.append(_allow("LandingObjects", ["s3:GetObject"], sorted(set(landing))))
    for i, (bucket, names) in enumerate(sorted(prefixes.items())):
        listed = sorted({x for n in names for x in ((n, n + "/", n + "/*") if n else ("*",))})
        statement = _allow(f"ListPrefixes{i + 1}", ["s3:ListBucket"], [f"arn:{p}:s3:::{bucket}"])
        statement["Condition"] = {"StringLike": {"s3:prefix": listed}}
        out.append(statement)
    if prefixes:
        buckets = [f"arn:{p}:s3:::{b}" for b in sorted(prefixes)]
        out.append(_allow("BucketLocation", ["s3:GetBucketLocation"], buckets))
    return out


def _catalog_statements(
    config: ProjectConfig, env: EnvironmentConfig, root: Path, target: Target
) -> list[dict[str, Any]]:
    if env.catalog.type != "glue":
        return []
    glue = f"arn:{target.partition}:glue:{target.region}:{target.account}"
    tables = [f"{glue}:table/{db}/{name}" for db, name in project_tables(config, root)]
    resources = [f"{glue}:catalog", *(f"{glue}:database/{ns}" for ns in NAMESPACES), *tables]
    actions = ["glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables"]
    actions += ["glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable"]
    return [_allow("GlueTables", actions, resources)]


def project_tables(config: ProjectConfig, root: Path) -> list[tuple[str, str]]:
    """Every table the project writes, as (namespace, table)."""
    out = [("bronze", s) for s in sorted(config.sources)] + [("quarantine", s) for s in sorted(config.sources)]
    out += [("silver", n) for n, d in sorted(config.datasets.items()) if d.layer == "silver"]
    gold = {n for n, d in config.datasets.items() if d.layer == "gold"}
    folder = root / "models" / "gold"
    if folder.is_dir():
        gold |= {p.stem for p in folder.glob("*.sql")}
    out += [("gold", n) for n in sorted(gold)]
    return out + [("_lakestack", t) for t in SYSTEM_TABLES]


def _stream_statements(config: ProjectConfig, target: Target) -> list[dict[str, Any]]:
    arn = f"arn:{target.partition}:kinesis:{target.region}:{target.account}:stream"
    streams = sorted({s.kinesis.stream_name for s in config.sources.values() if s.kind == "kinesis" and s.kinesis})
    if not streams:
        return []
    actions = ["kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"]
    return [_allow("ReadStreams", actions, [f"{arn}/{name}" for name in streams])]


def _secret_statements(config: ProjectConfig, env: EnvironmentConfig) -> list[dict[str, Any]]:
    if env.secrets.provider != "aws-secretsmanager":
        return []
    names = [secret_arn_ref(env.secrets.prefix + n) for n in secret_names(config, env)]
    return [_allow("ReadSecrets", ["secretsmanager:GetSecretValue"], names)] if names else []


def _alert_statements(env: EnvironmentConfig) -> list[dict[str, Any]]:
    topics = sorted(_topics(env))
    return [_allow("PublishAlerts", ["sns:Publish"], topics)] if topics else []


def _topics(env: EnvironmentConfig) -> set[str]:
    sinks = env.alerts.sinks.values() if env.alerts is not None else []
    return {s.sns.topic_arn for s in sinks if s.sns is not None}


def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


# -- alarms ------------------------------------------------------------------------------------
def _alarms(
    config: ProjectConfig, environment: str, env: EnvironmentConfig, root: Path, target: Target
) -> list[Resource]:
    from lakestack.monitor.sla_spec import load_slas

    spec = load_slas(root, config)
    if spec is None or not spec.slas:
        return []
    namespace = env.metrics.cloudwatch.namespace if env.metrics.cloudwatch else "Lakestack"
    period = max(60, math.ceil(spec.every_s / 60) * 60)  # CloudWatch periods are whole minutes
    out = []
    for name, sla in sorted(spec.slas.items()):
        alarm = {
            "description": f"SLA {name} ({sla.kind}) of {config.name} ({environment}) is breached",
            "namespace": namespace,
            "metric": SLA_METRIC,
            "dimensions": {"Sla": name},
            "statistic": "Maximum",
            "period": period,
            "evaluation_periods": 1,
            "threshold": 0.0,
            "comparison": "GreaterThanThreshold",
            "treat_missing_data": "missing",
            "actions": sorted(_topics(env)),
            "tags": tags(config.name, environment),
        }
        out.append(Resource("alarm", f"{base_name(config.name, environment)}-sla-{name}", alarm))
    return out


# -- the wildcard check ------------------------------------------------------------------------
def wildcards(document: Mapping[str, Any]) -> list[str]:
    """What in an IAM policy document grants more than named resources: a `*` or `?` in an action,
    a resource `*`, or a wildcard in a resource anywhere but the `/*` ending an S3 object prefix
    (`arn:aws:s3:::bucket/prefix/*`). Empty when the document is scoped."""
    problems = []
    for i, statement in enumerate(_listed(document.get("Statement"))):
        for key in ("NotAction", "NotResource", "NotPrincipal"):
            if key in statement:
                problems.append(f"statement {i}: {key} grants everything but what it names")
        for action in _listed(statement.get("Action")):
            if "*" in action or "?" in action:
                problems.append(f"statement {i}: wildcard action {action!r}")
        for resource in _listed(statement.get("Resource")):
            if not _scoped(resource):
                problems.append(f"statement {i}: wildcard resource {resource!r}")
        principal = statement.get("Principal")
        if principal == "*" or (isinstance(principal, dict) and "*" in _listed(principal.get("AWS"))):
            problems.append(f"statement {i}: any principal")
    return problems


def _scoped(resource: str) -> bool:
    if "?" in resource or resource.strip() == "*":
        return False
    if "*" not in resource:
        return True
    match = re.fullmatch(r"arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]+[a-z0-9]/(.*)\*", resource)
    prefix = match.group(1) if match else "*"  # a bucket dedicated to the lake (`bucket/*`) is named exactly
    return "*" not in prefix and (prefix == "" or prefix.endswith("/"))


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def canonical(value: Any) -> str:
    """A JSON text that compares equal for equal values (dict keys sorted)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

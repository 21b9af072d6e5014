"""`lakestack deploy aws`: plan, apply and destroy an environment's AWS resources through boto3.

The plan compares every resource the project asks for (`resources.aws_resources`) with what AWS
holds and says, per resource, `create`, `update` (with the fields that differ), `unchanged` or
`delete` (tagged as this project's and environment's, no longer asked for). Apply carries out the
plan's changes in order (buckets, databases, streams, secrets, the role, its policies, alarms); it
stops at the first error and reports what it had done, and running it again picks up from there,
because the next plan sees those resources as they now are. Apply twice: the second does nothing.

Region and endpoint: the environment's `s3.region` / `s3.endpoint_url` when set, else boto3's own
(AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, the profile). Credentials: boto3's chain only.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from lakestack.config import ProjectConfig
from lakestack.deploy.aws_state import AwsState, rule_to_aws
from lakestack.deploy.resources import (
    KINDS,
    Resource,
    Target,
    aws_resources,
    canonical,
    secret_of_ref,
    wildcards,
)
from lakestack.errors import ConfigError, MissingExtraError, RunError

log = logging.getLogger(__name__)

Action = Literal["create", "update", "unchanged", "delete"]
SECRET_RECOVERY_DAYS = 7


class DeployError(RunError):
    """AWS refused or could not be reached (exit 3); `done` lists what was changed before."""

    def __init__(self, message: str, done: Sequence[Change] = (), failed: Change | None = None) -> None:
        self.done, self.failed = list(done), failed
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    resource: Resource
    fields: tuple[str, ...] = ()  # for an update: the spec keys that differ

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "kind": self.resource.kind, "name": self.resource.name}
        if self.fields:
            out["fields"] = list(self.fields)
        if self.action != "delete":
            out["spec"] = dict(self.resource.spec)
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    project: str
    environment: str
    target: Target
    changes: tuple[Change, ...]
    destroy: bool = False

    def count(self, action: Action) -> int:
        return sum(c.action == action for c in self.changes)

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "environment": self.environment,
            "account": self.target.account,
            "region": self.target.region,
            "destroy": self.destroy,
            "summary": {a: self.count(a) for a in ("create", "update", "unchanged", "delete")},
            "changes": [c.as_json() for c in self.changes],
        }


@dataclass
class ApplyResult:
    plan: Plan
    done: list[Change] = field(default_factory=list)


# -- the session -------------------------------------------------------------------------------
class Aws:
    """boto3 clients for one region and endpoint, with short timeouts and few retries."""

    def __init__(self, region: str | None, endpoint_url: str | None) -> None:
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
        except ImportError:
            raise MissingExtraError("lakestack deploy aws", "aws") from None
        self.session = boto3.session.Session(region_name=region)
        self.region: str | None = self.session.region_name
        if not self.region:
            raise ConfigError("no AWS region: set the environment's s3.region in lakestack.yaml, or AWS_DEFAULT_REGION")
        self.endpoint_url = endpoint_url
        self._config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url, config=self._config)
        return self._clients[service]

    def target(self) -> Target:
        answer = _call(lambda: self.client("sts").get_caller_identity(), "ask STS who we are")
        account = str(answer["Account"])
        partition = str(answer.get("Arn", "arn:aws:")).split(":")[1] or "aws"
        return Target(account=account, region=str(self.region), partition=partition)


def open_aws(config: ProjectConfig, environment: str) -> Aws:
    env = config.environments.get(environment)
    if env is None:
        known = ", ".join(config.environments)
        raise ConfigError(f"no environment '{environment}' in lakestack.yaml (environments: {known})")
    return Aws(env.s3.region, env.s3.endpoint_url)


def _call(call: Callable[[], Any], what: str) -> Any:
    """One AWS call; its failure as a DeployError naming what was being done (never a traceback)."""
    try:
        return call()
    except DeployError:
        raise
    except Exception as exc:
        raise DeployError(f"could not {what}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip().rstrip(":")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


# -- plan --------------------------------------------------------------------------------------
def plan(
    aws: Aws, config: ProjectConfig, environment: str, root: Path, *, destroy: bool = False
) -> tuple[Plan, AwsState]:
    """Compare what the project asks for with what exists (destroy: every owned resource goes)."""
    target = aws.target()
    state = AwsState(aws.client, config.name, environment)
    desired = [] if destroy else aws_resources(config, environment, root, target)
    for resource in desired:
        if resource.kind == "iam_role_policy":
            problems = wildcards(resource.spec["document"])
            if problems:
                raise ConfigError(f"policy {resource.name} is not scoped: {'; '.join(problems)}")
    changes: list[Change] = []
    for resource in desired:
        if resource.kind == "iam_role_policy":
            resource = _resolve(resource, state.secret_arns)  # secrets come first: their ARNs are known
        read = functools.partial(state.read, resource.kind, resource.name)
        actual = _call(read, f"read {resource.kind} {resource.name}")
        changes.append(_compare(resource, actual))
    wanted = {r.key for r in desired}
    for kind in reversed(KINDS):
        for name in _call(functools.partial(state.owned, kind), f"list the {kind} resources"):
            if f"{kind}:{name}" not in wanted:
                changes.append(Change("delete", Resource(kind, name)))
    return Plan(config.name, environment, target, tuple(changes), destroy), state


def _compare(resource: Resource, actual: dict[str, Any] | None) -> Change:
    if actual is None:
        return Change("create", resource)
    differ = tuple(k for k, v in resource.spec.items() if canonical(v) != canonical(actual.get(k)))
    return Change("update", resource, differ) if differ else Change("unchanged", resource)


def _resolve(resource: Resource, arns: dict[str, str]) -> Resource:
    """A policy with the ARNs of the secrets that exist in place of their `${secret_arn:…}`."""
    document = json.loads(json.dumps(resource.spec["document"]))
    for statement in document["Statement"]:
        statement["Resource"] = [arns.get(secret_of_ref(r) or "", r) for r in statement["Resource"]]
    return replace(resource, spec={**resource.spec, "document": document})


# -- apply -------------------------------------------------------------------------------------
def apply(
    aws: Aws,
    the_plan: Plan,
    state: AwsState,
    *,
    delete_data: bool = False,
    step: Callable[[Change], None] | None = None,
) -> ApplyResult:
    """Carry out the plan's changes in order; the first failure raises DeployError with what was done."""
    result = ApplyResult(the_plan)
    apply_one = _Applier(aws, state, delete_data)
    for change in the_plan.pending:
        if change.resource.kind == "iam_role_policy" and change.action != "delete":
            change = replace(change, resource=_resolve(change.resource, state.secret_arns))
        try:
            apply_one(change)
        except Exception as exc:
            done = ", ".join(f"{c.action}d {c.resource.kind} {c.resource.name}" for c in result.done) or "nothing"
            hint = _hint(change, exc)
            raise DeployError(
                f"{change.action} {change.resource.kind} {change.resource.name} failed: {_reason(exc)}{hint}. "
                f"Done before it: {done}. Run the same command again to carry on.",
                result.done,
                change,
            ) from None
        result.done.append(change)
        if step is not None:
            step(change)
    return result


def _hint(change: Change, exc: Exception) -> str:
    text = str(exc)
    if change.resource.kind == "secret" and ("already exists" in text or "scheduled for deletion" in text):
        return (
            f" (a secret of that name is scheduled for deletion: restore it with "
            f"'aws secretsmanager restore-secret --secret-id {change.resource.name}', or wait until it is gone)"
        )
    return ""


class _Applier:
    """One change at a time, by kind; every call is safe to repeat."""

    def __init__(self, aws: Aws, state: AwsState, delete_data: bool) -> None:
        self.aws, self.state, self.delete_data = aws, state, delete_data

    def __call__(self, change: Change) -> None:
        method: Callable[[Resource], None] = getattr(self, f"_{change.action}_{change.resource.kind}")
        method(change.resource)

    # S3
    def _create_s3_bucket(self, r: Resource) -> None:
        s3 = self.aws.client("s3")
        if self.aws.region == "us-east-1":
            s3.create_bucket(Bucket=r.name)
        else:
            s3.create_bucket(Bucket=r.name, CreateBucketConfiguration={"LocationConstraint": self.aws.region})
        self._update_s3_bucket(r)

    def _update_s3_bucket(self, r: Resource) -> None:
        s3, spec = self.aws.client("s3"), r.spec
        s3.put_public_access_block(Bucket=r.name, PublicAccessBlockConfiguration=spec["public_access_block"])
        s3.put_bucket_versioning(Bucket=r.name, VersioningConfiguration={"Status": spec["versioning"]})
        sse = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": spec["encryption"]}}]}
        s3.put_bucket_encryption(Bucket=r.name, ServerSideEncryptionConfiguration=sse)
        rules = [rule_to_aws(rule) for rule in spec["lifecycle"]]
        s3.put_bucket_lifecycle_configuration(Bucket=r.name, LifecycleConfiguration={"Rules": rules})
        s3.put_bucket_tagging(Bucket=r.name, Tagging={"TagSet": _tag_list(spec["tags"])})

    def _delete_s3_bucket(self, r: Resource) -> None:
        s3 = self.aws.client("s3")
        versions = s3.list_object_versions(Bucket=r.name, MaxKeys=1000)
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])
        ]
        if objects and not self.delete_data:
            raise RunError(
                f"bucket {r.name} is not empty (it holds the lake's files); it is kept. "
                "Pass --delete-data to empty and remove it"
            )
        while objects:
            s3.delete_objects(Bucket=r.name, Delete={"Objects": objects, "Quiet": True})
            versions = s3.list_object_versions(Bucket=r.name, MaxKeys=1000)
            objects = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])
            ]
        s3.delete_bucket(Bucket=r.name)

    # Glue
    def _database_input(self, r: Resource) -> dict[str, Any]:
        out = {"Name": r.name, "Description": r.spec["description"], "Parameters": dict(r.spec["parameters"])}
        if "location" in r.spec:
            out["LocationUri"] = r.spec["location"]
        return out

    def _create_glue_database(self, r: Resource) -> None:
        self.aws.client("glue").create_database(DatabaseInput=self._database_input(r))

    def _update_glue_database(self, r: Resource) -> None:
        glue = self.aws.client("glue")
        current = glue.get_database(Name=r.name)["Database"].get("Parameters") or {}
        wanted = self._database_input(r)
        wanted["Parameters"] = {**current, **wanted["Parameters"]}  # others' parameters stay
        glue.update_database(Name=r.name, DatabaseInput=wanted)

    def _delete_glue_database(self, r: Resource) -> None:
        self.aws.client("glue").delete_database(Name=r.name)

    # Kinesis
    def _create_kinesis_stream(self, r: Resource) -> None:
        kinesis = self.aws.client("kinesis")
        kinesis.create_stream(StreamName=r.name, ShardCount=r.spec["shard_count"])
        kinesis.get_waiter("stream_exists").wait(StreamName=r.name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        self._update_kinesis_stream(r)

    def _update_kinesis_stream(self, r: Resource) -> None:
        kinesis = self.aws.client("kinesis")
        summary = kinesis.describe_stream_summary(StreamName=r.name)["StreamDescriptionSummary"]
        if summary.get("OpenShardCount") != r.spec["shard_count"]:
            kinesis.update_shard_count(
                StreamName=r.name, TargetShardCount=r.spec["shard_count"], ScalingType="UNIFORM_SCALING"
            )
        hours = summary.get("RetentionPeriodHours")
        if hours is not None and hours < r.spec["retention_hours"]:
            kinesis.increase_stream_retention_period(StreamName=r.name, RetentionPeriodHours=r.spec["retention_hours"])
        elif hours is not None and hours > r.spec["retention_hours"]:
            kinesis.decrease_stream_retention_period(StreamName=r.name, RetentionPeriodHours=r.spec["retention_hours"])
        kinesis.add_tags_to_stream(StreamName=r.name, Tags=dict(r.spec["tags"]))

    def _delete_kinesis_stream(self, r: Resource) -> None:
        self.aws.client("kinesis").delete_stream(StreamName=r.name, EnforceConsumerDeletion=True)

    # Secrets Manager: names, descriptions and tags; a value is never sent nor read
    def _create_secret(self, r: Resource) -> None:
        sm = self.aws.client("secretsmanager")
        answer = sm.create_secret(Name=r.name, Description=r.spec["description"], Tags=_tag_list(r.spec["tags"]))
        self.state.secret_arns[r.name] = answer["ARN"]

    def _update_secret(self, r: Resource) -> None:
        sm = self.aws.client("secretsmanager")
        answer = sm.update_secret(SecretId=r.name, Description=r.spec["description"])
        sm.tag_resource(SecretId=r.name, Tags=_tag_list(r.spec["tags"]))
        self.state.secret_arns[r.name] = answer["ARN"]

    def _delete_secret(self, r: Resource) -> None:
        self.aws.client("secretsmanager").delete_secret(SecretId=r.name, RecoveryWindowInDays=SECRET_RECOVERY_DAYS)

    # IAM
    def _create_iam_role(self, r: Resource) -> None:
        self.aws.client("iam").create_role(
            RoleName=r.name,
            Path=r.spec["path"],
            AssumeRolePolicyDocument=json.dumps(r.spec["assume_role_policy"]),
            Description=r.spec["description"],
            Tags=_tag_list(r.spec["tags"]),
        )

    def _update_iam_role(self, r: Resource) -> None:
        iam = self.aws.client("iam")
        current = iam.get_role(RoleName=r.name)["Role"]
        if current.get("Path") != r.spec["path"]:
            raise RunError(
                f"role {r.name} exists at path {current.get('Path')}, not {r.spec['path']}: "
                "it is not this environment's; rename or delete it"
            )
        iam.update_assume_role_policy(RoleName=r.name, PolicyDocument=json.dumps(r.spec["assume_role_policy"]))
        iam.update_role(RoleName=r.name, Description=r.spec["description"])
        iam.tag_role(RoleName=r.name, Tags=_tag_list(r.spec["tags"]))

    def _delete_iam_role(self, r: Resource) -> None:
        iam = self.aws.client("iam")
        for name in iam.list_role_policies(RoleName=r.name).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=r.name, PolicyName=name)
        for attached in iam.list_attached_role_policies(RoleName=r.name).get("AttachedPolicies", []):
            iam.detach_role_policy(RoleName=r.name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=r.name)

    def _create_iam_role_policy(self, r: Resource) -> None:
        unresolved = [x for s in r.spec["document"]["Statement"] for x in s["Resource"] if secret_of_ref(x)]
        if unresolved:
            raise RunError(f"the ARN of {', '.join(unresolved)} is not known (the secret was not created)")
        role, _, name = r.name.partition("/")
        self.aws.client("iam").put_role_policy(
            RoleName=role, PolicyName=name, PolicyDocument=json.dumps(r.spec["document"])
        )

    _update_iam_role_policy = _create_iam_role_policy

    def _delete_iam_role_policy(self, r: Resource) -> None:
        role, _, name = r.name.partition("/")
        iam = self.aws.client("iam")
        try:
            iam.delete_role_policy(RoleName=role, PolicyName=name)
        except Exception as exc:  # gone with its role earlier in the same destroy
            if "NoSuchEntity" not in str(exc):
                raise

    # CloudWatch
    def _create_alarm(self, r: Resource) -> None:
        s = r.spec
        self.aws.client("cloudwatch").put_metric_alarm(
            AlarmName=r.name,
            AlarmDescription=s["description"],
            Namespace=s["namespace"],
            MetricName=s["metric"],
            Dimensions=[{"Name": k, "Value": v} for k, v in s["dimensions"].items()],
            Statistic=s["statistic"],
            Period=s["period"],
            EvaluationPeriods=s["evaluation_periods"],
            Threshold=s["threshold"],
            ComparisonOperator=s["comparison"],
            TreatMissingData=s["treat_missing_data"],
            AlarmActions=list(s["actions"]),
            Tags=_tag_list(s["tags"]),
        )

    def _update_alarm(self, r: Resource) -> None:
        self._create_alarm(r)  # PutMetricAlarm replaces the alarm's settings
        cloudwatch = self.aws.client("cloudwatch")
        arn = cloudwatch.describe_alarms(AlarmNames=[r.name])["MetricAlarms"][0]["AlarmArn"]
        cloudwatch.tag_resource(ResourceARN=arn, Tags=_tag_list(r.spec["tags"]))

    def _delete_alarm(self, r: Resource) -> None:
        self.aws.client("cloudwatch").delete_alarms(AlarmNames=[r.name])


def _tag_list(tagset: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tagset.items())]

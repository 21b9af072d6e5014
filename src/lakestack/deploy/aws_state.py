"""What exists in AWS, read through boto3 into the shapes of `resources.py` specs.

`read(kind, name)` gives the spec of one resource as it is (None when it does not exist); `owned(kind)`
names the resources of a kind tagged as this project's and environment's (what `destroy` removes
and what a plan deletes once the project no longer asks for them). Secret values are never read:
`DescribeSecret` and `ListSecrets` only.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from lakestack.deploy.resources import TAG_ENV, TAG_PROJECT, role_path

log = logging.getLogger(__name__)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _ours(tagset: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tagset.items() if k.startswith("lakestack:")}


def _tag_list(items: list[dict[str, str]] | None) -> dict[str, str]:
    return _ours({t["Key"]: t["Value"] for t in items or []})


def _document(value: Any) -> Any:
    """An IAM policy document as AWS returns it (a dict, or URL-encoded JSON)."""
    return json.loads(unquote(value)) if isinstance(value, str) else value


class AwsState:
    """Reads resources of one account and region; `clients(service)` gives a boto3 client."""

    def __init__(self, client: Callable[[str], Any], project: str, environment: str) -> None:
        self.client, self.project, self.environment = client, project, environment
        self.secret_arns: dict[str, str] = {}  # secret id -> ARN, of the secrets read so far

    def _mine(self, tagset: dict[str, str]) -> bool:
        return tagset.get(TAG_PROJECT) == self.project and tagset.get(TAG_ENV) == self.environment

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        reader: Callable[[str], dict[str, Any] | None] = getattr(self, f"_read_{kind}")
        return reader(name)

    def owned(self, kind: str) -> list[str]:
        finder: Callable[[], list[str]] = getattr(self, f"_owned_{kind}")
        return sorted(finder())

    # -- S3 ------------------------------------------------------------------------------------
    def _read_s3_bucket(self, name: str) -> dict[str, Any] | None:
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=name)
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return None
            raise
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status", "Disabled")
        encryption = self._optional(lambda: s3.get_bucket_encryption(Bucket=name))
        rules = (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        sse = rules[0].get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") if rules else None
        block = self._optional(lambda: s3.get_public_access_block(Bucket=name))
        lifecycle = self._optional(lambda: s3.get_bucket_lifecycle_configuration(Bucket=name))
        tagging = self._optional(lambda: s3.get_bucket_tagging(Bucket=name))
        return {
            "versioning": versioning,
            "encryption": sse,
            "public_access_block": (block or {}).get("PublicAccessBlockConfiguration"),
            "lifecycle": [_rule_from_aws(r) for r in (lifecycle or {}).get("Rules", [])],
            "tags": _tag_list((tagging or {}).get("TagSet")),
        }

    @staticmethod
    def _optional(call: Callable[[], Any]) -> Any:
        """A bucket setting that may not be set: S3 answers 'not found' for it."""
        try:
            return call()
        except Exception as exc:
            if "NotFound" in _code(exc) or _code(exc).startswith("NoSuch"):
                return None
            raise

    def _owned_s3_bucket(self) -> list[str]:
        s3 = self.client("s3")
        out = []
        for bucket in s3.list_buckets().get("Buckets", []):
            try:
                tagging = self._optional(functools.partial(s3.get_bucket_tagging, Bucket=bucket["Name"]))
            except Exception as exc:  # another region's bucket, or one we may not read: not ours to delete
                if not _code(exc):
                    raise
                log.debug("bucket %s: tags not readable (%s); not considered", bucket["Name"], _code(exc))
                continue
            if self._mine(_tag_list((tagging or {}).get("TagSet"))):
                out.append(bucket["Name"])
        return out

    # -- Glue ----------------------------------------------------------------------------------
    def _read_glue_database(self, name: str) -> dict[str, Any] | None:
        try:
            db = self.client("glue").get_database(Name=name)["Database"]
        except Exception as exc:
            if _code(exc) == "EntityNotFoundException":
                return None
            raise
        spec = {"description": db.get("Description", ""), "parameters": _ours(db.get("Parameters") or {})}
        if db.get("LocationUri"):
            spec["location"] = db["LocationUri"]
        return spec

    def _owned_glue_database(self) -> list[str]:
        pages = self.client("glue").get_paginator("get_databases").paginate()
        return [d["Name"] for page in pages for d in page["DatabaseList"] if self._mine(d.get("Parameters") or {})]

    # -- Kinesis -------------------------------------------------------------------------------
    def _read_kinesis_stream(self, name: str) -> dict[str, Any] | None:
        kinesis = self.client("kinesis")
        try:
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise
        if summary.get("StreamStatus") == "DELETING":
            return None
        listed = kinesis.list_tags_for_stream(StreamName=name).get("Tags", [])
        return {
            "shard_count": summary.get("OpenShardCount"),
            "retention_hours": summary.get("RetentionPeriodHours"),
            "tags": _tag_list(listed),
        }

    def _owned_kinesis_stream(self) -> list[str]:
        kinesis = self.client("kinesis")
        names: list[str] = []
        page = kinesis.list_streams()
        names += page.get("StreamNames", [])
        while page.get("HasMoreStreams"):
            page = kinesis.list_streams(ExclusiveStartStreamName=names[-1])
            names += page.get("StreamNames", [])
        out = []
        for name in names:
            if self._mine(_tag_list(kinesis.list_tags_for_stream(StreamName=name).get("Tags"))):
                out.append(name)
        return out

    # -- Secrets Manager (names, descriptions and tags only) -----------------------------------
    def _read_secret(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.client("secretsmanager").describe_secret(SecretId=name)
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise
        if found.get("DeletedDate"):  # scheduled for deletion: gone as far as lakestack is concerned
            return None
        self.secret_arns[name] = found["ARN"]
        return {"description": found.get("Description", ""), "tags": _tag_list(found.get("Tags"))}

    def _owned_secret(self) -> list[str]:
        pages = self.client("secretsmanager").get_paginator("list_secrets").paginate()
        out = []
        for page in pages:
            for secret in page.get("SecretList", []):
                if not secret.get("DeletedDate") and self._mine(_tag_list(secret.get("Tags"))):
                    self.secret_arns[secret["Name"]] = secret["ARN"]
                    out.append(secret["Name"])
        return out

    # -- IAM -----------------------------------------------------------------------------------
    def _read_iam_role(self, name: str) -> dict[str, Any] | None:
        iam = self.client("iam")
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except Exception as exc:
            if _code(exc) == "NoSuchEntity":
                return None
            raise
        listed = iam.list_role_tags(RoleName=name).get("Tags", [])
        return {
            "path": role.get("Path", "/"),
            "assume_role_policy": _document(role.get("AssumeRolePolicyDocument")),
            "description": role.get("Description", ""),
            "tags": _tag_list(listed),
        }

    def _read_iam_role_policy(self, name: str) -> dict[str, Any] | None:
        role, _, policy = name.partition("/")
        try:
            found = self.client("iam").get_role_policy(RoleName=role, PolicyName=policy)
        except Exception as exc:
            if _code(exc) == "NoSuchEntity":
                return None
            raise
        return {"role": role, "document": _document(found["PolicyDocument"])}

    def _owned_iam_role(self) -> list[str]:
        path = role_path(self.project, self.environment)
        pages = self.client("iam").get_paginator("list_roles").paginate(PathPrefix=path)
        return [r["RoleName"] for page in pages for r in page["Roles"] if r.get("Path") == path]

    def _owned_iam_role_policy(self) -> list[str]:
        iam = self.client("iam")
        out = []
        for role in self._owned_iam_role():
            for page in iam.get_paginator("list_role_policies").paginate(RoleName=role):
                out += [f"{role}/{p}" for p in page["PolicyNames"]]
        return out

    # -- CloudWatch ----------------------------------------------------------------------------
    def _read_alarm(self, name: str) -> dict[str, Any] | None:
        cloudwatch = self.client("cloudwatch")
        found = cloudwatch.describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
        if not found:
            return None
        a = found[0]
        listed = cloudwatch.list_tags_for_resource(ResourceARN=a["AlarmArn"]).get("Tags", [])
        return {
            "description": a.get("AlarmDescription", ""),
            "namespace": a.get("Namespace"),
            "metric": a.get("MetricName"),
            "dimensions": {d["Name"]: d["Value"] for d in a.get("Dimensions", [])},
            "statistic": a.get("Statistic"),
            "period": a.get("Period"),
            "evaluation_periods": a.get("EvaluationPeriods"),
            "threshold": float(a.get("Threshold", 0)),
            "comparison": a.get("ComparisonOperator"),
            "treat_missing_data": a.get("TreatMissingData", "missing"),
            "actions": sorted(a.get("AlarmActions", [])),
            "tags": _tag_list(listed),
        }

    def _owned_alarm(self) -> list[str]:
        from lakestack.deploy.resources import base_name

        prefix = base_name(self.project, self.environment) + "-"
        pages = self.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix)
        return [a["AlarmName"] for page in pages for a in page.get("MetricAlarms", [])]


def _rule_from_aws(rule: dict[str, Any]) -> dict[str, Any]:
    """A lifecycle rule as S3 gives it, in the shape of `resources._lifecycle`."""
    prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
    out: dict[str, Any] = {"id": rule.get("ID", ""), "prefix": prefix}
    if rule.get("Status") != "Enabled":
        out["status"] = rule.get("Status")
    if "Days" in (rule.get("Expiration") or {}):
        out["expiration_days"] = rule["Expiration"]["Days"]
    if rule.get("NoncurrentVersionExpiration"):
        out["noncurrent_expiration_days"] = rule["NoncurrentVersionExpiration"].get("NoncurrentDays")
    if rule.get("AbortIncompleteMultipartUpload"):
        out["abort_upload_days"] = rule["AbortIncompleteMultipartUpload"].get("DaysAfterInitiation")
    transitions = rule.get("Transitions") or []
    if transitions:
        out["transition_days"] = transitions[0].get("Days")
        out["storage_class"] = transitions[0].get("StorageClass")
    return out


def rule_to_aws(rule: dict[str, Any]) -> dict[str, Any]:
    """One rule of `resources._lifecycle` as `PutBucketLifecycleConfiguration` takes it."""
    out: dict[str, Any] = {"ID": rule["id"], "Filter": {"Prefix": rule["prefix"]}, "Status": "Enabled"}
    if "expiration_days" in rule:
        out["Expiration"] = {"Days": rule["expiration_days"]}
    if "noncurrent_expiration_days" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["noncurrent_expiration_days"]}
    if "abort_upload_days" in rule:
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": rule["abort_upload_days"]}
    if "transition_days" in rule:
        out["Transitions"] = [{"Days": rule["transition_days"], "StorageClass": rule["storage_class"]}]
    return out

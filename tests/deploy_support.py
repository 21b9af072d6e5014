"""A project with an AWS `prod` environment for the deploy tests: an S3 warehouse and landing
bucket, a Glue catalog, a Kinesis source, Secrets Manager secrets, an SNS alert sink and SLAs."""

from __future__ import annotations

from pathlib import Path

# Values given to the secrets the project references: none may appear in a plan, HCL or output.
SENTINELS = {
    "ANALYTICS_DB_URL": "postgresql://app:Sentinel-PW-3f9a@db.internal:5432/analytics",
    "S3_KEY_ID": "AKIA-SENTINEL-KEY-77c1",
    "S3_SECRET_KEY": "sentinel-secret-key-5d2e",
    "SLACK_HOOK": "https://hooks.slack.test/SENTINEL-HOOK-a1b2",
}
TOPIC = "arn:aws:sns:us-east-1:123456789012:shop-alerts"
WAREHOUSE_BUCKET, LANDING_BUCKET = "shop-lake-prod", "shop-landing-prod"
STREAM = "shop-clicks-prod"


def write_project(root: Path, endpoint: str = "http://127.0.0.1:1", name: str = "shop") -> Path:
    """Write the project into `root` (created); `endpoint` is the AWS endpoint (a moto server).
    Bucket, stream and secret names start with `name` (the module constants are those of `shop`)."""
    root.mkdir(parents=True, exist_ok=True)
    lake, landing, stream = (x.replace("shop", name, 1) for x in (WAREHOUSE_BUCKET, LANDING_BUCKET, STREAM))
    (root / "lakestack.yaml").write_text(
        f"""name: {name}
default_environment: dev
environments:
  dev:
    warehouse: ./warehouse
  prod:
    warehouse: s3://{lake}/warehouse
    catalog: {{type: glue, uri: '{endpoint}'}}
    s3:
      endpoint_url: '{endpoint}'
      region: us-east-1
      access_key_id: {{secret: S3_KEY_ID}}
      secret_access_key: {{secret: S3_SECRET_KEY}}
    secrets: {{provider: aws-secretsmanager, prefix: {name}/prod/, region: us-east-1, endpoint_url: '{endpoint}'}}
    metrics: {{cloudwatch: {{namespace: Shop}}}}
    alerts:
      sinks:
        pager: {{sns: {{topic_arn: '{TOPIC}'}}}}
        chat: {{webhook: {{url: {{secret: SLACK_HOOK}}, format: slack}}}}
sources:
  orders: {{kind: files, landing: s3://{landing}/orders, contract: orders}}
  refunds: {{kind: files, landing: s3://{landing}/refunds, contract: refunds}}
  clicks: {{kind: kinesis, contract: clicks, kinesis: {{stream_name: {stream}}}}}
datasets:
  orders: {{layer: silver}}
publish:
  analytics:
    url: {{secret: ANALYTICS_DB_URL}}
    role: business
    datasets: {{gold.daily_orders: {{}}}}
""",
        encoding="utf-8",
    )
    (root / "models" / "gold").mkdir(parents=True, exist_ok=True)
    (root / "models" / "gold" / "daily_orders.sql").write_text("SELECT 1 AS n\n", encoding="utf-8")
    (root / "slas.yaml").write_text(
        """evaluate_every: 5m
slas:
  orders_fresh: {kind: freshness, dataset: silver.orders, max_age: 1h}
  runs_succeed: {kind: availability, job: run, min_success: 99%}
""",
        encoding="utf-8",
    )
    return root


# -- HCL back into resources -------------------------------------------------------------------
def _unquote(text: str) -> str:
    """An HCL string as python-hcl2 (>= 7) gives it, quotes kept, as its value; an expression
    (`${aws_iam_role.x.id}`) as the expression inside."""
    import json

    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return str(json.loads(text)).replace("$${", "${").replace("%%{", "%{")
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


def _clean(value: object) -> object:
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def hcl_blocks(folder: Path) -> dict[str, dict[str, dict[str, dict[str, object]]]]:
    """`{"resource"|"data": {type: {name: body}}}` of every .tf file in `folder`, parsed with python-hcl2."""
    import hcl2

    out: dict[str, dict[str, dict[str, dict[str, object]]]] = {"resource": {}, "data": {}, "variable": {}}
    for path in sorted(folder.glob("*.tf")):
        with path.open() as f:
            parsed = _clean(hcl2.load(f))
        assert isinstance(parsed, dict)
        for section in ("resource", "data", "variable"):
            for entry in parsed.get(section, []):
                for kind, named in entry.items():
                    if section == "variable":
                        out[section][kind] = named
                        continue
                    for name, body in named.items():
                        out[section].setdefault(kind, {})[name] = body
    return out


def _one(body: dict[str, object], key: str) -> dict[str, object]:
    found = body[key]
    assert isinstance(found, list) and len(found) == 1, (key, found)
    return found[0]  # type: ignore[no-any-return]


def _document(data: dict[str, object], secrets: dict[str, str]) -> dict[str, object]:
    """An `aws_iam_policy_document` data block as the IAM JSON document it stands for."""
    statements = []
    for s in data["statement"]:  # type: ignore[attr-defined]
        out: dict[str, object] = {}
        if "sid" in s:
            out["Sid"] = s["sid"]
        out["Effect"] = s["effect"]
        out["Action"] = s["actions"]
        for p in s.get("principals", []):
            out.setdefault("Principal", {})[p["type"]] = p["identifiers"]  # type: ignore[index]
        if "resources" in s:
            out["Resource"] = [_secret_ref(r, secrets) for r in s["resources"]]
        for c in s.get("condition", []):
            out.setdefault("Condition", {}).setdefault(c["test"], {})[c["variable"]] = c["values"]  # type: ignore[union-attr]
        statements.append(out)
    return {"Version": "2012-10-17", "Statement": statements}


def _secret_ref(value: str, secrets: dict[str, str]) -> str:
    if value.startswith("aws_secretsmanager_secret.") and value.endswith(".arn"):
        return "${secret_arn:" + secrets[value.split(".")[1]] + "}"
    return value


def resources_from_hcl(folder: Path, account: str, region: str) -> dict[str, dict[str, object]]:
    """The resources the HCL in `folder` declares, as `{kind:name: spec}` in lakestack's spec shapes,
    with `var.account_id` and `var.region` replaced by `account` and `region`."""
    import json

    tf = hcl_blocks(folder)
    text = json.dumps(tf).replace("${var.account_id}", account).replace("${var.region}", region)
    tf = json.loads(text)
    res, data = tf["resource"], tf["data"]
    out: dict[str, dict[str, object]] = {}
    for t, b in res.get("aws_s3_bucket", {}).items():
        pab = res["aws_s3_bucket_public_access_block"][t]
        rules = []
        for rule in res["aws_s3_bucket_lifecycle_configuration"][t]["rule"]:
            r: dict[str, object] = {"id": rule["id"], "prefix": _one(rule, "filter")["prefix"]}
            if "expiration" in rule:
                r["expiration_days"] = _one(rule, "expiration")["days"]
            if "noncurrent_version_expiration" in rule:
                r["noncurrent_expiration_days"] = _one(rule, "noncurrent_version_expiration")["noncurrent_days"]
            if "abort_incomplete_multipart_upload" in rule:
                r["abort_upload_days"] = _one(rule, "abort_incomplete_multipart_upload")["days_after_initiation"]
            if "transition" in rule:
                r["transition_days"] = _one(rule, "transition")["days"]
                r["storage_class"] = _one(rule, "transition")["storage_class"]
            rules.append(r)
        sse = _one(
            _one(res["aws_s3_bucket_server_side_encryption_configuration"][t], "rule"),
            "apply_server_side_encryption_by_default",
        )
        out[f"s3_bucket:{b['bucket']}"] = {
            "versioning": _one(res["aws_s3_bucket_versioning"][t], "versioning_configuration")["status"],
            "encryption": sse["sse_algorithm"],
            "public_access_block": {
                "BlockPublicAcls": pab["block_public_acls"],
                "IgnorePublicAcls": pab["ignore_public_acls"],
                "BlockPublicPolicy": pab["block_public_policy"],
                "RestrictPublicBuckets": pab["restrict_public_buckets"],
            },
            "lifecycle": rules,
            "tags": b["tags"],
        }
    for b in res.get("aws_glue_catalog_database", {}).values():
        spec: dict[str, object] = {"description": b["description"], "parameters": b["parameters"]}
        if "location_uri" in b:
            spec["location"] = b["location_uri"]
        out[f"glue_database:{b['name']}"] = spec
    for b in res.get("aws_kinesis_stream", {}).values():
        out[f"kinesis_stream:{b['name']}"] = {
            "shard_count": b["shard_count"],
            "retention_hours": b["retention_period"],
            "tags": b["tags"],
        }
    secrets = {t: b["name"] for t, b in res.get("aws_secretsmanager_secret", {}).items()}
    for b in res.get("aws_secretsmanager_secret", {}).values():
        out[f"secret:{b['name']}"] = {"description": b["description"], "tags": b["tags"]}
    roles = {}
    for t, b in res.get("aws_iam_role", {}).items():
        roles[t] = b["name"]
        trust = data["aws_iam_policy_document"][b["assume_role_policy"].split(".")[2]]
        out[f"iam_role:{b['name']}"] = {
            "path": b["path"],
            "assume_role_policy": _document(trust, secrets),
            "description": b["description"],
            "tags": b["tags"],
        }
    for b in res.get("aws_iam_role_policy", {}).values():
        role = roles[b["role"].split(".")[1]]
        doc = data["aws_iam_policy_document"][b["policy"].split(".")[2]]
        out[f"iam_role_policy:{role}/{b['name']}"] = {"role": role, "document": _document(doc, secrets)}
    for b in res.get("aws_cloudwatch_metric_alarm", {}).values():
        out[f"alarm:{b['alarm_name']}"] = {
            "description": b["alarm_description"],
            "namespace": b["namespace"],
            "metric": b["metric_name"],
            "dimensions": b["dimensions"],
            "statistic": b["statistic"],
            "period": b["period"],
            "evaluation_periods": b["evaluation_periods"],
            "threshold": b["threshold"],
            "comparison": b["comparison_operator"],
            "treat_missing_data": b["treat_missing_data"],
            "actions": b["alarm_actions"],
            "tags": b["tags"],
        }
    return out


def hcl_policies(folder: Path) -> dict[str, dict[str, object]]:
    """Every `aws_iam_policy_document` in the HCL of `folder`, as IAM JSON (secret ARNs as references)."""
    tf = hcl_blocks(folder)
    secrets = {t: str(b["name"]) for t, b in tf["resource"].get("aws_secretsmanager_secret", {}).items()}
    return {name: _document(doc, secrets) for name, doc in tf["data"].get("aws_iam_policy_document", {}).items()}

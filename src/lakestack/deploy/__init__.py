"""Provisioning an environment's cloud resources: `lakestack deploy aws` and `lakestack deploy terraform`.

- `resources.py`: the resource model derived from the project and one environment (pure values:
  S3 buckets, Glue databases, Kinesis streams, Secrets Manager secret names, CloudWatch alarms, an
  IAM role and its policies scoped to exact prefixes and ARNs) and the wildcard check every policy passes.
- `aws.py`: the plan (a diff against what exists, read through boto3), apply and destroy.
- `terraform.py`: the same resources written as HCL.

Secret values are never read, planned, written or printed here: only their names (ADR 28).
"""

from __future__ import annotations

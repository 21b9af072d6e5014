"""Shared catalogs other than SQL: AWS Glue (pyiceberg GlueCatalog) against moto's Glue and S3, and
the errors of Glue, REST and S3 endpoints that do not answer."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from aws_support import moto_server  # noqa: F401  (fixture)
from lakestack import Lake
from lakestack.errors import ConfigError, StorageError

KEY, SECRET = "GLUE_TEST_KEY_ID", "GLUE_TEST_SECRET"
ORDERS = "order_id,qty,price,currency,order_ts,email\nORD-0001,2,9.99,USD,2026-01-01 10:00:00,\nORD-2,1,1,USD,,\n"


@pytest.fixture(scope="module")
def aws(moto_server: str) -> dict[str, Any]:  # noqa: F811
    import boto3

    os.environ[KEY], os.environ[SECRET] = "testing", "testing"
    bucket = f"glue-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return {
        "endpoint": moto_server,
        "bucket": bucket,
        "glue": boto3.client("glue", region_name="us-east-1", endpoint_url=moto_server),
    }


def _write(project: Path, catalog: str, endpoint: str, bucket: str) -> None:
    text = (project / "lakestack.yaml").read_text()
    env = (
        "  dev:\n"
        f"    warehouse: s3://{bucket}/warehouse\n"
        f"    catalog: {catalog}\n"
        f"    s3: {{endpoint_url: '{endpoint}', region: us-east-1, "
        f"access_key_id: {{secret: {KEY}}}, secret_access_key: {{secret: {SECRET}}}}}\n"
    )
    start = text.index("  dev:\n")
    end = text.index("sources:")
    (project / "lakestack.yaml").write_text(text[:start] + env + text[end:])


def test_ingest_with_a_glue_catalog(project: Path, aws: dict[str, Any]) -> None:
    _write(project, f"{{type: glue, uri: '{aws['endpoint']}'}}", aws["endpoint"], aws["bucket"])
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(ORDERS)
    report = Lake.open(project).ingest()
    assert (report.landed, report.quarantined) == (1, 1)

    # the tables are Glue tables whose metadata lives in the S3 warehouse
    table = aws["glue"].get_table(DatabaseName="bronze", Name="orders")["Table"]
    location = table["Parameters"]["metadata_location"]
    assert location.startswith(f"s3://{aws['bucket']}/warehouse/")
    # a second process (a fresh Lake) sees the same catalog and skips the file
    again = Lake.open(project).ingest()
    assert [f.status for s in again.sources for f in s.files] == ["skipped"]
    lake = Lake.open(project)
    assert lake.query("SELECT order_id FROM bronze.orders").to_pylist() == [{"order_id": "ORD-0001"}]


def test_an_unreachable_glue_endpoint_is_one_line(project: Path, aws: dict[str, Any]) -> None:
    _write(project, "{type: glue, uri: 'http://127.0.0.1:9'}", aws["endpoint"], aws["bucket"])
    with pytest.raises(StorageError) as caught:
        Lake.open(project).warehouse  # noqa: B018
    message = str(caught.value)
    assert "\n" not in message and "AWS Glue catalog at http://127.0.0.1:9" in message
    assert "testing" not in message


def test_an_unreachable_rest_catalog_is_one_line(project: Path, aws: dict[str, Any]) -> None:
    _write(
        project, "{type: rest, uri: 'http://user:pw@127.0.0.1:9/api/catalog?token=abc'}", aws["endpoint"], aws["bucket"]
    )
    with pytest.raises(StorageError) as caught:
        Lake.open(project).warehouse  # noqa: B018
    message = str(caught.value)
    assert "\n" not in message and "Iceberg REST catalog at http://127.0.0.1:9/api/catalog" in message
    assert "pw" not in message and "abc" not in message and "user" not in message


def test_a_rest_catalog_needs_its_url(project: Path, aws: dict[str, Any]) -> None:
    _write(project, "{type: rest}", aws["endpoint"], aws["bucket"])
    with pytest.raises(ConfigError, match="REST catalog needs its URL"):
        Lake.open(project).warehouse  # noqa: B018


def test_cli_exit_3_for_an_unreachable_s3_endpoint(project: Path) -> None:
    _write(project, "{type: sql}", "http://127.0.0.1:9", "nowhere-bucket")
    env = {**os.environ, KEY: "AKIAEXAMPLEKEY", SECRET: "a-secret-that-must-not-leak"}
    done = subprocess.run(
        [sys.executable, "-m", "lakestack", "ingest"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "a-secret-that-must-not-leak" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if "cannot reach" in line]
    assert len(lines) == 1 and "s3://nowhere-bucket/warehouse" in lines[0] and "127.0.0.1:9" in lines[0]


def test_a_missing_warehouse_bucket_is_one_line(project: Path, aws: dict[str, Any]) -> None:
    _write(project, "{type: sql}", aws["endpoint"], "no-such-bucket-here")
    with pytest.raises(StorageError) as caught:
        Lake.open(project).warehouse  # noqa: B018
    message = str(caught.value)
    assert "\n" not in message and "'no-such-bucket-here'" in message and "does not exist" in message

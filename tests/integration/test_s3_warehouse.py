"""Northwind end to end on S3: landing files dropped under an S3 prefix, the warehouse an S3 prefix,
both served by a moto server on 127.0.0.1 and reached by real boto3/pyarrow S3 clients."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from aws_support import moto_server  # noqa: F401  (fixture)
from lakestack import Lake
from lakestack.errors import LakestackError, StorageError, UnsafePathError
from lakestack.examples.northwind import generate_northwind
from lakestack.pipeline.scaffold import copy_example

BUCKET = "nw-lake"
KEY, SECRET = "S3_TEST_KEY_ID", "S3_TEST_SECRET"


def _s3_project(root: Path, endpoint: str, bucket: str = BUCKET) -> None:
    """Point the copied Northwind project at S3: an `s3` environment, every landing an S3 prefix."""
    text = (root / "lakestack.yaml").read_text()
    text = text.replace("default_environment: dev", "default_environment: cloud")
    env = (
        "environments:\n"
        "  cloud:\n"
        f"    warehouse: s3://{bucket}/warehouse\n"
        "    catalog: {type: sql, uri: 'sqlite:///.lakestack/catalog.db'}\n"
        f"    s3: {{endpoint_url: '{endpoint}', region: us-east-1, "
        f"access_key_id: {{secret: {KEY}}}, secret_access_key: {{secret: {SECRET}}}}}\n"
    )
    text = text.replace("environments:\n", env, 1)
    for source in ("orders", "customers", "products", "fx_rates", "clickstream"):
        text = text.replace(f"landing: landing/{source}", f"landing: s3://{bucket}/landing/{source}")
    (root / "lakestack.yaml").write_text(text)


def _upload(s3: Any, root: Path, bucket: str) -> None:
    for path in sorted((root / "landing").rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes())


@pytest.fixture(scope="module")
def s3(moto_server: str) -> Any:  # noqa: F811
    import boto3

    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    client.create_bucket(Bucket=BUCKET)
    os.environ[KEY], os.environ[SECRET] = "testing", "testing"
    return client


@pytest.fixture(scope="module")
def northwind(tmp_path_factory: pytest.TempPathFactory, s3: Any, moto_server: str) -> tuple[Path, Any]:  # noqa: F811
    example = (Path(__file__).parents[2] / "examples/northwind/lakestack.yaml").read_text()
    assert "default_environment" in example, "the test adds its S3 environment next to the example's default"
    root = tmp_path_factory.mktemp("nw_s3") / "northwind"
    copy_example("northwind", root)
    report = generate_northwind(root, orders=1_000, seed=11, days=3)
    _upload(s3, root, BUCKET)
    import shutil

    shutil.rmtree(root / "landing")  # nothing local: every file comes from S3
    _s3_project(root, moto_server)
    return root, report


def test_northwind_on_s3_end_to_end(northwind: tuple[Path, Any], s3: Any) -> None:
    root, report = northwind
    lake = Lake.open(root)
    result = lake.ingest()
    by_source = {s.source: s for s in result.sources}
    for source, rows in report.rows.items():
        got = by_source[source]
        assert got.rows_in == rows, source
        assert got.quarantined == report.defects[source]["invalid_rows"], source
        assert got.count("rejected") == report.defects[source]["malformed_files"], source
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="warehouse/")["Contents"]]
    assert any(k.endswith(".parquet") for k in keys) and any(k.endswith(".metadata.json") for k in keys)
    assert not (root / "warehouse").exists()

    # a quarantined row names its S3 file (relative to the prefix) and its line
    bad = lake.read("quarantine.orders").to_pylist()
    assert bad and all(r["_source_file"] and r["_source_file"].startswith("orders_") for r in bad)
    assert all(r["_source_line"] is not None for r in bad if r["_scope"] == "record")

    silver = lake.promote()
    assert all(r.changed for r in silver)
    built = lake.build()
    assert built and all(getattr(r, "published", True) for r in built)
    checks = lake.check()
    assert checks
    counted = lake.query("SELECT count(*) AS n FROM silver.orders").to_pylist()[0]["n"]
    assert counted == lake.read("silver.orders").num_rows > 0

    again = lake.ingest()  # re-ingest from S3: every file is known by content
    assert again.landed == 0 and again.quarantined == 0
    assert {f.status for s in again.sources for f in s.files} == {"skipped"}


def test_cli_query_in_a_fresh_process(northwind: tuple[Path, Any]) -> None:
    """A new process opens the sandbox before anything else touched S3: its DuckDB must still read it."""
    import subprocess
    import sys

    root, _ = northwind
    done = subprocess.run(
        [sys.executable, "-m", "lakestack", "query", "--format", "csv", "SELECT count(*) AS n FROM silver.orders"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "testing" not in done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].strip('"') == "n" and int(lines[1]) == Lake.open(root).read("silver.orders").num_rows > 0


def test_the_sandbox_reaches_no_other_s3_object(northwind: tuple[Path, Any], s3: Any) -> None:
    root, _ = northwind
    s3.put_object(Bucket=BUCKET, Key="private/secret.csv", Body=b"a\n1\n")
    lake = Lake.open(root)
    for sql in (
        f"SELECT * FROM read_csv('s3://{BUCKET}/private/secret.csv')",
        f"SELECT * FROM read_parquet('s3://{BUCKET}/warehouse/**/*.parquet')",
    ):
        with pytest.raises(LakestackError) as caught:
            lake.query(sql)
        print(type(caught.value).__name__, caught.value)
        assert caught.value.exit_code == 2


def test_a_bad_file_dropped_later_is_quarantined_with_file_and_line(northwind: tuple[Path, Any], s3: Any) -> None:
    root, _ = northwind
    lake = Lake.open(root)
    ok = lake.read("bronze.clickstream", limit=1).to_pylist()[0]["_raw"]
    body = (ok + "\n" + '{"broken": \n' + ok + "\n").encode()
    name = "late/clicks_20310101_01.ndjson"
    s3.put_object(Bucket=BUCKET, Key=f"landing/clickstream/{name}", Body=body)
    result = lake.ingest(["clickstream"])
    files = {f.name: f for s in result.sources for f in s.files}
    got = files[name]
    assert got.status == "landed" and got.quarantined == 1, got
    rows = [r for r in lake.read("quarantine.clickstream").to_pylist() if r["_source_file"] == name]
    assert [r["_source_line"] for r in rows] == [2]


def test_landing_is_confined_to_its_prefix(northwind: tuple[Path, Any], s3: Any) -> None:
    root, _ = northwind
    # a sibling prefix sharing the string prefix, and a key with a '..' segment
    s3.put_object(Bucket=BUCKET, Key="landing/fx_rates-old/fx_rates_2031-01-01.csv", Body=b"x\n")
    s3.put_object(Bucket=BUCKET, Key="landing/fx_rates/../fx_rates_2031-01-02.csv", Body=b"x\n")
    lake = Lake.open(root)
    source = lake.source("fx_rates")
    try:
        found, refused = source.discover()
        names = {c.name for c in found}
        assert not any("fx_rates-old" in n or "2031-01-01" in n for n in names)
        assert {o.name for o in refused} == {"../fx_rates_2031-01-02.csv"}
        assert "'..'" in refused[0].reason
        with pytest.raises(UnsafePathError):
            source.discover(["../fx_rates-old/fx_rates_2031-01-01.csv"])
    finally:
        source.cleanup()


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "p"
    copy_example("northwind", root)
    _s3_project(root, "http://127.0.0.1:9")  # discard port: nothing listens
    os.environ[KEY], os.environ[SECRET] = "AKIAEXAMPLEKEY", "a-secret-that-must-not-leak"
    try:
        with pytest.raises(StorageError) as caught:
            Lake.open(root).warehouse  # noqa: B018
    finally:
        os.environ[KEY], os.environ[SECRET] = "testing", "testing"
    message = str(caught.value)
    assert "\n" not in message and "127.0.0.1:9" in message and "s3://nw-lake/warehouse" in message
    assert "a-secret-that-must-not-leak" not in message and "AKIAEXAMPLEKEY" not in message


def test_a_sqlite_catalog_with_an_s3_warehouse_warns(
    northwind: tuple[Path, Any], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = northwind
    with caplog.at_level("WARNING", logger="lakestack.storage.catalog"):
        Lake.open(root).warehouse  # noqa: B018
    assert any("SQLite is for one machine" in r.getMessage() for r in caplog.records)


def test_lineage_and_status_name_the_s3_landing_prefix(northwind: tuple[Path, Any]) -> None:
    from lakestack.pipeline.dataset_io import source_url

    root, _ = northwind
    lake = Lake.open(root)
    assert source_url(lake.project, "orders") == f"s3://{BUCKET}/landing/orders"
    status = {s.source: s for s in lake.status()}
    assert status["orders"].landing == f"s3://{BUCKET}/landing/orders"
    assert status["orders"].pending_files == 0 and status["orders"].ingested_files > 0


def test_objects_already_hashed_are_not_downloaded_again(northwind: tuple[Path, Any], s3: Any) -> None:
    """The hash cache: a run over ingested objects lists them and downloads none; an object rewritten
    in place (new time) is downloaded, and its new content lands; a lost cache costs only downloads."""
    root, _ = northwind
    lake = Lake.open(root)
    lake.ingest(["fx_rates"])  # whatever is new lands, and every object's hash is cached
    cache = root / ".lakestack" / "landing" / "cloud" / "fx_rates.json"
    assert cache.is_file()

    source = lake.source("fx_rates")
    try:
        waiting, held = source.pending(lake.warehouse)
        assert waiting == [] and held > 0 and source.downloads == 0  # nothing fetched to be hashed
    finally:
        source.cleanup()
    again = lake.ingest(["fx_rates"])
    statuses = {f.status for s in again.sources for f in s.files}
    assert statuses <= {"skipped", "refused"}, statuses  # refused: an unsafe key another test dropped

    # rewrite one object in place, with different content of the same size: downloaded, and it lands
    keys = [k["Key"] for k in s3.list_objects_v2(Bucket=BUCKET, Prefix="landing/fx_rates/")["Contents"]]
    key = next(k for k in keys if "/fx_2026" in k)  # one Northwind wrote (not another test's unsafe key)
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    lines = body.decode().splitlines(keepends=True)
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join([lines[0], *reversed(lines[1:])]).encode())
    name = key.removeprefix("landing/fx_rates/")
    old_sha = json.loads(cache.read_text())["objects"][name]["sha256"]
    source = lake.source("fx_rates")
    try:
        hashes = {c.name: source._hash(c) for c in source.discover()[0]}
        assert source.downloads == 1 and hashes[name] != old_sha  # only the rewritten object
    finally:
        source.cleanup()
    landed = lake.ingest(["fx_rates"])
    assert [f.name for s in landed.sources for f in s.files if f.status == "landed"] == [name]

    cache.write_text("{not json")  # a corrupt cache: every object is downloaded and hashed again
    source = lake.source("fx_rates")
    try:
        found = source.discover()[0]
        assert {c.name: source._hash(c) for c in found} == hashes and source.downloads == len(found)
    finally:
        source.cleanup()

"""Delta tables on S3 (a moto server on 127.0.0.1, ADR 35): the Northwind pipeline with its
warehouse an S3 prefix gives the same Silver and Gold as the local Iceberg run; a second ingest
lands nothing; the tables open in plain deltalake; commits stay compare-and-swap on S3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack import Lake
from lakestack.examples.northwind import generate_northwind
from lakestack.pipeline.scaffold import copy_example

deltalake = pytest.importorskip("deltalake")
BUCKET = "nw-delta"
KEY, SECRET = "DELTA_S3_TEST_KEY_ID", "DELTA_S3_TEST_SECRET"


@pytest.fixture(scope="module")
def moto_child() -> Iterator[str]:
    """A moto server in a child process: delta-rs's S3 calls hold the GIL, so a moto server on a
    thread of this process (the `moto_server` fixture) could not answer them."""
    import subprocess
    import sys
    import time
    import urllib.request

    from serve_support import free_port

    port = free_port()
    code = "import sys; from moto.server import main; main(sys.argv[1:])"
    argv = [sys.executable, "-c", code, "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto server did not start")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _content(data: pa.Table) -> tuple[int, str]:
    columns = sorted(c for c in data.column_names if not c.startswith("_"))
    rows = sorted(tuple(str(r[c]) for c in columns) for r in data.select(columns).to_pylist())
    return len(rows), hashlib.sha256(repr((columns, rows)).encode()).hexdigest()


def _project(root: Path, endpoint: str | None) -> Path:
    copy_example("northwind", root)
    generate_northwind(root, orders=2_000, seed=7, days=5)
    if endpoint is not None:
        text = (root / "lakestack.yaml").read_text().replace("default_environment: dev", "default_environment: cloud")
        env = (
            "environments:\n"
            "  cloud:\n"
            f"    warehouse: s3://{BUCKET}/warehouse\n"
            "    format: delta\n"
            f"    s3: {{endpoint_url: '{endpoint}', region: us-east-1, "
            f"access_key_id: {{secret: {KEY}}}, secret_access_key: {{secret: {SECRET}}}}}\n"
        )
        (root / "lakestack.yaml").write_text(text.replace("environments:\n", env, 1))
    return root


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory, moto_child: str) -> Iterator[dict[str, Any]]:
    import boto3

    os.environ[KEY], os.environ[SECRET] = "testing", "testing"
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_child,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    base = tmp_path_factory.mktemp("delta-s3")
    lakes = {"iceberg": Lake.open(_project(base / "local", None)), "s3": Lake.open(_project(base / "s3", moto_child))}
    for lake in lakes.values():
        lake.run()
    yield {**lakes, "endpoint": moto_child}
    for lake in (lakes["iceberg"], lakes["s3"]):
        lake.close()


def test_silver_and_gold_on_s3_delta_equal_the_local_iceberg_run(lakes: dict[str, Any]) -> None:
    iceberg, s3 = lakes["iceberg"], lakes["s3"]
    names = [t for t in iceberg.warehouse.tables() if t.startswith(("silver.", "gold."))]
    assert names and [t for t in s3.warehouse.tables() if t.startswith(("silver.", "gold."))] == names
    for name in names:
        table = s3.warehouse.load(name)
        assert table.uri.startswith(f"s3://{BUCKET}/warehouse/"), table.uri
        assert _content(table.scan().to_arrow()) == _content(iceberg.warehouse.load(name).scan().to_arrow()), name
    sql = "SELECT currency, count(*) AS n, sum(quantity) AS q FROM silver.orders GROUP BY 1 ORDER BY 1"
    assert s3.query(sql).to_pylist() == iceberg.query(sql).to_pylist()  # DuckDB reads the S3 files (ADR 25)


def test_a_second_ingest_on_s3_lands_nothing(lakes: dict[str, Any]) -> None:
    s3 = lakes["s3"]
    again = s3.ingest()
    assert again.landed == 0 and again.quarantined == 0


def test_s3_tables_open_in_plain_deltalake_and_commit_compare_and_swap(lakes: dict[str, Any]) -> None:
    from lakestack.errors import CommitConflictError
    from lakestack.storage.delta import DeltaLakeTable
    from lakestack.storage.warehouse import replace_files

    s3 = lakes["s3"]
    table = s3.warehouse.load("silver.orders")
    plain = deltalake.DeltaTable(table.uri, storage_options=table.storage_options)
    assert _content(pa.table(plain.to_pyarrow_table())) == _content(table.scan().to_arrow())
    assert plain.history(1)[0]["lakestack.run-id"]  # the checkpoint's commit info, on S3
    stale = DeltaLakeTable(table.identifier, table.uri, table.storage_options, table.fileio)
    stale.delta = stale.at(table.version - 1)
    with pytest.raises(CommitConflictError):  # a conditional put refuses the version already written
        replace_files(stale, [], table.scan().to_arrow().slice(0, 1), run_id="late", batch_id="late")


def test_the_log_is_read_action_by_action_on_s3(lakes: dict[str, Any]) -> None:
    """What Silver's incremental read, Bronze compaction and orphan removal read (storage/delta_log.py)."""
    from lakestack.storage import delta_log
    from lakestack.storage.warehouse import files_added_after

    bronze = lakes["s3"].warehouse.load("bronze.orders")
    first = delta_log.commit(bronze, 1)
    assert first is not None and first.added and not first.rewritten
    assert delta_log.referenced_files(bronze, bronze.version) is not None
    paths, current = files_added_after(bronze, 0)
    assert current == bronze.version and sorted(paths) == sorted(bronze.file_paths())


def test_an_erasure_on_s3_rewrites_the_subjects_files_and_cuts_the_log(lakes: dict[str, Any]) -> None:
    """`lakestack erase` on an S3 Delta warehouse (storage/delta_erase.py, ADR 38): the subject's
    rows are gone for plain deltalake, the old files are deleted from the bucket and the versions
    before the erasure cannot be read (their log files are deleted too). Runs last: it changes the lake."""
    import boto3

    s3 = lakes["s3"]
    customers = s3.warehouse.load("silver.customers").scan().to_arrow()
    subject = customers["customer_id"][0].as_py()
    result = s3.erase(f"customer_id={subject}")
    erased = {f.dataset: f for f in result.datasets if f.rows}
    assert {"bronze.customers", "silver.customers", "silver.orders"} <= set(erased)
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=lakes["endpoint"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    listed = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="warehouse/")
    keys = {f"s3://{BUCKET}/{o['Key']}" for page in listed for o in page.get("Contents", [])}
    for name, found in erased.items():
        table = s3.warehouse.load(name)
        plain = deltalake.DeltaTable(table.uri, storage_options=table.storage_options)
        rows = pa.table(plain.to_pyarrow_table())
        if "customer_id" in rows.column_names:
            assert subject not in rows["customer_id"].to_pylist(), name
        else:  # quarantine: the subject is in the record's raw text
            text = [str(v) for c in rows.columns if pa.types.is_string(c.type) for v in c.to_pylist()]
            assert not any(subject in v for v in text), name
        assert found.files_rewritten and found.old_files_removed >= found.files_rewritten, name
        assert set(table.file_paths()) <= keys, name
        assert found.snapshot_before not in {s.snapshot_id for s in table.metadata.snapshots}, name
        with pytest.raises(Exception, match=r"log segment|not found|version"):  # delta-rs's own error types
            deltalake.DeltaTable(table.uri, version=found.snapshot_before, storage_options=table.storage_options)

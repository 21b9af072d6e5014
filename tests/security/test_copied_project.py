"""A project copied (or moved) together with its catalog must not write into the original lake: the
SQLite catalog stores absolute table locations, so before this check `ingest` in a `cp -a` copy added
files under the original's warehouse. Now every command that opens the lake refuses (exit 2) and says
how to fix it; the documented fix (a fresh lake for the copy) works; a moved project whose old path
is a link to the new one keeps working."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ORDERS_HEADER
from security_support import lake_fingerprint, run_capped

Land = Callable[[str, str, "str | bytes"], Path]
ROW = "ORD-{:04d},2,9.99,USD,2026-01-01 10:00:00,a@b.io\n"


@pytest.fixture
def ingested(project: Path, land: Land) -> Path:
    land("orders", "orders_20260101.csv", ORDERS_HEADER + ROW.format(1) + ROW.format(2))
    out = run_capped("ingest", "--json", cwd=project)
    assert out.code == 0, out.output
    assert json.loads(out.stdout)["landed"] == 2
    return project


def _refused(copy: Path, *args: str, original: Path) -> None:
    out = run_capped(*args, cwd=copy, memory_mb=4096)  # address space for DuckDB threads; memory is not tested here
    assert out.code == 2, out.output
    assert "copied or moved" in out.stderr and str(original / "warehouse") in out.stderr, out.stderr
    assert "delete its .lakestack/ and warehouse/" in out.stderr


def test_cp_a_copy_refuses_to_write_into_the_original(ingested: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shop_copy"
    subprocess.run(["cp", "-a", str(ingested), str(copy)], check=True)
    (copy / "landing" / "orders" / "orders_20260102.csv").write_text(ORDERS_HEADER + ROW.format(3))
    original, copied = lake_fingerprint(ingested), lake_fingerprint(copy)
    for args in (("ingest",), ("status",), ("tables",), ("query", "SELECT count(*) FROM bronze.orders")):
        _refused(copy, *args, original=ingested)
    as_json = run_capped("ingest", "--json", cwd=copy)
    assert as_json.code == 2 and json.loads(as_json.stdout)["error"] == "ConfigError"
    assert lake_fingerprint(ingested) == original  # nothing written into the original lake
    assert lake_fingerprint(copy) == copied
    assert not list((ingested / "warehouse").rglob("*20260102*"))


def test_the_documented_fix_gives_the_copy_its_own_lake(ingested: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shop_copy"
    shutil.copytree(ingested, copy, symlinks=True)
    original = lake_fingerprint(ingested)
    shutil.rmtree(copy / ".lakestack")
    shutil.rmtree(copy / "warehouse")
    out = run_capped("ingest", "--json", cwd=copy)
    assert out.code == 0, out.output
    assert json.loads(out.stdout)["landed"] == 2  # the landing files, read again into the copy's lake
    tables = json.loads(run_capped("tables", "--json", cwd=copy).stdout)
    assert {t["identifier"]: t["rows"] for t in tables}["bronze.orders"] == 2
    assert lake_fingerprint(ingested) == original


def test_a_moved_project_linked_from_its_old_path_keeps_working(ingested: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    ingested.rename(moved)
    _refused(moved, "status", original=ingested)  # the old path is gone: refused, not a driver error
    ingested.symlink_to(moved, target_is_directory=True)
    out = run_capped("status", "--json", cwd=moved)
    assert out.code == 0, out.output
    assert json.loads(out.stdout)[0]["bronze_rows"] == 2


def test_the_original_still_works(ingested: Path, land: Land) -> None:
    land("orders", "orders_20260102.csv", ORDERS_HEADER + ROW.format(3))
    out = run_capped("ingest", "--json", cwd=ingested)
    assert out.code == 0 and json.loads(out.stdout)["landed"] == 1, out.output


@pytest.mark.integration
def test_a_copy_sharing_a_postgresql_catalog_is_refused(project: Path, land: Land, tmp_path: Path) -> None:
    """With a shared catalog the copy opens the same catalog name: the tables are the original's."""
    import uuid

    from lakestack import Lake
    from tests_support import service_url

    url = service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"shop_{uuid.uuid4().hex[:8]}"
    (project / "lakestack.yaml").write_text(
        f"name: {name}\nenvironments:\n  dev: {{warehouse: ./warehouse, catalog: {{type: sql, uri: '{url}'}}}}\n"
        "sources:\n  orders: {kind: files, landing: landing/orders, contract: orders}\n"
    )
    land("orders", "orders_20260101.csv", ORDERS_HEADER + ROW.format(1))
    try:
        # 4 GiB: psycopg's and DuckDB's thread reservations abort under 1.5 GB on a loaded machine
        assert run_capped("ingest", cwd=project, memory_mb=4096).code == 0
        copy = tmp_path / "shop_copy"
        shutil.copytree(project, copy, symlinks=True)
        original = lake_fingerprint(project)
        out = run_capped("ingest", cwd=copy, memory_mb=4096)
        assert out.code == 2, out.output
        assert "copied or moved" in out.stderr and "its own project name" in out.stderr
        assert lake_fingerprint(project) == original
    finally:
        catalog = Lake.open(project).warehouse.catalog
        for table in ("bronze.orders", "quarantine.orders"):
            if catalog.table_exists(table):
                catalog.drop_table(table)

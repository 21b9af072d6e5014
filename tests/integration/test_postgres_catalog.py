"""The same ingestion against a shared catalog on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lakestack import Lake
from tests_support import service_url

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_url() -> str:
    return service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test")


def test_ingest_with_a_postgresql_catalog(project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"shop_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SHOP_CATALOG_URL", postgres_url)
    (project / "lakestack.yaml").write_text(
        f"name: {name}\nenvironments:\n  dev:\n    warehouse: ./warehouse\n"
        "    catalog: {type: sql, uri: {secret: SHOP_CATALOG_URL}}\n"
        "sources:\n  orders: {contract: orders, landing: landing/orders}\n"
    )
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(
        "order_id,qty,price,currency,order_ts,email\nORD-0001,2,9.99,USD,2026-01-01 10:00:00,\nORD-2,1,1,USD,,\n"
    )
    lake = Lake.open(project)
    try:
        report = lake.ingest()
        assert (report.landed, report.quarantined) == (1, 1)
        # a second process (a fresh Lake) sees the same catalog and skips the file
        again = Lake.open(project).ingest()
        assert again.sources[0].files[0].status == "skipped"
        assert {t.identifier: t.rows for t in Lake.open(project).tables()} == {
            "bronze.orders": 1,
            "quarantine.orders": 1,
            "_lakestack.runs": 4,  # each ingest recorded a run and its job
        }
    finally:
        catalog = lake.warehouse.catalog
        for table in ("bronze.orders", "quarantine.orders", "_lakestack.runs"):
            if catalog.table_exists(table):
                catalog.drop_table(table)

"""A project whose Gold model `sales` the tests write directly (so they control its snapshots), for
the publish tests of every target."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakestack import Lake

DAYS = [date(2026, 11, 1) + timedelta(days=i) for i in range(4)]


def sales(n: int, *, day_count: int = 4, amount: str = "1.50", start: int = 0) -> pa.Table:
    return pa.table(
        {
            "order_day": pa.array([DAYS[i % day_count] for i in range(start, start + n)], pa.date32()),
            "order_id": pa.array([f"O{i:07d}" for i in range(start, start + n)]),
            "email": pa.array([f"user{i}@example.com" for i in range(start, start + n)]),
            "amount": pa.array([Decimal(amount)] * n, pa.decimal128(12, 2)),
        }
    )


def project(root: Path, schema: str, block: str, *, role: str = "engineer", kind: str = "postgres") -> Path:
    """A project whose Gold model `sales` is written directly (tests control its snapshots)."""
    (root / "models" / "gold").mkdir(parents=True, exist_ok=True)
    (root / "models" / "gold" / "sales.sql").write_text("SELECT 1 AS x\n")
    (root / "lakestack.yaml").write_text(
        f"name: pubtest\npublish:\n  pg:\n    url: {{secret: PUBLISH_TEST_URL}}\n    kind: {kind}\n"
        f"    schema: {schema}\n"
        f"    role: {role}\n    datasets:\n      gold.sales: {block}\n"
    )
    return root


def gold_table(lake: Lake, data: pa.Table, *, partitioned: bool = True) -> Any:
    from pyiceberg.transforms import DayTransform

    table = lake.warehouse.catalog.create_table(
        "gold.sales", schema=data.schema, properties={"lakestack.pii.email": "email"}
    )
    if partitioned:
        with table.update_spec() as spec:
            spec.add_field("order_day", DayTransform(), "order_day_day")
    table = lake.warehouse.load("gold.sales")
    table.append(data)
    return lake.warehouse.load("gold.sales")

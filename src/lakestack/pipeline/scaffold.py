"""Making projects: `lakestack init` and the bundled examples."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from lakestack.errors import UsageError

EXAMPLES = ("northwind",)

_PROJECT = """\
name: {name}
description: A lakestack project.
default_environment: dev
environments:
  dev:
    warehouse: ./warehouse
    catalog:
      type: sql
      uri: sqlite:///.lakestack/catalog.db
    engine: duckdb
  prod:
    # Not runnable yet: an S3 warehouse and a shared catalog, named by reference only.
    warehouse: s3://{name}-lake/warehouse
    catalog:
      type: sql
      uri: {{secret: {upper}_CATALOG_URL}}
    engine: spark
sources:
  {source}:
    kind: files
    landing: landing/{source}
    contract: {source}
datasets: {{}}
"""
TEMPLATES = ("ndjson", "csv", "parquet")
_CSV_CONTRACT = """\
source: orders
version: 1
description: Order lines, one CSV file a day.
key: [order_id]
event_time: order_ts
file:
  pattern: "orders_{date:%Y%m%d}.csv"
  format: csv
  csv: {delimiter: ",", quote: "\\"", header: true, encoding: utf-8}
columns:
  - {name: order_id, type: string, nullable: false, regex: "^ORD-[0-9]{4}$"}
  - {name: quantity, type: integer, nullable: false, min: 1}
  - {name: unit_price, type: "decimal(12,2)", nullable: false, min: 0}
  - {name: currency, type: string, nullable: false, enum: [USD, EUR, GBP]}
  - {name: order_ts, type: timestamp, nullable: false}
  - {name: email, type: string, pii: email}
"""
_SAMPLE_CSV = """\
order_id,quantity,unit_price,currency,order_ts,email
ORD-0001,2,9.99,USD,2026-01-01T10:00:00Z,ada@example.com
ORD-0002,1,120.00,EUR,2026-01-01T10:05:00Z,
ORD-0003,two,5.00,XXX,2026-01-01T10:07:00Z,grace@example.com
"""
_PARQUET_CONTRACT = """\
source: products
version: 1
description: The product catalog, one Parquet extract a day.
key: [product_id]
event_time: updated_at
file:
  pattern: "products_{date:%Y%m%d}.parquet"
  format: parquet
columns:
  - {name: product_id, type: string, nullable: false, regex: "^P[0-9]{3}$"}
  - {name: name, type: string, nullable: false, max_length: 200}
  - {name: list_price, type: "decimal(12,2)", nullable: false, min: 0}
  - {name: active, type: boolean, nullable: false}
  - {name: updated_at, type: timestamp, nullable: false}
"""

_CONTRACT = """\
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "events",
  "description": "Application events, one JSON object per line.",
  "type": "object",
  "additionalProperties": false,
  "x-lakestack-key": ["event_id"],
  "x-lakestack-event-time": "event_ts",
  "x-lakestack-compatibility": "backward",
  "x-lakestack-file": {"pattern": "events_{date:%Y%m%d}*.ndjson", "format": "ndjson"},
  "required": ["event_id", "event_ts", "event_type"],
  "properties": {
    "event_id": {"type": "string", "format": "uuid"},
    "event_ts": {"type": "string", "format": "date-time"},
    "event_type": {"type": "string", "enum": ["signup", "login", "purchase"]},
    "user_email": {"type": ["string", "null"], "format": "email", "x-lakestack-pii": "email"},
    "amount": {"type": ["number", "null"], "x-lakestack-type": "decimal(12,2)", "minimum": 0}
  }
}
"""

_SAMPLE_EVENTS = [
    {
        "event_id": "0b6f7a7e-4d0c-4c57-9f61-2f1f8a0d9c01",
        "event_ts": "2026-01-01T09:00:00Z",
        "event_type": "signup",
        "user_email": "ada@example.com",
        "amount": None,
    },
    {
        "event_id": "0b6f7a7e-4d0c-4c57-9f61-2f1f8a0d9c02",
        "event_ts": "2026-01-01T09:05:00Z",
        "event_type": "purchase",
        "user_email": "ada@example.com",
        "amount": 19.99,
    },
    {"event_id": "not-a-uuid", "event_ts": "2026-01-01T09:06:00Z", "event_type": "refund", "amount": -5},
]
_GITIGNORE = "warehouse/\n.lakestack/\n"


def init_project(name: str, path: Path, template: str = "ndjson") -> Path:
    """Scaffold a working project: project file, a contract, a sample landing file, empty folders.

    `template`: `ndjson` (events with a JSON Schema contract), `csv` (daily order files with a
    batch contract) or `parquet` (catalog extracts); each sample file holds one invalid record."""
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
        raise UsageError(f"'{name}' is not a valid project name (lower-case letters, digits and '_')")
    if template not in TEMPLATES:
        raise UsageError(f"unknown template '{template}' (templates: {', '.join(TEMPLATES)})")
    if (path / "lakestack.yaml").exists():
        raise UsageError(f"{path / 'lakestack.yaml'} already exists; choose another folder")
    source = {"ndjson": "events", "csv": "orders", "parquet": "products"}[template]
    for folder in ("contracts", "models/silver", "models/gold", "checks", f"landing/{source}"):
        (path / folder).mkdir(parents=True, exist_ok=True)
    project = _PROJECT.format(name=name, upper=name.upper(), source=source)
    (path / "lakestack.yaml").write_text(project, encoding="utf-8")
    landing = path / "landing" / source
    if template == "csv":
        (path / "contracts" / "orders.v1.yaml").write_text(_CSV_CONTRACT, encoding="utf-8")
        (landing / "orders_20260101.csv").write_text(_SAMPLE_CSV, encoding="utf-8")
    elif template == "parquet":
        (path / "contracts" / "products.v1.yaml").write_text(_PARQUET_CONTRACT, encoding="utf-8")
        _sample_parquet(landing / "products_20260101.parquet")
    else:
        (path / "contracts" / "events.v1.json").write_text(_CONTRACT, encoding="utf-8")
        sample = "".join(json.dumps(event) + "\n" for event in _SAMPLE_EVENTS)
        (landing / "events_20260101.ndjson").write_text(sample, encoding="utf-8")
    (path / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
    return path


def _sample_parquet(path: Path) -> None:
    """Three products, the last with a negative price (quarantined)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    when = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
    table = pa.table(
        {
            "product_id": ["P001", "P002", "P003"],
            "name": ["Chai", "Chang", "Aniseed Syrup"],
            "list_price": pa.array([Decimal("18.00"), Decimal("19.00"), Decimal("-1.00")], pa.decimal128(12, 2)),
            "active": [True, True, False],
            "updated_at": pa.array([when] * 3, pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(table, path)


def example_template(name: str) -> Path:
    """The folder holding an example project's files (installed package or source checkout)."""
    if name not in EXAMPLES:
        raise UsageError(f"unknown example '{name}' (available: {', '.join(EXAMPLES)})")
    packaged = Path(str(resources.files("lakestack"))) / "examples" / f"{name}_project"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "examples" / name
    if checkout.is_dir():
        return checkout
    raise UsageError(f"the {name} example's project files are not installed")


def copy_example(name: str, dest: Path) -> Path:
    """Copy an example's project files (not its data) into `dest`, keeping files already there."""
    template = example_template(name)
    dest.mkdir(parents=True, exist_ok=True)
    if template.resolve() == dest.resolve():
        return dest
    for item in template.rglob("*"):
        rel = item.relative_to(template)
        if rel.parts[0] in ("landing", "warehouse", ".lakestack", "apis") or item.is_dir():  # apis: --apis adds it
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item, target)
    return dest

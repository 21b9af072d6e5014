"""Shared fixtures: small real projects on disk, and service addresses from the environment."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ORDERS_CONTRACT = """\
source: orders
version: 1
description: Order lines.
key: [order_id]
event_time: order_ts
file:
  pattern: "orders_{date:%Y%m%d}.csv"
  format: csv
columns:
  - {name: order_id, type: string, nullable: false, regex: "^ORD-[0-9]{4}$"}
  - {name: qty, type: integer, nullable: false, min: 1, max: 100}
  - {name: price, type: "decimal(8,2)", nullable: false, min: 0}
  - {name: currency, type: string, enum: [USD, EUR]}
  - {name: order_ts, type: timestamp, nullable: false}
  - {name: email, type: string, pii: email, max_length: 30}
"""

CLICKS_CONTRACT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "x-lakestack-key": ["event_id"],
    "x-lakestack-event-time": "ts",
    "x-lakestack-file": {"pattern": "clicks_{date:%Y%m%d}.ndjson", "format": "ndjson"},
    "required": ["event_id", "ts", "kind"],
    "properties": {
        "event_id": {"type": "string", "minLength": 3},
        "ts": {"type": "string", "format": "date-time"},
        "kind": {"type": "string", "enum": ["view", "buy"]},
        "page": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {"url": {"type": "string"}, "ref": {"type": ["string", "null"]}},
        },
        "items": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "ip": {"type": "string", "x-lakestack-pii": "ip"},
    },
}

PROJECT_FILE = """\
name: shop
environments:
  dev:
    warehouse: ./warehouse
    catalog: {type: sql, uri: "sqlite:///.lakestack/catalog.db"}
sources:
  orders: {kind: files, landing: landing/orders, contract: orders}
  clicks: {kind: files, landing: landing/clicks, contract: clicks}
"""

ORDERS_HEADER = "order_id,qty,price,currency,order_ts,email\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A two-source project (CSV orders, NDJSON clicks) with empty landing folders."""
    root = tmp_path / "shop"
    (root / "contracts").mkdir(parents=True)
    (root / "landing" / "orders").mkdir(parents=True)
    (root / "landing" / "clicks").mkdir(parents=True)
    (root / "lakestack.yaml").write_text(PROJECT_FILE)
    (root / "contracts" / "orders.v1.yaml").write_text(ORDERS_CONTRACT)
    (root / "contracts" / "clicks.v1.json").write_text(json.dumps(CLICKS_CONTRACT, indent=2))
    return root


@pytest.fixture
def land(project: Path) -> Callable[[str, str, str | bytes], Path]:
    """Write a landing file: land("orders", "orders_20260101.csv", text_or_bytes)."""

    def write(source: str, name: str, content: str | bytes) -> Path:
        path = project / "landing" / source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content) if content.startswith("\n") else content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def nats_stream() -> Iterator[tuple[str, str, str]]:
    """A fresh JetStream stream on the test NATS server: (url, stream name, subject); deleted after."""
    from nats_support import delete_stream, make_stream
    from tests_support import service_url

    url = service_url("nats", "nats://127.0.0.1:4222")
    name, subject = make_stream(url)
    yield url, name, subject
    delete_stream(url, name)

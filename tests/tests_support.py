"""Contract texts and helpers shared by tests (a module, so several test files can import it)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

ORDERS = """\
source: orders
version: 1
file: {pattern: "orders_{date:%Y%m%d}.csv", format: csv}
columns:
  - {name: order_id, type: string, nullable: false, regex: "^ORD-[0-9]{4}$"}
  - {name: qty, type: integer, nullable: false, min: 1, max: 100}
  - {name: price, type: "decimal(8,2)", min: 0}
  - {name: currency, type: string, enum: [USD, EUR]}
  - {name: order_ts, type: timestamp}
  - {name: paid, type: boolean}
  - {name: ship_date, type: date}
  - {name: weight, type: double}
  - {name: note, type: string, min_length: 2, max_length: 10}
"""


def service_url(name: str, default: str) -> str:
    """A service's URL from LAKESTACK_TEST_<NAME>_URL; skip (or fail under CI) if it is not reachable."""
    url = os.environ.get(f"LAKESTACK_TEST_{name.upper()}_URL", default)
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=2):
            pass
    except OSError as exc:
        message = f"{name} is not reachable at {parsed.hostname}:{parsed.port} ({exc})"
        if os.environ.get("LAKESTACK_REQUIRE_SERVICES"):
            pytest.fail(message + "; LAKESTACK_REQUIRE_SERVICES is set")
        pytest.skip(message)
    return url

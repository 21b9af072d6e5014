"""Deterministic benchmark data: small events and order files."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id", "event_ts", "user_id", "event_type", "amount"],
    "properties": {
        "event_id": {"type": "string", "minLength": 8, "maxLength": 40},
        "event_ts": {"type": "string", "format": "date-time"},
        "user_id": {"type": "string", "pattern": "^u[0-9]+$"},
        "event_type": {"type": "string", "enum": ["view", "click", "add_to_cart", "purchase"]},
        "amount": {"type": "number", "minimum": 0},
        "quantity": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
        "country": {"type": "string", "maxLength": 2},
    },
}
_TYPES = ["view", "click", "add_to_cart", "purchase"]


def make_events(n: int, seed: int = 7) -> list[bytes]:
    """`n` small JSON events, all valid against EVENT_SCHEMA."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        event = {
            "event_id": f"evt-{i:010d}",
            "event_ts": f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "user_id": f"u{rnd.randrange(100_000)}",
            "event_type": _TYPES[i % 4],
            "amount": round(rnd.random() * 500, 2),
            "quantity": 1 + i % 5,
            "country": "GB",
        }
        out.append(json.dumps(event, separators=(",", ":")).encode())
    return out


def _orders(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        {
            "order_id": f"ORD-{i:08d}",
            "customer_id": f"C{rnd.randrange(1_000_000):06d}",
            "quantity": 1 + rnd.randrange(20),
            "unit_price": f"{rnd.random() * 300:.2f}",
            "currency": rnd.choice(["USD", "EUR", "GBP"]),
            "status": rnd.choice(["placed", "paid", "shipped"]),
            "order_ts": f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        }
        for i in range(n)
    ]


def write_orders_csv(folder: Path, n: int, files: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rows, out = _orders(n, 11), []
    per = -(-n // files)
    for f in range(files):
        path = folder / f"orders_202601{f + 1:02d}.csv"
        with path.open("w") as fh:
            fh.write("order_id,customer_id,quantity,unit_price,currency,status,order_ts\n")
            for r in rows[f * per : (f + 1) * per]:
                fh.write(",".join(str(v) for v in r.values()) + "\n")
        out.append(path)
    return out


def write_orders_ndjson(folder: Path, n: int, files: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rows, out = _orders(n, 11), []
    per = -(-n // files)
    for f in range(files):
        path = folder / f"orders_202601{f + 1:02d}.ndjson"
        with path.open("w") as fh:
            for r in rows[f * per : (f + 1) * per]:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
        out.append(path)
    return out

"""A small project with one stream source, and helpers to read what a stream committed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

EVENTS_CONTRACT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "x-lakestack-key": ["event_id"],
    "x-lakestack-event-time": "ts",
    "required": ["event_id", "ts", "amount"],
    "properties": {
        "event_id": {"type": "string", "minLength": 1},
        "ts": {"type": "string", "format": "date-time"},
        "amount": {"type": "integer", "minimum": 0},
        "customer": {"type": ["string", "null"], "x-lakestack-pii": "email"},
    },
}


def stream_project(
    root: Path, kind: str, settings: dict[str, Any] | None = None, *, table_format: str | None = None, **stream: Any
) -> Path:
    """`root/lakestack.yaml` with source `events` of this kind (settings go in its `kind:` block);
    `table_format` (delta): the dev environment's tables in that format."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "contracts").mkdir(exist_ok=True)
    (root / "contracts" / "events.v1.json").write_text(json.dumps(EVENTS_CONTRACT, indent=2))
    source: dict[str, Any] = {"kind": kind, "contract": "events"}
    if settings is not None:
        source[kind] = settings
    if stream:
        source["stream"] = stream
    config = {
        "name": "streamy",
        "environments": {
            "dev": {"warehouse": "./warehouse", "catalog": {"type": "sql", "uri": "sqlite:///.lakestack/catalog.db"}}
        },
        "sources": {"events": source},
    }
    if table_format is not None:
        config["environments"]["dev"]["format"] = table_format  # type: ignore[index]
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def event(i: int, **override: Any) -> dict[str, Any]:
    """A valid event with id `e<i>`."""
    record: dict[str, Any] = {"event_id": f"e{i}", "ts": "2026-11-22T10:00:00Z", "amount": i % 1000}
    record.update(override)
    return record


def payload(i: int, **override: Any) -> bytes:
    return json.dumps(event(i, **override)).encode()


def bronze_ids(root: Path, source: str = "events") -> list[str]:
    """Every event_id in bronze.<source> (with repeats, so a duplicate shows)."""
    from lakestack.pipeline.lake import Lake

    lake = Lake.open(root)
    if not lake.warehouse.exists(f"bronze.{source}"):
        return []
    return [str(v) for v in lake.read(f"bronze.{source}", columns=["event_id"]).column("event_id").to_pylist()]


def quarantine_rows(root: Path, source: str = "events") -> list[dict[str, Any]]:
    from lakestack.pipeline.lake import Lake

    lake = Lake.open(root)
    if not lake.warehouse.exists(f"quarantine.{source}"):
        return []
    rows: list[dict[str, Any]] = lake.read(f"quarantine.{source}").to_pylist()
    return rows


def events_with_invalid(n: int, seed: int, share: float = 0.03) -> tuple[list[bytes], set[str]]:
    """`n` event payloads, about `share` of them breaking the contract's minimum; and those ids."""
    import random

    rng = random.Random(seed)
    payloads, invalid = [], set()
    for i in range(n):
        bad = rng.random() < share
        payloads.append(json.dumps(event(i, amount=-1) if bad else event(i)).encode())
        if bad:
            invalid.add(f"e{i}")
    return payloads, invalid


def event_id(raw: str) -> str:
    return str(json.loads(raw)["event_id"])


def assert_exactly_once(root: Path, n: int, invalid: set[str]) -> None:
    """Every valid event of `e0..e<n-1>` once in Bronze; every invalid one once in quarantine."""
    from collections import Counter

    ids = bronze_ids(root)
    twice = sorted(k for k, v in Counter(ids).items() if v > 1)
    assert not twice, f"{len(twice)} events landed twice in Bronze: {twice[:10]}"
    missing = sorted({f"e{i}" for i in range(n)} - invalid - set(ids), key=lambda s: int(s[1:]))
    assert not missing, f"{len(missing)} valid events are not in Bronze: {missing[:10]}"
    assert set(ids) == {f"e{i}" for i in range(n)} - invalid
    bad = Counter(event_id(r["_raw"]) for r in quarantine_rows(root))
    again = sorted(k for k, v in bad.items() if v > 1)
    assert not again, f"{len(again)} rejects were quarantined twice: {again[:10]}"
    assert set(bad) == invalid, f"quarantine lacks {sorted(invalid - set(bad))[:10]}"

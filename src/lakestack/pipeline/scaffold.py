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
  events:
    kind: files
    landing: landing/events
    contract: events
datasets: {{}}
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


def init_project(name: str, path: Path) -> Path:
    """Scaffold a working project: project file, a contract, a sample landing file, empty folders."""
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
        raise UsageError(f"'{name}' is not a valid project name (lower-case letters, digits and '_')")
    if (path / "lakestack.yaml").exists():
        raise UsageError(f"{path / 'lakestack.yaml'} already exists; choose another folder")
    for folder in ("contracts", "models/silver", "models/gold", "checks", "landing/events"):
        (path / folder).mkdir(parents=True, exist_ok=True)
    (path / "lakestack.yaml").write_text(_PROJECT.format(name=name, upper=name.upper()), encoding="utf-8")
    (path / "contracts" / "events.v1.json").write_text(_CONTRACT, encoding="utf-8")
    sample = "".join(json.dumps(event) + "\n" for event in _SAMPLE_EVENTS)
    (path / "landing" / "events" / "events_20260101.ndjson").write_text(sample, encoding="utf-8")
    (path / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
    return path


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
        if rel.parts[0] in ("landing", "warehouse", ".lakestack") or item.is_dir():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item, target)
    return dest

"""Northwind projects whose orders contract had a mistake, for the quarantine replay tests.

`mistaken(root, case)` writes a small Northwind, puts the mistake into orders.v1 and ingests the
orders with it; the fix is orders.v2 (`fix(root, case)`). `reference(root, case)` is the same data
ingested with the fixed contract from the start: what Bronze must hold after a replay.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from lake_support import small_northwind
from lakestack import Lake

QUANTITY = "  - {name: quantity, type: integer, nullable: false, min: 1, max: 1000}"
SHIP = '  - {name: ship_country, type: string, max_length: 2, regex: "^[A-Z]{2}$"}'
# case → (the mistake in v1, the fix in v2): each an edit (old line → new line) of orders.v1.yaml
CASES = {
    # a required column the files do not have: every CSV file is rejected whole at its header
    "whole_file": ((SHIP, SHIP + '\n  - {name: discount, type: "decimal(12,2)", nullable: false}'), (SHIP, SHIP)),
    # a bound far too tight: records quarantined one by one; the fix is still tighter than the truth
    "too_tight": (
        (QUANTITY, QUANTITY.replace("max: 1000", "max: 3")),
        (QUANTITY, QUANTITY.replace("max: 1000", "max: 12")),
    ),
}


def pristine(root: Path, table_format: str | None = None) -> Path:
    """The small Northwind the cases start from; with `table_format` (delta), its tables in that format."""
    project = small_northwind(root, orders=200, days=2)
    if table_format is not None:
        import yaml

        config = project / "lakestack.yaml"
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["environments"][data.get("default_environment", "dev")]["format"] = table_format
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return project


def _edit(root: Path, version: int, edit: tuple[str, str], base: str) -> None:
    old, new = edit
    assert old in base, old
    text = base.replace(old, new).replace("version: 1", f"version: {version}")
    (root / "contracts" / f"orders.v{version}.yaml").write_text(text, encoding="utf-8")


def mistaken(source: Path, root: Path, case: str) -> Path:
    """A copy of `source` (pristine, not run) ingested with the mistaken orders.v1."""
    shutil.copytree(source, root)
    base = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    (root / "base.yaml").write_text(base, encoding="utf-8")
    _edit(root, 1, CASES[case][0], base)
    with Lake.open(root) as lake:
        lake.ingest(["orders"])
    return root


def fix(root: Path, case: str) -> None:
    """orders.v2: the contract with the mistake fixed."""
    _edit(root, 2, CASES[case][1], (root / "base.yaml").read_text(encoding="utf-8"))


def reference(source: Path, root: Path, case: str) -> Path:
    """A copy of `source` ingested with the fixed contract as v1."""
    shutil.copytree(source, root)
    base = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    _edit(root, 1, CASES[case][1], base)
    with Lake.open(root) as lake:
        lake.ingest(["orders"])
    return root


def bronze_records(root: Path) -> list[tuple[Any, ...]]:
    """(file, line, contract columns as JSON) of every Bronze orders row, sorted (duplicates kept)."""
    with Lake.open(root) as lake:
        contract = lake.project.contract("orders")
        rows = lake.warehouse.load("bronze.orders").scan().to_arrow().to_pylist()
    names = contract.column_names
    return sorted((r["_source_file"], r["_source_line"], json.dumps([r[n] for n in names], default=str)) for r in rows)


def quarantine_rows(root: Path) -> int:
    with Lake.open(root) as lake:
        return int(lake.warehouse.load("quarantine.orders").scan().to_arrow().num_rows)


def fingerprint(root: Path) -> dict[str, Any]:
    """Every table's current snapshot id and schema (id and columns): a command that changes nothing keeps it."""
    with Lake.open(root) as lake:
        out: dict[str, Any] = {}
        for identifier in lake.warehouse.tables():
            table = lake.warehouse.load(identifier)
            snap = table.current_snapshot()
            schema = table.schema()
            out[identifier] = (snap.snapshot_id if snap else None, schema.schema_id, tuple(schema.column_names))
    return out

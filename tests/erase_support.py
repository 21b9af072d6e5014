"""Helpers of the erasure tests: a small Northwind project, every table's rows, content digests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lake_support import small_northwind

SKIP = frozenset({"_run_id", "_ingested_at"})


def lake_rows(root: Path) -> dict[str, list[dict[str, Any]]]:
    from lakestack import Lake

    lake = Lake.open(root)
    out = {}
    for identifier in lake.warehouse.tables():
        if identifier.startswith("_lakestack.") and identifier != "_lakestack.token_vault":
            continue
        out[identifier] = lake.warehouse.load(identifier).scan().to_arrow().to_pylist()
    lake.close()
    return out


def holds(row: dict[str, Any], values: set[str]) -> bool:
    for key, value in row.items():
        if key in ("_raw", "row") and isinstance(value, str) and any(v in value for v in values):
            return True
        if str(value) in values:
            return True
    return False


def digest(rows: list[dict[str, Any]]) -> str:
    lines = sorted(repr(sorted((k, str(v)) for k, v in r.items() if k not in SKIP)) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def data_files(root: Path) -> set[Path]:
    """The data files on disk: Iceberg's under `data/`, Delta's anywhere in a table's folder but its
    log and side files (log checkpoints and file ledgers are Parquet too)."""
    warehouse = root / "warehouse"
    side = {"_delta_log", "_lakestack"}  # inside a table folder (`_lakestack` is a namespace too)

    def delta(p: Path) -> bool:
        inside = p.relative_to(warehouse).parts
        return (warehouse / inside[0] / inside[1] / "_delta_log").is_dir() and not side & set(inside[2:])

    return {p for p in warehouse.rglob("*.parquet") if "/data/" in str(p) or delta(p)}


def project(root: Path, table_format: str | None = None) -> Path:
    """small_northwind without publishing (not what this tests); with `table_format` (delta), its
    tables in that format."""
    import yaml

    small_northwind(root, orders=200, days=2)
    config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
    config.pop("publish", None)
    if table_format is not None:
        config["environments"][config.get("default_environment", "dev")]["format"] = table_format
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def live_files(root: Path) -> set[Path]:
    """The data files a current snapshot of some table reads."""
    from lakestack import Lake

    lake = Lake.open(root)
    live: set[Path] = set()
    for identifier in lake.warehouse.tables():
        table = lake.warehouse.load(identifier)
        live |= {Path(t.file.file_path.removeprefix("file://")) for t in table.scan().plan_files()}
    lake.close()
    return live

"""Whole-lake helpers for tests that run lakestack in child processes: a small Northwind project,
the CLI as a child, and a content hash of every table read by both pyiceberg and DuckDB."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

# Columns that name the run or the moment of a commit: equal content differs only there.
RUN_COLUMNS = frozenset({"_run_id", "_ingested_at"})
# Per-run logs, not results: each run appends its own evaluations.
LOG_TABLES = ("_lakestack.",)


def northwind(root: Path, *, orders: int = 2000, seed: int = 11, days: int = 4) -> Path:
    """A Northwind project with landing files (what `lakestack example northwind` writes)."""
    from lakestack.examples.northwind import generate_northwind
    from lakestack.pipeline.scaffold import copy_example

    copy_example("northwind", root)
    generate_northwind(root, orders=orders, seed=seed, days=days)
    return root


def small_northwind(root: Path, *, orders: int = 1000, seed: int = 11, days: int = 3) -> Path:
    """Northwind without the clickstream and four Gold models: every commit path, fewer tables
    (orders, customers, products, fx_rates; fact_sales, daily_order_metrics with its gate, dim_customers)."""
    import yaml

    northwind(root, orders=orders, seed=seed, days=days)
    config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
    del config["sources"]["clickstream"], config["datasets"]["clickstream"]
    dropped = ("dim_date", "dim_products", "product_performance", "customer_segments")
    for block in config.get("publish", {}).values():  # the example's publish block names them too
        block["datasets"] = {d: t for d, t in block["datasets"].items() if d.partition(".")[2] not in dropped}
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.rmtree(root / "landing" / "clickstream")
    (root / "contracts" / "clickstream.v1.json").unlink()
    for model in dropped:
        for path in (root / "models" / "gold").glob(f"{model}.*"):
            path.unlink()
    return root


def copy_project(
    pristine: Path, dest: Path, *, catalog_url: str | None = None, table_format: str | None = None
) -> Path:
    """A fresh copy of a project that has not run yet; with `catalog_url`, its dev catalog there
    (PostgreSQL), under a project name of its own so tables of other tests never mix; with
    `table_format` (delta), its dev tables in that format."""
    shutil.copytree(pristine, dest)
    if table_format is not None:
        import yaml

        config = dest / "lakestack.yaml"
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["environments"][data.get("default_environment", "dev")]["format"] = table_format
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    if catalog_url is not None:
        config = dest / "lakestack.yaml"
        text = config.read_text(encoding="utf-8")
        import yaml

        data = yaml.safe_load(text)
        data["name"] = f"nw_{uuid.uuid4().hex[:10]}"
        dev = data["environments"][data.get("default_environment", "dev")]
        dev["catalog"] = {"type": "sql", "uri": catalog_url}
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return dest


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESTACK_FAILPOINTS")}
    env.update(COLUMNS="200", **extra)
    return env


def cli_args(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lakestack", "-p", str(project), *args]


def cli(project: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child process and wait for it."""
    return subprocess.run(
        cli_args(project, *args), env=child_env(**env), capture_output=True, text=True, timeout=timeout
    )


def spawn(project: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_args(project, *args),
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _digest(rows: list[dict[str, Any]]) -> str:
    lines = sorted(repr(sorted((k, v) for k, v in r.items() if k not in RUN_COLUMNS)) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def lake_contents(project: Path) -> dict[str, tuple[int, str]]:
    """(rows, content hash) per table, run-specific columns left out. Each table is read by pyiceberg
    and by DuckDB over the Parquet files pyiceberg plans; the two must agree."""
    import duckdb

    from lakestack import Lake

    warehouse = Lake.open(project).warehouse
    out: dict[str, tuple[int, str]] = {}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        for identifier in warehouse.tables():
            table = warehouse.load(identifier)
            rows = table.scan().to_arrow().to_pylist()
            digest = _digest(rows)
            tasks = list(table.scan().plan_files())
            assert all(not t.delete_files for t in tasks), f"{identifier} has delete files"
            files = [t.file.file_path.removeprefix("file://") for t in tasks]
            if files:
                relation = con.sql(f"SELECT * FROM read_parquet({files!r}, hive_partitioning = false)")
                fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2.x / 1.x
                read = fetch().to_pylist()
                assert _digest(read) == digest, f"{identifier}: DuckDB reads other rows than pyiceberg"
            if not identifier.startswith(LOG_TABLES):  # read (above), but not compared
                out[identifier] = (len(rows), digest)
    finally:
        con.close()
    return out


def drop_catalog_tables(project: Path) -> None:
    """Drop a (PostgreSQL) project's tables, so a shared catalog database does not grow with tests."""
    from lakestack import Lake

    warehouse = Lake.open(project).warehouse
    for identifier in warehouse.tables():
        warehouse.catalog.drop_table(identifier)


def create_database(server_url: str) -> str:
    """A new, empty PostgreSQL database on the server of `server_url`; its URL."""
    import psycopg

    name = f"lakestack_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

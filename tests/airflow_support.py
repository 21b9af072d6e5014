"""Reading an exported Airflow DAG file without Airflow (ast), and a northwind project to export."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

# the northwind example's DAG: task → (lakestack arguments, upstream tasks)
NORTHWIND_TASKS: dict[str, tuple[list[str], list[str]]] = {
    "ingest_orders": (["ingest", "orders"], []),
    "ingest_customers": (["ingest", "customers"], []),
    "ingest_products": (["ingest", "products"], []),
    "ingest_fx_rates": (["ingest", "fx_rates"], []),
    "ingest_clickstream": (["ingest", "clickstream"], []),
    "gate_bronze": (
        ["check", "bronze.orders"],
        ["ingest_orders", "ingest_customers", "ingest_products", "ingest_fx_rates", "ingest_clickstream"],
    ),
    "promote": (["promote"], ["gate_bronze"]),
    "gate_silver": (
        ["check", "silver.orders", "silver.customers", "silver.products", "silver.fx_rates", "silver.clickstream"],
        ["promote"],
    ),
    "build": (["build"], ["gate_silver"]),
    "gate_gold": (["check", "gold.daily_order_metrics"], ["build"]),
    "publish": (["publish"], ["gate_gold"]),  # the example's publish: block
}


def northwind_project(root: Path, *, freshness: str = "20m", cron: str | None = "30 2 * * *") -> Path:
    """The northwind example's project files (no data): its freshness SLA on silver.orders set to
    `freshness`, and a `run` schedule."""
    from lakestack.pipeline.scaffold import copy_example

    copy_example("northwind", root)
    slas = root / "slas.yaml"
    slas.write_text(slas.read_text().replace("max_age: 1h ", f"max_age: {freshness} "))
    if cron is not None:
        with (root / "lakestack.yaml").open("a") as f:
            f.write(f'schedules:\n  run: "{cron}"\n  maintain: {{cron: "0 4 * * 0", missed: run_once}}\n')
    return root


def dag_tasks(source: str) -> dict[str, dict[str, Any]]:
    """The TASKS table of an exported DAG file, read with ast (Airflow is not imported)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TASKS" for t in node.targets):
            rows = ast.literal_eval(node.value)
            return {
                task_id: {"args": args, "upstream": upstream, "retries": retries, "timeout_s": timeout}
                for task_id, args, upstream, retries, timeout in rows
            }
    raise AssertionError("no TASKS table in the DAG file")


def dag_constant(source: str, name: str) -> Any:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} in the DAG file")


def imported_modules(source: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out

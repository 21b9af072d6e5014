"""`engine:` in the environment block is read: `engine: spark` without the extra stops `lakestack
promote` with exit 2 naming the install (issue 16), and `engine: duckdb` (the default) promotes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ORDERS = "order_id,qty,price,currency,order_ts,email\n1,2,3.50,EUR,2026-01-01T10:00:00Z,a@x.io\n"


def _cli(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakestack", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_spark_without_the_extra_exits_2_naming_the_install(
    project: Path, land: Callable[[str, str, str], Path], tmp_path: Path
) -> None:
    land("orders", "orders_20260101.csv", ORDERS)
    from lakestack import Lake

    Lake.open(project).ingest(["orders"])  # in-process: only the exit code needs the CLI
    text = (project / "lakestack.yaml").read_text() + "datasets:\n  orders: {layer: silver}\n"
    (project / "lakestack.yaml").write_text(
        text.replace("warehouse: ./warehouse", "warehouse: ./warehouse\n    engine: spark")
    )
    # PySpark is installed here; a package named pyspark that cannot be imported stands for its absence
    fake = tmp_path / "no_spark" / "pyspark"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pyspark'\", name='pyspark')\n")
    done = _cli(project, "promote", "orders", env={"PYTHONPATH": str(fake.parent)})
    assert done.returncode == 2, done.stderr
    assert "pip install 'lakestack[spark]'" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert not Lake.open(project).warehouse.exists("silver.orders")  # refused before anything ran

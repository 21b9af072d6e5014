"""The engine seam (ADR 26): pipeline/ and quality/ name no concrete engine, create_engine picks the
environment's engine or says what to install, and the DuckDB engine keeps the interface's promises
(relations, streamed results, data files that storage commits)."""

from __future__ import annotations

import ast
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from sqlglot import exp

import lakestack
from lakestack.engine import create_engine
from lakestack.engine.base import Engine, SqlFailed, transpile
from lakestack.errors import MissingExtraError, UsageError
from lakestack.storage.checkpoints import BATCH_ID

PACKAGE = Path(lakestack.__file__).parent
CONCRETE = ("duckdb", "pyspark", "lakestack.engine.duckdb", "lakestack.engine.spark")


def _sources() -> list[Path]:
    return sorted([*(PACKAGE / "pipeline").rglob("*.py"), *(PACKAGE / "quality").rglob("*.py")])


@pytest.mark.parametrize("path", _sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pipeline_and_quality_name_no_concrete_engine(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            modules = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        elif isinstance(node, ast.Constant) and node.value in ("duckdb", "spark"):  # a dialect or engine by name
            problems.append(f"line {node.lineno}: the string {node.value!r}")
        problems += [
            f"line {node.lineno}: imports {m}"
            for m in modules
            if any(m == c or m.startswith(c + ".") for c in CONCRETE)
        ]
    assert not problems, f"{path.relative_to(PACKAGE)} names a concrete engine: {problems}"


def test_the_ast_check_can_fail() -> None:
    tree = ast.parse("import duckdb\nfrom lakestack.engine.duckdb import DuckDBEngine\nx.sql('duckdb')\n")
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom | ast.Constant)]
    assert len(found) == 3


@pytest.mark.parametrize("environment", [None, SimpleNamespace(engine="duckdb"), SimpleNamespace()])
def test_create_engine_defaults_to_duckdb(environment: Any) -> None:
    with create_engine(environment, purpose="test") as engine:
        assert isinstance(engine, Engine)
        assert (engine.name, engine.dialect) == ("duckdb", "duckdb")
        assert engine.rows(exp.select(exp.Literal.number(41) + 1)) == [(42,)]


@pytest.mark.parametrize("missing", ["pyspark", "lakestack.engine.spark"])
def test_spark_without_the_extra_names_the_install(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # importing it raises ModuleNotFoundError(name=missing)
    with pytest.raises(MissingExtraError) as caught:
        create_engine(SimpleNamespace(engine="spark"), purpose="silver")
    assert caught.value.exit_code == 2
    assert "pip install 'lakestack[spark]'" in str(caught.value)
    assert "engine: spark (silver)" in str(caught.value)


def test_an_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown engine 'trino'"):
        create_engine(SimpleNamespace(engine="trino"))


def test_transpile_keeps_project_sql_and_reports_what_cannot_be_translated() -> None:
    sql = "SELECT a,\n  count(*) AS n\nFROM silver.orders GROUP BY a"
    assert transpile(sql, "duckdb") is sql
    assert "silver.orders" in transpile(sql, "spark")
    with pytest.raises(SqlFailed) as caught:
        transpile("SELECT a\nFROM t WHERE (", "spark", label="model m")
    assert caught.value.line == 2 and "model m cannot be translated to spark" in caught.value.reason


@pytest.fixture(scope="module")
def orders_table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An empty day-partitioned Iceberg table on a SQLite catalog."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import DateType, LongType, NestedField, StringType

    root = tmp_path_factory.mktemp("engine")
    catalog = SqlCatalog("t", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/wh")
    catalog.create_namespace("silver")
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "day", DateType(), required=False),
        NestedField(3, "note", StringType(), required=False),
    )
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="day_day"))
    return catalog.create_table("silver.orders", schema=schema, partition_spec=spec)


ROWS = pa.table(
    {
        "id": pa.array(range(6), pa.int64()),
        "day": pa.array([date(2026, 1, 1 + i % 3) for i in range(6)], pa.date32()),
        "note": pa.array([f"n{i}" for i in range(6)]),
    }
)


def test_duckdb_engine_writes_data_files_that_storage_commits(orders_table: Any) -> None:
    from lakestack.storage.warehouse import replace_files

    with create_engine() as engine:
        engine.register_arrow("incoming", ROWS)
        engine.materialize("kept", exp.select("id", "day", "note").from_("incoming").where("id < 4"))
        reader = engine.execute(exp.select("*").from_("kept"), batch_rows=2)
        batches = list(reader)
        assert sum(b.num_rows for b in batches) == 4 and max(b.num_rows for b in batches) <= 4
        query = exp.select("id", "day").from_("kept")  # no `note`: written as null (conformed)
        table = replace_files(orders_table, [], engine.writer(query), run_id="r1", batch_id="b1")
    files = [t.file for t in table.scan().plan_files()]
    assert len(files) == 3  # one per day partition
    assert table.current_snapshot().summary[BATCH_ID] == "b1"  # storage committed, with its properties
    data = table.scan().to_arrow().sort_by("id")
    assert data["id"].to_pylist() == [0, 1, 2, 3]
    assert data["note"].null_count == 4

    with create_engine() as engine:  # read back: a snapshot, and exactly some of its files
        engine.register_table("silver.orders", table)
        assert engine.rows(exp.select("count(*)").from_("silver.orders")) == [(4,)]
        engine.register_arrow("wanted", pa.table({"id": pa.array([1], pa.int64())}))
        paths = [f.file_path for f in files]
        holding = engine.files_holding(paths, ["id"], "wanted")
        assert len(holding) == 1 and holding <= set(paths)
        engine.register_files("some", sorted(holding), table)
        assert engine.rows(exp.select("id").from_("some").order_by("id")) == [(1,)]
        engine.register_files("none", [], table)
        assert engine.fetch(exp.select("*").from_("none")).schema.names == ["id", "day", "note"]


def test_a_failing_writer_commits_nothing(orders_table: Any) -> None:
    from lakestack.storage.warehouse import replace_files

    before = orders_table.refresh().current_snapshot()
    with create_engine() as engine, pytest.raises(Exception, match="no_such_relation"):
        replace_files(
            orders_table, [], engine.writer(exp.select("*").from_("no_such_relation")), run_id="r", batch_id="x"
        )
    assert orders_table.refresh().current_snapshot() == before

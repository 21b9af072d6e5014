"""`engine: spark`: the same Northwind project, switched only by its environment block, gives the
same Silver datasets, Gold models and check results on Spark `local[2]` as on DuckDB (content
hashes); the Gold build also runs on a standalone Spark cluster (a master and a worker started on
loopback from the pyspark package's own `spark-class`). One Spark session for the module."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_support import _digest, cli, small_northwind

pytestmark = [pytest.mark.slow, pytest.mark.integration]
REQUIRED = os.environ.get("LAKESTACK_REQUIRE_SERVICES") == "1"


def _spark_missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'lakestack[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (Spark needs Java 17+)"
    return None


if (missing := _spark_missing()) is not None:
    if REQUIRED:
        raise RuntimeError(f"LAKESTACK_REQUIRE_SERVICES=1 but {missing}")
    pytest.skip(missing, allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small Northwind with three environments: dev (DuckDB), spark (local[2]) and cluster
    (a standalone master, filled in by the cluster test), each with its own warehouse."""
    root = small_northwind(tmp_path_factory.mktemp("spark") / "nw", orders=150, days=2)
    config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
    for name, master in (("spark", "local[2]"), ("cluster", "spark://127.0.0.1:1")):
        config["environments"][name] = {
            "warehouse": f"./warehouse-{name}",
            "catalog": {"type": "sql", "uri": f"sqlite:///.lakestack/catalog-{name}.db"},
            "engine": "spark",
            "spark": {"master": master, "conf": {"spark.sql.shuffle.partitions": 2}},
        }
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def runs(project: Path) -> Iterator[dict[str, Any]]:
    """`lakestack run` on DuckDB and on Spark local[2], in this process (one Spark session)."""
    from lakestack import Lake
    from lakestack.engine.spark_session import stop_session

    reports = {}
    for env in ("dev", "spark"):
        lake = Lake.open(project, env)
        try:
            reports[env] = lake.run()
        except Exception as exc:  # a blocked gate is reported by raising after the run; the tables stay
            reports[env] = exc
        finally:
            lake.close() if hasattr(lake, "close") else None
    yield reports
    stop_session()


def _tables(project: Path, env: str) -> dict[str, tuple[int, str]]:
    from lakestack import Lake

    warehouse = Lake.open(project, env).warehouse
    out = {}
    for identifier in warehouse.tables():
        if identifier.startswith("_lakestack."):
            continue  # per-run logs (run ids, times), compared through the check results below
        rows = warehouse.load(identifier).scan().to_arrow().to_pylist()
        out[identifier] = (len(rows), _digest([{k: v for k, v in r.items() if k != "_run_id"} for r in rows]))
    return out


def test_every_silver_and_gold_table_is_the_same_on_spark(project: Path, runs: dict[str, Any]) -> None:
    duck, spark = _tables(project, "dev"), _tables(project, "spark")
    assert any(t.startswith("silver.") for t in duck) and any(t.startswith("gold.") for t in duck)
    assert sorted(spark) == sorted(duck)
    different = {t: (duck[t], spark[t]) for t in duck if duck[t] != spark[t]}
    assert not different, f"tables differ between DuckDB and Spark: {different}"


def _checks(report: Any) -> list[tuple[Any, ...]]:
    checks = getattr(report, "checks", None)
    if checks is None:
        pytest.fail(f"the run did not report its checks: {report!r}")
    return sorted(
        (c.dataset, c.check, c.status, None if c.check_type == "freshness" else c.observed, c.failing_rows)
        for c in checks
    )


def test_every_check_result_is_the_same_on_spark(runs: dict[str, Any]) -> None:
    duck, spark = _checks(runs["dev"]), _checks(runs["spark"])
    assert len(duck) >= 10
    assert spark == duck
    assert not [c for c in spark if c[2] == "error"], "a check could not be evaluated on Spark"


MODELS = Path(__file__).resolve().parents[2] / "examples" / "northwind" / "models" / "gold"


def test_every_northwind_gold_model_gives_duckdb_s_result_on_spark(project: Path, runs: dict[str, Any]) -> None:
    """All seven example models (small Northwind builds three), each in both engines' sandboxes
    over the same tables: the same rows and the same Arrow schema (DuckDB's types)."""
    from lakestack import Lake
    from lakestack.engine import create_engine
    from lakestack.engine.base import MODEL_LIMITS, SqlInput

    warehouse = Lake.open(project, "dev").warehouse
    inputs = [SqlInput(t, warehouse.load(t)) for t in warehouse.tables() if t.split(".")[0] in ("silver", "gold")]
    results: dict[str, dict[str, Any]] = {"dev": {}, "spark": {}}
    order = ["dim_products", "dim_date", "dim_customers", "daily_order_metrics", "customer_segments"]
    order += ["product_performance", "fact_sales"]
    environments = {"dev": None, "spark": Lake.open(project, "spark").env}
    for env, environment in environments.items():
        with create_engine(environment, purpose="gold", limits=MODEL_LIMITS) as engine:
            for model in order:
                staged = [SqlInput(f"gold.{m}", t) for m, t in results["dev"].items() if m == "dim_products"]
                given = [i for i in inputs if i.name != "gold.dim_products"] + staged
                sql = engine.transpile((MODELS / f"{model}.sql").read_text(encoding="utf-8"), label=model)
                with engine.open_sandbox(given, MODEL_LIMITS, label=f"model {model}") as sandbox:
                    results[env][model] = sandbox.table(sql)
    for model in order:
        duck, spark = results["dev"][model], results["spark"][model]
        assert duck.num_rows > 0, model
        assert spark.schema == duck.schema, model
        assert _digest(spark.to_pylist()) == _digest(duck.to_pylist()), model


def test_model_sql_that_spark_cannot_take_is_named() -> None:
    from lakestack.engine.base import SqlFailed, transpile

    with pytest.raises(SqlFailed, match="model bad cannot be translated to spark"):
        transpile("SELECT a FROM t ASOF JOIN u ON t.k = u.k", "spark", label="model bad")


def test_without_pyspark_engine_spark_exits_2_naming_the_extra(tmp_path: Path, project: Path) -> None:
    """A child whose `import pyspark` fails (a sitecustomize blocks it): exit 2, the pip line."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys
            class _NoSpark:
                def find_spec(self, name, path=None, target=None):
                    if name == "pyspark" or name.startswith("pyspark."):
                        raise ImportError(f"No module named {name!r}", name=name)
                    return None
            sys.meta_path.insert(0, _NoSpark())
            """
        )
    )
    done = cli(project, "-e", "spark", "build", timeout=120, PYTHONPATH=str(blocker))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'lakestack[spark]'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_session_that_cannot_start_exits_3_with_the_java_error(project: Path) -> None:
    done = cli(project, "-e", "spark", "build", timeout=120, JAVA_HOME="/nonexistent/java-home")
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    assert "did not start" in out and "/nonexistent/java-home" in out, out
    assert "Traceback" not in out


@pytest.fixture(scope="module")
def cluster(runs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master and one worker on loopback, started with the package's `spark-class`
    (pyspark ships no start-master.sh / start-worker.sh, only `bin/spark-class`)."""
    import pyspark

    from lakestack.engine.spark_session import stop_session

    stop_session()  # one SparkContext per process: the local one goes first
    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    logs = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    common = ["--host", "127.0.0.1"]
    master = subprocess.Popen(
        [str(spark_class), "org.apache.spark.deploy.master.Master", *common, "--port", str(port), "--webui-port", "0"],
        env=env,
        stdout=(logs / "master.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"spark://127.0.0.1:{port}"
    worker_args = ["--cores", "2", "--memory", "1g", "--work-dir", str(logs / "work")]
    worker = subprocess.Popen(
        [str(spark_class), "org.apache.spark.deploy.worker.Worker", *common, "--webui-port", "0", *worker_args, url],
        env=env,
        stdout=(logs / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "Successfully registered with master" not in (logs / "worker.log").read_text(errors="replace"):
            assert master.poll() is None and worker.poll() is None, (logs / "master.log").read_text()
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()
            time.sleep(0.5)
        yield url
    finally:
        stop_session()
        for process in (worker, master):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_the_gold_build_runs_on_a_standalone_cluster(project: Path, runs: dict[str, Any], cluster: str) -> None:
    """Gold rebuilt from the spark environment's Silver by a session on the standalone master:
    the same Gold tables as DuckDB's."""
    from lakestack import Lake

    config = yaml.safe_load((project / "lakestack.yaml").read_text(encoding="utf-8"))
    config["environments"]["cluster"] = {
        **config["environments"]["spark"],
        "spark": {"master": cluster, "conf": {"spark.sql.shuffle.partitions": 2, "spark.cores.max": 2}},
    }
    (project / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    lake = Lake.open(project, "cluster")
    from pyspark.sql import SparkSession

    try:
        lake.build(full_refresh=True)
    except Exception as exc:  # a blocked Gold gate raises after the build, as on DuckDB
        if "quality gate" not in str(exc) and "blocked" not in str(exc):
            raise
    active = SparkSession.getActiveSession()
    assert active is not None and active.sparkContext.master == cluster
    duck = {t: v for t, v in _tables(project, "dev").items() if t.startswith("gold.")}
    on_cluster = {t: v for t, v in _tables(project, "spark").items() if t.startswith("gold.")}
    assert duck and on_cluster == duck


def test_catalog_native_without_the_iceberg_runtime_jar_is_refused(project: Path, cluster: str) -> None:
    """`spark.catalog: native` is for clusters with the Iceberg Spark runtime (EMR, Glue); here,
    without the jar, the session is refused with a line that says so (exit 3)."""
    from lakestack.config import EnvironmentConfig
    from lakestack.engine import create_engine
    from lakestack.engine.spark_session import SparkStartError, stop_session

    stop_session()
    environment = EnvironmentConfig(engine="spark", spark={"master": "local[1]", "catalog": "native"})
    with pytest.raises(SparkStartError, match="Iceberg Spark runtime jar") as raised:
        create_engine(environment, purpose="gold")
    assert raised.value.exit_code == 3


def test_a_silver_merge_over_stored_rows_is_the_same_on_spark(project: Path, runs: dict[str, Any]) -> None:
    """The MERGE path with contested keys (updates and inserts into stored partitions; a first run
    only inserts): the same Bronze-shaped batch merged into each environment's silver.orders.
    Last in the module: it changes Silver after the Gold comparisons."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakestack import Lake
    from lakestack.pipeline.silver import LINEAGE, SilverPromotion, model_from_config

    dev = Lake.open(project, "dev")
    model = model_from_config("orders", dev.project)
    bronze = dev.warehouse.load("bronze.orders").scan().to_arrow()
    batch = bronze.select([f.name for f in model.contract.fields] + list(LINEAGE)).slice(0, 40)
    later = pc.add(batch["updated_at"], pa.scalar(3_600_000_000, pa.duration("us")))
    batch = batch.set_column(batch.schema.get_field_index("updated_at"), "updated_at", later)
    results = {}
    for env in ("dev", "spark"):
        lake = Lake.open(project, env)
        result = SilverPromotion(model, lake.warehouse, "merge-test", lake.env).merge_arrow(batch, "merge-test")
        results[env] = (result.inserted, result.updated)
    assert results["spark"] == results["dev"] and results["dev"][1] > 0
    duck, spark = _tables(project, "dev"), _tables(project, "spark")
    assert spark["silver.orders"] == duck["silver.orders"]

"""The Spark session lakestack runs on: `local[N]` or a cluster's master URL, offline-safe.

PySpark from PyPI cannot fetch Maven packages here (no Ivy, no Iceberg runtime), so the session is
plain Spark: lakestack plans Iceberg scans with pyiceberg, Spark reads the planned Parquet files,
and lakestack commits what Spark wrote (ADR 0024). The environment block chooses the master::

    environments:
      cluster:
        engine: spark
        spark:
          master: spark://10.0.0.5:7077     # default local[2]
          app_name: lakestack-northwind
          conf: {spark.executor.memory: 4g}
          catalog: planned                  # or `native` where the Iceberg runtime jar is present

One session per process (Spark's own rule); the JVM's log goes to a file, never to the console.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from lakestack.errors import RunError

log = logging.getLogger(__name__)

# What every session gets: nothing fetched at start, no web UI, small shuffles, UTC like DuckDB.
OFFLINE_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.jars.packages": "",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "1g",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.parquet.int96AsTimestamp": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.useLargeVarTypes": "false",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.sql.warehouse.dir": os.path.join(tempfile.gettempdir(), "lakestack-spark-warehouse"),
}
NATIVE_CATALOG_CLASS = "org.apache.iceberg.spark.SparkCatalog"
_LOCK = threading.Lock()


class SparkStartError(RunError):
    """The Spark session could not start (no Java, a bad setting, an unreachable master): exit 3
    with the Java error's first line."""


def settings_of(environment: Any) -> dict[str, Any]:
    """`master`, `app_name`, `conf` and `catalog` from the environment's `spark:` block (defaults
    when the block or the environment is missing)."""
    block = getattr(environment, "spark", None)
    return {
        "master": str(getattr(block, "master", None) or "local[2]"),
        "app_name": str(getattr(block, "app_name", None) or "lakestack"),
        "conf": {str(k): str(v) for k, v in (getattr(block, "conf", None) or {}).items()},
        "catalog": str(getattr(block, "catalog", None) or "planned"),
    }


def session_conf(master: str, app_name: str, conf: dict[str, str]) -> dict[str, str]:
    """Every setting the session starts with: the offline defaults, the worker Python (this
    interpreter: executors import lakestack to write data files), then the project's own."""
    out = {**OFFLINE_CONF, "spark.master": master, "spark.app.name": app_name}
    out["spark.pyspark.python"] = sys.executable
    out["spark.pyspark.driver.python"] = sys.executable
    if master.startswith("local"):
        out["spark.driver.host"] = "127.0.0.1"
        out["spark.driver.bindAddress"] = "127.0.0.1"
    return {**out, **conf}


def get_session(environment: Any = None) -> Any:
    """The process's SparkSession for `environment`, started on first use.

    An existing session with another master is stopped first (one SparkContext per JVM). A
    session that cannot start raises :class:`SparkStartError` with the Java error's first line."""
    settings = settings_of(environment)
    conf = session_conf(settings["master"], settings["app_name"], settings["conf"])
    with _LOCK:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None and active.sparkContext.master == settings["master"]:
            return active
        if active is not None:
            active.stop()
        session = _start(conf)
        if settings["catalog"] == "native":
            try:
                _check_native_catalog(session)
            except SparkStartError:
                session.stop()
                raise
        return session


def stop_session() -> None:
    """Stop the process's session (and its JVM's context); a later `get_session` starts a new one."""
    with _LOCK:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()


def _start(conf: dict[str, str]) -> Any:
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    spark_conf = SparkConf(loadDefaults=False).setAll(list(conf.items()))
    # PySpark takes the workers' Python from the environment only; they import lakestack and pyarrow.
    os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
    log_path = driver_log_path()
    stderr = log_path.open("ab")
    try:
        # The JVM's stderr goes to a file: Spark's log stays off the console, and a failed start
        # leaves the Java error where we can quote it.
        gateway = launch_gateway(spark_conf, popen_kwargs={"stderr": stderr, "stdout": stderr})  # type: ignore[no-untyped-call]
        context = SparkContext(conf=spark_conf, gateway=gateway)
        context.setLogLevel("ERROR")
        # PySpark logs every failed statement with its Java stack trace; lakestack reports it in one line.
        logging.getLogger("SQLQueryContextLogger").disabled = True
        return SparkSession(context)
    except Exception as exc:
        raise SparkStartError(
            f"the Spark session ({conf['spark.master']}) did not start: {java_error(exc, log_path)}"
        ) from None
    finally:
        stderr.close()


def driver_log_path() -> Path:
    """Where the driver JVM's output goes (one file per process, in the temp folder)."""
    return Path(tempfile.gettempdir()) / f"lakestack-spark-{os.getpid()}.log"


def java_error(exc: BaseException, log_path: Path | None = None) -> str:
    """The first line of the Java error behind `exc` (a Py4J Java exception, or what the JVM
    printed before it exited), without Spark's stack trace."""
    java = getattr(exc, "java_exception", None)
    text = str(java) if java is not None else str(exc)
    if "JAVA_GATEWAY_EXITED" in text or java is None:
        printed = _first_error_line(log_path) if log_path is not None else None
        if printed:
            return printed
    return first_line(text)


def first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith("at "):
            return line[:500]
    return "(no message)"


def _first_error_line(path: Path) -> str | None:
    try:
        lines = path.read_text(errors="replace").splitlines()[-200:]
    except OSError:
        return None
    markers = ("Error", "Exception", "error:", "No such file", "not found", "cannot", "Invalid")
    for line in lines:
        if any(m in line for m in markers) and not line.lstrip().startswith("at "):
            return line.strip()[:500]
    return None


def _check_native_catalog(session: Any) -> None:
    """`catalog: native` needs the Iceberg Spark runtime on the classpath (EMR, Glue, a `spark.jars`)."""
    try:
        session.sparkContext._jvm.java.lang.Class.forName(NATIVE_CATALOG_CLASS)
    except Exception as exc:
        raise SparkStartError(
            "spark catalog: native needs the Iceberg Spark runtime jar on the classpath "
            f"({NATIVE_CATALOG_CLASS} not found: {first_line(str(exc))}); add it with spark.jars "
            "or use catalog: planned (the default)"
        ) from None

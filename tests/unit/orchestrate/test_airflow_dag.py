"""`lakestack export airflow` without Airflow: the file compiles, imports only Airflow and the
standard library, and its task table has the seeds' gating, retries, SLA timeouts and run id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from airflow_support import NORTHWIND_TASKS, dag_constant, dag_tasks, imported_modules, northwind_project
from lakestack.orchestrate.airflow import ProjectShape, plan_dag, render_dag


def _export(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(root), "export", "airflow", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_northwind_dag_has_the_gated_task_graph(tmp_path: Path) -> None:
    root = northwind_project(tmp_path / "nw", freshness="20m", cron="30 2 * * *")
    done = _export(root, "-o", str(tmp_path / "dags"), "--retries", "3", "--timeout", "5400", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    path = Path(report["path"])
    assert path == tmp_path / "dags" / "lakestack_northwind_dev.py"
    source = path.read_text()
    compile(source, str(path), "exec")  # a DAG file that does not compile is an import error in Airflow
    assert {m.partition(".")[0] for m in imported_modules(source)} <= {
        "__future__",
        "airflow",
        "datetime",
        "os",
        "shlex",
    }
    assert "lakestack" not in {m.partition(".")[0] for m in imported_modules(source)}
    tasks = dag_tasks(source)
    assert {t: (v["args"], v["upstream"]) for t, v in tasks.items()} == NORTHWIND_TASKS
    assert all(v["retries"] is None for v in tasks.values())  # the default: 3; exit 4 is never retried
    assert "skip_on_exit_code=GATE_FAILED" in source and "raise AirflowFailException" in source
    assert dag_constant(source, "RETRIES") == 3
    assert dag_constant(source, "TIMEOUT_S") == 5400
    assert tasks["promote"]["timeout_s"] == 20 * 60  # slas.yaml: silver.orders max_age 20m
    assert {t for t, v in tasks.items() if v["timeout_s"] is not None} == {"promote"}
    assert dag_constant(source, "SCHEDULE") == "30 2 * * *"  # schedules: run
    assert dag_constant(source, "PROJECT") == str(root.resolve())
    assert '"LAKESTACK_RUN_ID": "{{ run_id }}"' in source  # one run id for each step of a DAG run
    by_id = {t["task_id"]: t for t in report["tasks"]}
    assert by_id["gate_silver"]["retries"] == 3 and by_id["build"]["timeout_s"] == 5400


def test_plan_covers_streams_http_sources_and_publish() -> None:
    shape = ProjectShape(
        name="shop",
        root="/srv/shop",
        environment="prod",
        sources={"orders": "files", "clicks": "kafka", "beacons": "http"},
        checked=frozenset({"silver.orders", "gold.daily"}),
        silver=("orders",),
        gold=("daily",),
        publishes=True,
        freshness={},
        run_cron=None,
    )
    plan = plan_dag(shape, lakestack_bin="/opt/lakestack/bin/lakestack")
    edges = {t.task_id: t.upstream for t in plan.tasks}
    assert edges == {
        "ingest_orders": (),
        "ingest_clicks": (),
        "promote": ("ingest_orders", "ingest_clicks"),  # no bronze checks: no gate(bronze)
        "gate_silver": ("promote",),
        "build": ("gate_silver",),
        "gate_gold": ("build",),
        "publish": ("gate_gold",),
    }
    assert plan.skipped_sources == ("beacons",)
    assert next(t for t in plan.tasks if t.task_id == "ingest_clicks").args == (
        "stream",
        "clicks",
        "--until-idle",
        "30",
    )
    source = render_dag(plan)
    compile(source, "dag.py", "exec")
    assert "beacons" in source and dag_constant(source, "SCHEDULE") is None
    assert """os.environ.get("LAKESTACK_BIN", '/opt/lakestack/bin/lakestack')""" in source


def test_export_refuses_bad_input(tmp_path: Path) -> None:
    root = northwind_project(tmp_path / "nw", cron=None)
    (tmp_path / "file").write_text("x")
    done = _export(root, "-o", str(tmp_path / "file"))
    assert done.returncode == 2 and "not a folder" in done.stderr and "Traceback" not in done.stderr
    done = _export(root, "-o", str(tmp_path / "d"), "--dag-id", "bad id!")
    assert done.returncode == 2 and "--dag-id" in done.stderr


def test_run_id_seam(tmp_path: Path) -> None:
    """`--run-id` / LAKESTACK_RUN_ID is the run id the step records (what each DAG task passes)."""
    root = northwind_project(tmp_path / "nw", cron=None)
    run_id = "manual__2026-12-03T08:47:39.123456+00:00"
    env = {"LAKESTACK_RUN_ID": run_id, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(root), "check", "silver.orders", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run_id"] == run_id
    done = subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(root), "--run-id", "bad id", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "run id" in done.stderr and "Traceback" not in done.stderr

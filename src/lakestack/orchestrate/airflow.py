"""`lakestack export airflow`: the project's pipeline as an Airflow DAG of lakestack CLI steps.

The DAG has the gating of `lakestack run`, one task per step::

    ingest_<source> ... → gate_bronze → promote → gate_silver → build → gate_gold → publish

- a step is the CLI (`lakestack ingest orders`, `lakestack check bronze.orders ...`) run by a
  BashOperator: the DAG file imports only Airflow, so it parses on a scheduler that does not have
  lakestack installed, and the workers need only the `lakestack` command;
- every step of one DAG run gets the same lakestack run id, Airflow's `run_id`, through
  `LAKESTACK_RUN_ID`: rows, run records and lineage of the whole DAG run share it;
- a gate is `lakestack check` of the layer's datasets that have checks (exit 4 when a `fail` check
  fails: the task fails and nothing downstream runs); a layer without checks has no gate task;
  `build` exits 4 itself when a Gold model's checks block it (write-audit-publish);
- retries for every step, except that exit 4 (a failed gate: the same data fails again) fails the
  task at once (`LakestackStep`: BashOperator's `skip_on_exit_code=4` turned into
  AirflowFailException);
- an SLA's `max_age` (slas.yaml, freshness) on a dataset is the `execution_timeout` of the step that
  writes it: a step running longer cannot keep the dataset that fresh; other steps get the default;
- the DAG's schedule is the `run` cron of the project's `schedules:` block (read in UTC; a cron with
  seconds is not carried over), else none (triggered).

`plan_dag` (pure) decides the tasks; `render_dag` (pure) writes the Python source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

STREAM_KINDS = ("kafka", "kinesis", "nats")  # caught up and stopped: `lakestack stream SOURCE --until-idle`
STREAM_IDLE_S = 30


@dataclass(frozen=True, slots=True)
class DagTask:
    """One step: `lakestack <args>` after every task in `upstream`."""

    task_id: str
    args: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    retries: int | None = None  # None: the DAG's default
    timeout_s: int | None = None  # None: the DAG's default
    writes: tuple[str, ...] = ()  # the datasets the step writes (for the SLA timeouts)


@dataclass(frozen=True, slots=True)
class DagPlan:
    dag_id: str
    project: str
    project_root: str
    environment: str
    tasks: tuple[DagTask, ...]
    schedule: str | None
    retries: int
    retry_delay_s: int
    timeout_s: int
    lakestack_bin: str
    skipped_sources: tuple[str, ...] = ()  # http sources: collected by `lakestack serve`, not a DAG step


@dataclass(frozen=True, slots=True)
class ProjectShape:
    """What the DAG is planned from, read from the project (no catalog needed)."""

    name: str
    root: str
    environment: str
    sources: Mapping[str, str]  # name → kind
    checked: frozenset[str]  # datasets with checks (bronze.x, silver.y, gold.z)
    silver: tuple[str, ...]
    gold: tuple[str, ...]
    publishes: bool
    freshness: Mapping[str, timedelta]  # dataset → the tightest freshness max_age
    run_cron: str | None


def plan_dag(
    shape: ProjectShape,
    *,
    retries: int = 2,
    retry_delay_s: int = 300,
    timeout_s: int = 3600,
    lakestack_bin: str = "lakestack",
    dag_id: str | None = None,
) -> DagPlan:
    """The tasks and edges of the DAG for a project."""
    tasks: list[DagTask] = []
    frontier: tuple[str, ...] = ()

    def add(task: DagTask) -> None:
        nonlocal frontier
        timeout = _sla_timeout(task.writes, shape.freshness)
        tasks.append(DagTask(task.task_id, task.args, frontier, task.retries, timeout, task.writes))
        frontier = (task.task_id,)

    ingests, skipped = [], []
    for name, kind in shape.sources.items():
        if kind == "http":
            skipped.append(name)
            continue
        args = ("stream", name, "--until-idle", str(STREAM_IDLE_S)) if kind in STREAM_KINDS else ("ingest", name)
        writes = (f"bronze.{name}",)
        ingests.append(DagTask(f"ingest_{name}", args, (), None, _sla_timeout(writes, shape.freshness), writes))
    tasks += ingests
    frontier = tuple(t.task_id for t in ingests)
    _gate(add, "bronze", [f"bronze.{s}" for s in shape.sources], shape.checked)
    if shape.silver:
        add(DagTask("promote", ("promote",), writes=tuple(f"silver.{d}" for d in shape.silver)))
        _gate(add, "silver", [f"silver.{d}" for d in shape.silver], shape.checked)
    if shape.gold:
        add(DagTask("build", ("build",), writes=tuple(f"gold.{m}" for m in shape.gold)))
        _gate(add, "gold", [f"gold.{m}" for m in shape.gold], shape.checked)
    if shape.publishes:
        add(DagTask("publish", ("publish",)))
    return DagPlan(
        dag_id or _dag_id(shape.name, shape.environment),
        shape.name,
        shape.root,
        shape.environment,
        tuple(tasks),
        shape.run_cron,
        retries,
        retry_delay_s,
        timeout_s,
        lakestack_bin,
        tuple(skipped),
    )


def _gate(add: Any, layer: str, datasets: Sequence[str], checked: frozenset[str]) -> None:
    gated = [d for d in datasets if d in checked]
    if gated:
        add(DagTask(f"gate_{layer}", ("check", *gated)))


def _sla_timeout(writes: Sequence[str], freshness: Mapping[str, timedelta]) -> int | None:
    ages = [freshness[d] for d in writes if d in freshness]
    return int(min(ages).total_seconds()) if ages else None


def _dag_id(project: str, environment: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"lakestack_{project}_{environment}")


# -- rendering -----------------------------------------------------------------------------------

_TEMPLATE = '''"""lakestack pipeline of project {project!r}, environment {environment!r}, as an Airflow DAG.

Written by `lakestack export airflow`; export again after changing the project rather than editing it.
Each task runs the lakestack CLI (`{lakestack_bin}` on the worker's PATH, or $LAKESTACK_BIN) on the
project folder below; every task of one DAG run passes Airflow's run id as the lakestack run id.
Gates are `lakestack check` (exit 4 when a `fail` check fails) and `lakestack build`'s audit of each
Gold model: exit 4 fails the task at once (no retries) and nothing downstream runs.
{skipped}"""

from __future__ import annotations

import datetime as dt
import os
import shlex

try:  # Airflow 3: the task SDK
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
try:  # Airflow 3, and 2.x with apache-airflow-providers-standard
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2.x
    from airflow.operators.bash import BashOperator
try:  # Airflow 3
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 2.x
    from airflow.exceptions import AirflowFailException, AirflowSkipException

PROJECT = {project_root!r}
ENVIRONMENT = {environment!r}
LAKESTACK = os.environ.get("LAKESTACK_BIN", {lakestack_bin!r})
SCHEDULE = {schedule!r}  # the `run` cron of the project's schedules: block (None: triggered only)
RETRIES = {retries!r}
RETRY_DELAY_S = {retry_delay_s!r}
TIMEOUT_S = {timeout_s!r}  # a step's execution_timeout when no SLA sets a shorter one

# (task id, lakestack arguments, upstream task ids, retries (None: RETRIES), timeout s (None: TIMEOUT_S))
TASKS = [
{tasks}]

GATE_FAILED = 4  # lakestack's exit code when a quality gate (a check, a Gold audit) failed


class LakestackStep(BashOperator):
    """A lakestack command; its exit 4 (a gate failed) fails the task without retries, since the
    same data fails the same checks again. Other failures (exit 3: the catalog, a lock) are retried."""

    def __init__(self, **kwargs):
        super().__init__(skip_on_exit_code=GATE_FAILED, **kwargs)

    def execute(self, context):
        try:
            return super().execute(context)
        except AirflowSkipException as exc:  # raised for skip_on_exit_code: exit 4
            raise AirflowFailException("lakestack: a quality gate failed (exit 4); not retried") from exc


ENV = {{
    "LAKESTACK_PROJECT": PROJECT,
    "LAKESTACK_ENV": ENVIRONMENT,
    "LAKESTACK_RUN_ID": "{{{{ run_id }}}}",  # one lakestack run id for every step of the DAG run
}}

with DAG(
    dag_id={dag_id!r},
    description={description!r},
    schedule=SCHEDULE,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,  # one pipeline run at a time (lakestack also holds a project lock)
    default_args={{"retries": RETRIES, "retry_delay": dt.timedelta(seconds=RETRY_DELAY_S)}},
    tags=["lakestack", {project!r}, ENVIRONMENT],
    doc_md=__doc__,
) as dag:
    steps = {{}}
    for task_id, args, upstream, retries, timeout_s in TASKS:
        steps[task_id] = LakestackStep(
            task_id=task_id,
            bash_command=" ".join(shlex.quote(part) for part in (LAKESTACK, *args)),
            env=ENV,
            append_env=True,
            retries=RETRIES if retries is None else retries,
            execution_timeout=dt.timedelta(seconds=TIMEOUT_S if timeout_s is None else timeout_s),
        )
        for before in upstream:
            steps[before] >> steps[task_id]
'''


def render_dag(plan: DagPlan) -> str:
    """The DAG file's source: Airflow imports only, the tasks as a literal table."""
    rows = "".join(
        f"    ({t.task_id!r}, {list(t.args)!r}, {list(t.upstream)!r}, {t.retries!r}, {t.timeout_s!r}),\n"
        for t in plan.tasks
    )
    skipped = (
        f"HTTP sources ({', '.join(plan.skipped_sources)}) are collected by `lakestack serve`, not by this DAG.\n"
        if plan.skipped_sources
        else ""
    )
    return _TEMPLATE.format(
        project=plan.project,
        project_root=plan.project_root,
        environment=plan.environment,
        lakestack_bin=plan.lakestack_bin,
        schedule=plan.schedule,
        retries=plan.retries,
        retry_delay_s=plan.retry_delay_s,
        timeout_s=plan.timeout_s,
        tasks=rows,
        dag_id=plan.dag_id,
        description=f"lakestack: ingest → gates → promote → build → publish ({plan.environment})",
        skipped=skipped,
    )


# -- from a project ------------------------------------------------------------------------------


def project_shape(lake: Any) -> ProjectShape:
    """What `plan_dag` needs, read from an opened lake's project files (the catalog is not opened)."""
    from lakestack.monitor.sla_spec import FreshnessSla, load_slas, parse_duration

    config = lake.project.config
    freshness: dict[str, timedelta] = {}
    spec = load_slas(lake.project.root, config)
    for sla in spec.slas.values() if spec is not None else ():
        if isinstance(sla, FreshnessSla):
            age = parse_duration(sla.max_age)
            freshness[sla.dataset] = min(age, freshness.get(sla.dataset, age))
    run = config.schedules.get("run")
    return ProjectShape(
        name=lake.project.name,
        root=str(Path(lake.project.root).resolve()),
        environment=lake.environment,
        sources={name: source.kind for name, source in config.sources.items()},
        checked=frozenset(lake.dataset_checks()),
        silver=tuple(lake.silver_datasets()),
        gold=tuple(lake.gold_models()),
        publishes=bool(config.publish),
        freshness=freshness,
        run_cron=run.cron if run is not None and len(run.cron.split()) <= 5 else None,  # Airflow: no seconds
    )


def export_airflow(lake: Any, out: Path, **options: Any) -> tuple[Path, DagPlan]:
    """Write the DAG of `lake`'s project into the folder `out`; the file and the plan."""
    plan = plan_dag(project_shape(lake), **options)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{plan.dag_id}.py"
    tmp = path.with_suffix(".py.tmp")
    tmp.write_text(render_dag(plan), encoding="utf-8")
    tmp.replace(path)  # a scheduler parsing the folder never sees half a file
    return path, plan

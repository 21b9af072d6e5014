"""`Lake`: the one entry point. Open a project, ingest, and look at what landed.

>>> lake = Lake.open("examples/northwind")
>>> report = lake.ingest()
>>> report.landed, report.quarantined
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from lakestack.config import EnvironmentConfig
from lakestack.errors import ConfigError, Location, ProjectError, StorageError, UsageError
from lakestack.ingest.base import IngestObserver, NullObserver, SourceReport, source_class
from lakestack.pipeline.events import CheckOutcome, DatasetIO, JobHandle, RunEvents, RunListener
from lakestack.pipeline.project import Project
from lakestack.pipeline.runs import IngestReport, new_run_id

Step = Callable[[str, str], Callable[[], None]]
log = logging.getLogger(__name__)
STREAM_PROGRESS_S = 5.0  # a stream session tells listeners its running totals at most this often
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _exclusive(command: str) -> Callable[[Callable[Concatenate[Lake, _P], _R]], Callable[Concatenate[Lake, _P], _R]]:
    """Run a Lake method holding the project lock (see pipeline/lock.py); nested calls share it."""

    def wrap(method: Callable[Concatenate[Lake, _P], _R]) -> Callable[Concatenate[Lake, _P], _R]:
        def locked(self: Lake, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            with self.locked(command):
                try:
                    return method(self, *args, **kwargs)
                except Exception as exc:
                    lost = _catalog_connection_error(exc)
                    if lost is None:
                        raise
                    raise StorageError(
                        f"{command} lost its connection to the catalog ({lost}); what it committed before "
                        "stays committed, and the next run goes on from there"
                    ) from exc

        functools.update_wrapper(locked, method)
        return locked

    return wrap


def _catalog_connection_error(exc: BaseException) -> str | None:
    """`Name: first line` when the catalog's database connection failed (a driver error anywhere
    in the chain: the server went away, the network was cut), else None."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        kind = type(seen)
        if kind.__module__.split(".")[0] in ("sqlalchemy", "psycopg") and kind.__name__ in (
            "OperationalError",
            "InterfaceError",
        ):
            text = str(seen).strip().splitlines()
            return f"{kind.__name__}: {text[0][:200] if text else 'no message'}"
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def _step(step: Step | None, stage: str, dataset: str) -> Iterator[None]:
    """Tell an optional progress display that one dataset of a stage runs, and when it is done."""
    done = step(stage, dataset) if step is not None else None
    yield
    if done is not None:
        done()


@dataclass(frozen=True, slots=True)
class TableInfo:
    identifier: str
    rows: int
    files: int
    snapshots: int
    last_commit: datetime | None
    last_run: str | None
    location: str


@dataclass(frozen=True, slots=True)
class SourceStatus:
    source: str
    kind: str
    contract: str
    landing: str
    pending_files: int
    ingested_files: int
    bronze_rows: int
    quarantined_rows: int
    last_commit: datetime | None


class Lake:
    """A project opened in one environment: its catalog, warehouse and sources."""

    def __init__(
        self,
        project: Project,
        environment: str | None = None,
        *,
        lock_wait: float = 0.0,
        listeners: Sequence[RunListener] = (),
    ) -> None:
        from lakestack.pipeline.records import RunRecorder

        self.project = project
        self.lock_wait = lock_wait  # seconds ingest/promote/build/run wait for another run's project lock
        self._lock_depth = 0
        self.environment = environment or project.config.default_environment
        if self.environment not in project.config.environments:
            raise ConfigError(
                f"unknown environment '{self.environment}' (defined: {', '.join(project.config.environments)})"
            )
        self._warehouse: Any = None
        # Every job reports through `events` (pipeline/events.py); run records always listen.
        self.events = RunEvents()
        self.recorder = RunRecorder(lambda: self.warehouse, self.events)
        self.events.add(self.recorder)
        for listener in listeners:
            self.events.add(listener)
        self._current_run: JobHandle | None = None  # the top-level run the jobs in progress belong to
        self._gate_failures: dict[str, list[str]] = {}  # dataset → its failing blocking checks

    @classmethod
    def open(
        cls,
        path: Path | str = ".",
        environment: str | None = None,
        *,
        lock_wait: float = 0.0,
        listeners: Sequence[RunListener] = (),
    ) -> Lake:
        return cls(Project.load(path), environment, lock_wait=lock_wait, listeners=listeners)

    def close(self) -> None:
        """Flush what listeners buffer (run records of a run that never ended)."""
        self.events.close()

    @contextmanager
    def _top(self, command: str, lake_run_id: str) -> Iterator[JobHandle]:
        """The run the jobs of a command belong to: the one in progress (a `run` promoting), else a
        new top-level run named after the command (a standalone `lakestack promote`)."""
        if self._current_run is not None:
            yield self._current_run
            return
        with self.events.job("run", command, lake_run_id=lake_run_id) as top:
            self._current_run = top
            try:
                yield top
            finally:
                self._current_run = None

    def _snapshots(self, identifiers: Sequence[str]) -> dict[str, tuple[int | None, int | None]]:
        """Each existing table's current snapshot id and total rows (from the snapshot summary)."""
        out: dict[str, tuple[int | None, int | None]] = {}
        for identifier in identifiers:
            if not self.warehouse.exists(identifier):
                continue
            snap = self.warehouse.load(identifier).current_snapshot()
            summary = snap.summary.additional_properties if snap and snap.summary else {}
            total = summary.get("total-records")
            out[identifier] = (snap.snapshot_id if snap else None, int(total) if total is not None else None)
        return out

    @contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """Hold the project lock for a block: one batch run at a time per project (pipeline/lock.py).

        Waits up to `lock_wait` seconds for another run, then raises ProjectLockedError naming it.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        from lakestack.pipeline.lock import project_lock

        lock = project_lock(self.env, self.project.root, self.project.name)
        lock.acquire(command, self.lock_wait)
        self._lock_depth = 1
        try:
            yield
        finally:
            self._lock_depth = 0
            lock.release()

    @property
    def env(self) -> EnvironmentConfig:
        return self.project.config.environments[self.environment]

    @property
    def warehouse(self) -> Any:
        if self._warehouse is None:
            from lakestack.storage.catalog import open_catalog
            from lakestack.storage.warehouse import Warehouse

            self._warehouse = Warehouse(open_catalog(self.env, self.project.root, self.project.name))
            self._warehouse.ensure_namespaces()
        return self._warehouse

    def _sources(self, names: list[str] | None) -> list[str]:
        known = list(self.project.config.sources)
        for name in names or []:
            if name not in known:
                raise UsageError(f"unknown source '{name}' (sources: {', '.join(known) or 'none'})")
        return names or known

    def source(self, name: str) -> Any:
        cfg = self.project.config.sources[name]
        cls = source_class(cfg.kind)
        if cfg.is_stream:
            return cls(name, self.project.contract(name), cfg, self.project.name)  # type: ignore[call-arg]
        landing, root = self.project.landing(name), self.project.root
        return cls(name, self.project.contract(name), landing, cfg.pattern, cfg.format, limits=cfg.limits, project=root)  # type: ignore[call-arg]

    # -- ingest --------------------------------------------------------------------------------
    @_exclusive("ingest")
    def ingest(
        self,
        sources: list[str] | None = None,
        *,
        files: list[str] | None = None,
        observer: IngestObserver | None = None,
        run_id: str | None = None,
    ) -> IngestReport:
        """Ingest new landing files of the given sources (all by default) into Bronze."""
        names = self._sources(sources)
        if files and len(names) != 1:
            raise UsageError("--file needs exactly one source")
        run_id = run_id or new_run_id()
        started, t0 = datetime.now(UTC), time.perf_counter()
        if sources is None:  # the HTTP collector is pushed to by `lakestack serve`; there is nothing to pull
            names = [n for n in names if self.project.config.sources[n].kind != "http"]
        reports: list[SourceReport] = []
        with self._top("ingest", run_id) as top:
            for name in names:
                with self.events.job("ingest", f"ingest.{name}", parent=top.run) as job:
                    source = self.source(name)
                    report = source.ingest(self.warehouse, run_id, observer or NullObserver(), only=files)
                    reports.append(report)
                    self._report_ingest(job, name, report)
        return IngestReport(run_id, started, time.perf_counter() - t0, tuple(reports))

    def _report_ingest(self, job: JobHandle, name: str, report: SourceReport) -> None:
        from lakestack.storage.schema import contract_schema

        read = [f for f in report.files if f.status in ("landed", "rejected")]
        landing = self.project.landing(name)
        where = str(landing.relative_to(self.project.root)) if landing.is_relative_to(self.project.root) else None
        job.dataset(
            DatasetIO(f"landing.{name}", "input", rows=report.rows_in, bytes=sum(f.size for f in read), source=where)
        )
        columns = tuple((f.name, str(f.field_type)) for f in contract_schema(self.project.contract(name)).fields)
        job.dataset(
            DatasetIO(
                f"bronze.{name}",
                "output",
                report.snapshots.get(f"bronze.{name}"),
                rows=report.landed,
                quarantined=report.quarantined,
                columns=columns,
            )
        )
        if report.quarantined:
            job.dataset(
                DatasetIO(
                    f"quarantine.{name}", "output", report.snapshots.get(f"quarantine.{name}"), rows=report.quarantined
                )
            )
        job.stage("ingest", report.duration_s)

    def stream(
        self,
        name: str,
        stop: Any,
        *,
        run_id: str | None = None,
        idle_stop: float | None = None,
        on_status: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run one broker source (Kafka, Kinesis, NATS) until `stop` is set; returns its StreamStats."""
        from lakestack.ingest.stream import StreamSource, run_stream

        self._sources([name])
        kind = self.project.config.sources[name].kind
        if kind == "http":
            raise UsageError(f"source '{name}' is the HTTP collector: producers push to it; run 'lakestack serve'")
        source = self.source(name)
        if not isinstance(source, StreamSource):
            raise UsageError(f"source '{name}' reads {kind}, not a stream; use 'lakestack ingest {name}'")
        run_id = run_id or new_run_id()
        with self.events.job("stream", f"stream.{name}", lake_run_id=run_id) as job:
            last = [time.monotonic()]

            def status(stats: Any) -> None:  # the stream's status, to the caller and, now and then, listeners
                if on_status is not None:
                    on_status(stats)
                if time.monotonic() - last[0] >= STREAM_PROGRESS_S:
                    last[0] = time.monotonic()
                    job.progress(**_stream_figures(stats))

            stats = run_stream(source, self.warehouse, run_id, stop, idle_stop=idle_stop, on_status=status)
            _report_stream(job, kind, name, stats)
        return stats

    @contextmanager
    def stream_session(self, name: str, stats: Callable[[], Any], run_id: str, kind: str = "http") -> Iterator[Any]:
        """One run for a session that is pushed to (the `serve` collector of one source): a thread
        tells listeners `stats()` every STREAM_PROGRESS_S until the block ends, then the totals."""
        import threading

        done = threading.Event()
        with self.events.job("stream", f"stream.{name}", lake_run_id=run_id) as job:

            def report() -> None:
                while not done.wait(STREAM_PROGRESS_S):
                    try:
                        job.progress(**_stream_figures(stats()))
                    except Exception as exc:  # progress is for listeners; the session goes on
                        log.warning("stream %s: no progress figures (%s)", name, exc)

            thread = threading.Thread(target=report, name=f"run-progress-{name}", daemon=True)
            thread.start()
            try:
                yield job
            finally:
                done.set()
                thread.join()
                _report_stream(job, kind, name, stats())

    # -- promote -------------------------------------------------------------------------------
    def silver_datasets(self, names: list[str] | None = None) -> list[str]:
        silver = [n for n, d in self.project.config.datasets.items() if d.layer == "silver"]
        for name in names or []:
            if name not in silver:
                raise UsageError(f"unknown silver dataset '{name}' (silver datasets: {', '.join(silver) or 'none'})")
        return names or silver

    @_exclusive("promote")
    def promote(
        self, datasets: list[str] | None = None, *, run_id: str | None = None, step: Step | None = None
    ) -> list[Any]:
        """Merge what Bronze committed since each Silver dataset's checkpoint into Silver."""
        from lakestack.pipeline.silver import SilverPromotion, model_from_config
        from lakestack.storage.schema import contract_schema

        run_id = run_id or new_run_id()
        results = []
        with self._top("promote", run_id) as top:
            for name in self.silver_datasets(datasets):
                model = model_from_config(name, self.project)
                if not self.warehouse.exists(f"bronze.{model.source}"):
                    raise UsageError(f"bronze.{model.source} does not exist yet: run 'lakestack ingest' first")
                with (
                    _step(step, "promote", model.identifier),
                    self.events.job("promote", f"promote.{name}", parent=top.run) as job,
                ):
                    bronze = f"bronze.{model.source}"
                    before = self._snapshots([bronze]).get(bronze, (None, None))[0]
                    result = SilverPromotion(model, self.warehouse, run_id).run()
                    results.append(result)
                    job.dataset(DatasetIO(bronze, "input", before, rows=result.bronze_rows))
                    columns = tuple((f.name, str(f.field_type)) for f in contract_schema(model.contract).fields)
                    written = result.inserted + result.updated
                    job.dataset(
                        DatasetIO(model.identifier, "output", result.snapshot_id, rows=written, columns=columns)
                    )
                    job.stage("merge", result.duration_s)
        return results

    # -- gold ----------------------------------------------------------------------------------
    def gold_models(self) -> dict[str, Any]:
        from lakestack.pipeline.gold import load_gold_model

        folder = self.project.root / "models" / "gold"
        if not folder.is_dir():
            return {}
        return {p.stem: load_gold_model(p, self.project.root) for p in sorted(folder.glob("*.sql"))}

    @_exclusive("build")
    def build(
        self,
        models: list[str] | None = None,
        *,
        full_refresh: bool = False,
        run_id: str | None = None,
        step: Step | None = None,
    ) -> list[Any]:
        """Build Gold models in dependency order (all by default); each is published only if its checks pass."""
        from lakestack.pipeline.gold import build_order
        from lakestack.pipeline.quality import Evaluation

        available = self.gold_models()
        for name in models or []:
            if name not in available:
                raise UsageError(f"unknown gold model '{name}' (models: {', '.join(available) or 'none'})")
        run_id = run_id or new_run_id()
        checks = self.dataset_checks()
        evaluation = Evaluation(self.warehouse, run_id)
        results = []
        with self._top("build", run_id) as top:

            def audit(dataset: str, staged: Any) -> bool:
                if dataset not in checks:
                    return True
                found = self._evaluate(top, evaluation, dataset, checks[dataset], staged=staged)
                return not any(r.blocks for r in found)

            for model in (m for m in build_order(available) if not models or m.name in models):
                with _step(step, "build", model.identifier):
                    results.append(self._build_one(top, model, run_id, full_refresh, audit))
            blocked = [r.dataset for r in results if r.mode == "blocked"]
            if blocked:
                top.fail(f"quality gate failed: blocked {', '.join(blocked)}", blocked=True)
        return results

    def _build_one(self, top: JobHandle, model: Any, run_id: str, full_refresh: bool, audit: Any) -> Any:
        """One Gold model as a `build` job: its upstream snapshots in, its table out."""
        from lakestack.pipeline.gold import GoldBuild

        path = model.path
        where = str(path.relative_to(self.project.root)) if path.is_relative_to(self.project.root) else str(path)
        with self.events.job("build", f"build.{model.name}", parent=top.run, sql=model.sql, source_file=where) as job:
            upstream = self._snapshots(model.upstream)
            try:
                result = GoldBuild(model, self.warehouse, run_id, self.project.root).run(full_refresh, audit)
            except Exception:  # what it was reading when it failed
                for name, (snapshot, _) in upstream.items():
                    job.dataset(DatasetIO(name, "input", snapshot))
                raise
            for name, (snapshot, rows) in upstream.items():  # a full build read every row of its inputs
                job.dataset(DatasetIO(name, "input", snapshot, rows=rows if result.mode == "full" else None))
            job.stage(result.mode, result.duration_s)
            if result.mode == "blocked":
                failing = ", ".join(self._gate_failures.get(model.identifier, [])) or "its checks"
                job.fail(f"gate({model.identifier}) failed: {failing}", blocked=True)
            elif result.mode != "skipped":
                table = self.warehouse.load(model.identifier)
                columns = tuple((f.name, str(f.field_type)) for f in table.schema().fields)
                job.dataset(
                    DatasetIO(model.identifier, "output", result.snapshot_id, rows=result.rows_written, columns=columns)
                )
        return result

    def _blocked_build(self, top: JobHandle, model: Any, blocked: set[str]) -> None:
        """A model a failed gate upstream kept from building: recorded, never run."""
        path = model.path
        where = str(path.relative_to(self.project.root)) if path.is_relative_to(self.project.root) else str(path)
        with self.events.job("build", f"build.{model.name}", parent=top.run, sql=model.sql, source_file=where) as job:
            gates = ", ".join(f"gate({u})" for u in model.upstream if u in blocked)
            job.fail(f"blocked upstream: {gates} failed", blocked=True)

    def _evaluate(
        self,
        top: JobHandle,
        evaluation: Any,
        dataset: str,
        checks: list[Any],
        *,
        staged: Any = None,
        drop: Callable[[list[Any]], int] | None = None,
    ) -> list[Any]:
        """The checks of one dataset as a `check` job (a failing blocking check ends it BLOCKED)."""
        with self.events.job("check", f"check.{dataset}", parent=top.run) as job:
            t0 = time.perf_counter()
            found: list[Any] = evaluation.run(dataset, checks, contract=self._contract_of(dataset), staged=staged)
            job.stage("evaluate", time.perf_counter() - t0)
            if staged is None:  # the table as the checks read it
                snapshot, rows = self._snapshots([dataset]).get(dataset, (None, None))
            else:  # a build's staged result, before it is published
                snapshot, rows = None, getattr(staged, "num_rows", None)
            job.dataset(DatasetIO(dataset, "input", snapshot, rows=rows))
            by_name = {c.check_name: c for c in checks}
            for r in found:
                columns = _checked_columns(by_name.get(r.check))
                job.check(
                    CheckOutcome(
                        r.dataset,
                        r.check,
                        r.check_type,
                        r.status in ("pass", "skipped"),
                        r.severity,
                        tuple(columns),
                        r.failing_rows,
                        r.message or None,
                    )
                )
            if drop is not None:
                dropped = drop(found)
                if dropped:
                    after = self._snapshots([dataset]).get(dataset, (None, None))[0]
                    job.dataset(DatasetIO(dataset, "output", after, rows=0, dropped=dropped))
            failing = [r.check for r in found if r.blocks]
            if failing:
                self._gate_failures[dataset] = failing
                job.fail(f"gate({dataset}) failed: {', '.join(failing)}", blocked=True)
        return found

    # -- quality -------------------------------------------------------------------------------
    def dataset_checks(self) -> dict[str, list[Any]]:
        """Checks per dataset: generated from contracts for Silver datasets, then `checks/*.yaml`."""
        from lakestack.pipeline.quality import contract_checks, load_check_files
        from lakestack.pipeline.silver import model_from_config

        out: dict[str, list[Any]] = {}
        for name in self.silver_datasets():
            model = model_from_config(name, self.project)
            generated = contract_checks(model.identifier, model.contract, model.key)
            out.setdefault(model.identifier, []).extend(generated.checks)
        known = self._datasets()
        for declared in load_check_files(self.project.root):
            if declared.dataset not in known:
                raise ProjectError(
                    f"checks for {declared.dataset}, which is not a dataset of this project "
                    f"(datasets: {', '.join(sorted(known))})",
                    Location(declared.source, 1),
                )
            for check in declared.checks:
                if check.severity == "drop" and not (declared.dataset.startswith("silver.") and check.row_level):
                    raise ProjectError(
                        f"severity drop applies to row-level checks on Silver datasets "
                        f"({check.check_name} on {declared.dataset})",
                        Location(declared.source, 1),
                    )
            out.setdefault(declared.dataset, []).extend(declared.checks)
        return out

    def _datasets(self) -> set[str]:
        names = {f"bronze.{s}" for s in self.project.config.sources}
        names |= {f"silver.{d}" for d in self.silver_datasets()}
        return names | {f"gold.{m}" for m in self.gold_models()}

    def _contract_of(self, dataset: str) -> Any:
        layer, _, name = dataset.partition(".")
        if layer == "bronze":
            return self.project.contract(name)
        if layer == "silver":
            from lakestack.pipeline.silver import model_from_config

            return model_from_config(name, self.project).contract
        return None

    def check(self, datasets: list[str] | None = None, *, run_id: str | None = None) -> list[Any]:
        """Evaluate the checks of the given datasets (all with checks by default) against their current data."""
        from lakestack.pipeline.quality import Evaluation

        checks = self.dataset_checks()
        for name in datasets or []:
            if name not in checks:
                raise UsageError(f"no checks for '{name}' (datasets with checks: {', '.join(sorted(checks))})")
        run_id = run_id or new_run_id()
        evaluation = Evaluation(self.warehouse, run_id)
        results: list[Any] = []
        with self._top("check", run_id) as top:
            for dataset in datasets or sorted(checks):
                if self.warehouse.exists(dataset):
                    results += self._evaluate(top, evaluation, dataset, checks[dataset])
            failing = sorted({r.dataset for r in results if r.blocks})
            if failing:
                top.fail(f"checks failed on {', '.join(failing)}", blocked=True)
        return results

    def check_results(self, run_id: str) -> list[dict[str, Any]]:
        """The check evaluations a run recorded."""
        return self._system_rows("_lakestack.check_results", run_id)

    def check_failures(self, run_id: str) -> list[dict[str, Any]]:
        """The failing-row samples (PII masked) a run recorded."""
        return self._system_rows("_lakestack.check_failures", run_id)

    def sample_columns(self, checks: set[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """For each (dataset, check name): the columns the check looks at, then the dataset's key —
        what a failing-row sample shows first."""
        from lakestack.pipeline.silver import model_from_config

        declared = self.dataset_checks()
        out: dict[tuple[str, str], list[str]] = {}
        for dataset, name in checks:
            check = next((c for c in declared.get(dataset, []) if c.check_name == name), None)
            columns = _checked_columns(check) if check is not None else []
            layer, _, short = dataset.partition(".")
            if layer == "silver" and short in self.silver_datasets():
                columns += [k for k in model_from_config(short, self.project).key if k not in columns]
            out[(dataset, name)] = columns
        return out

    def _system_rows(self, identifier: str, run_id: str) -> list[dict[str, Any]]:
        from pyiceberg.expressions import EqualTo

        if not self.warehouse.exists(identifier):
            return []
        condition: Any = EqualTo("run_id", run_id)  # type: ignore[call-arg, arg-type]
        rows = self.warehouse.load(identifier).scan(row_filter=condition).to_arrow().to_pylist()
        return sorted(rows, key=lambda r: (r["dataset"], r["check"]))

    # -- run -------------------------------------------------------------------------------------
    @_exclusive("run")
    def run(
        self, select: list[str] | None = None, *, full_refresh: bool = False, observer: IngestObserver | None = None
    ) -> Any:
        """ingest → gate(bronze) → promote → gate(silver) → build with gate(gold), under one run id.

        A failed gate stops everything downstream of the failed dataset; datasets that do not depend on
        it still run. Gold is written only after its checks pass (write-audit-publish).
        """
        run_id = new_run_id()
        with self._top("run", run_id) as top:
            report = self._run(top, run_id, select, full_refresh, observer)
            if report.blocked:
                top.fail(f"quality gate failed: blocked {', '.join(report.blocked)}", blocked=True)
        return report

    def _run(
        self, top: JobHandle, run_id: str, select: list[str] | None, full_refresh: bool, observer: IngestObserver | None
    ) -> Any:
        from lakestack.pipeline.gold import BuildResult, build_order
        from lakestack.pipeline.quality import Evaluation, drop_failing_rows
        from lakestack.pipeline.runs import RunReport
        from lakestack.pipeline.silver import model_from_config

        started, t0 = datetime.now(UTC), time.perf_counter()
        step = getattr(observer, "step", None)
        checks = self.dataset_checks()
        evaluation = Evaluation(self.warehouse, run_id)
        results: list[Any] = []
        blocked: set[str] = set()

        def gate(dataset: str, staged: Any = None) -> bool:
            if dataset not in checks or (staged is None and not self.warehouse.exists(dataset)):
                return True
            drop = None
            if dataset.startswith("silver."):
                model = model_from_config(dataset.partition(".")[2], self.project)

                def drop(found: list[Any]) -> int:
                    return drop_failing_rows(self.warehouse, model, checks[dataset], found, run_id)

            with _step(step, "check", dataset):
                found = self._evaluate(top, evaluation, dataset, checks[dataset], staged=staged, drop=drop)
            results.extend(found)
            if any(r.blocks for r in found):
                blocked.add(dataset)
                return False
            return True

        sources = [s for s in self.project.config.sources if not select or s in select]
        ingested = self.ingest(sources, observer=observer, run_id=run_id) if sources else None
        for source in sources:
            gate(f"bronze.{source}")
        promoted = []
        for name in (d for d in self.silver_datasets() if not select or d in select):
            model = model_from_config(name, self.project)
            if f"bronze.{model.source}" in blocked:
                blocked.add(model.identifier)
                continue
            promoted += self.promote([name], run_id=run_id, step=step)
        for result in promoted:  # gate(silver), once every Silver dataset is promoted (checks may join them)
            gate(result.dataset)
        built = []
        for gold in build_order(self.gold_models()):
            if select and gold.name not in select:
                continue
            if any(u in blocked for u in gold.upstream):
                self._blocked_build(top, gold, blocked)
                blocked.add(gold.identifier)
                built.append(BuildResult(gold.identifier, "blocked upstream"))
                continue
            with _step(step, "build", gold.identifier):
                built.append(self._build_one(top, gold, run_id, full_refresh, gate))
        return RunReport(
            run_id,
            started,
            time.perf_counter() - t0,
            ingested,
            tuple(promoted),
            tuple(built),
            tuple(results),
            tuple(sorted(blocked)),
        )

    def query(self, sql: str, *, timeout_s: float = 60.0, limits: Any = None) -> Any:
        """Read-only SQL over the project's tables (`silver.orders`, `gold.daily_order_metrics`, ...)
        as one Arrow table; `limits` (an `engine.SqlLimits`) bounds time, memory, rows and bytes."""
        from lakestack.engine.base import SqlLimits

        with self.query_stream(sql, limits or SqlLimits(timeout_s=timeout_s)) as result:
            return result.read_all()

    def query_stream(self, sql: str, limits: Any = None) -> Any:
        """The same as a stream of record batches (an `engine.ResultStream`, a context manager): the
        sandbox sees only the tables the SQL names, and the result stops at the limits."""
        from lakestack.engine import open_sandbox
        from lakestack.engine.base import SqlInput

        def inputs(named: list[str]) -> list[SqlInput]:
            return [SqlInput(t, self.warehouse.load(t)) for t in named if "." in t and self.warehouse.exists(t)]

        return open_sandbox(inputs, limits, naming=[sql]).stream(sql)

    # -- looking ---------------------------------------------------------------------------------
    def tables(self) -> list[TableInfo]:
        return [self.table_info(t) for t in self.warehouse.tables()]

    def table_info(self, identifier: str) -> TableInfo:
        from lakestack.storage.warehouse import history

        table = self.warehouse.load(identifier)
        snap = table.current_snapshot()
        summary = snap.summary.additional_properties if snap and snap.summary else {}
        commits = list(history(table))
        return TableInfo(
            identifier=identifier,
            rows=int(summary.get("total-records", 0)),
            files=int(summary.get("total-data-files", 0)),
            snapshots=len(commits),
            last_commit=datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC) if snap else None,
            last_run=commits[-1].run_id if commits else None,
            location=table.location(),
        )

    def schema(self, identifier: str) -> list[dict[str, Any]]:
        """Columns of a table: name, Iceberg type, required, and PII class where the contract gave one."""
        table = self.warehouse.load(identifier)
        pii = {
            k.removeprefix("lakestack.pii."): v for k, v in table.properties.items() if k.startswith("lakestack.pii.")
        }
        return [
            {"column": f.name, "type": str(f.field_type), "required": f.required, "pii": pii.get(f.name)}
            for f in table.schema().fields
        ]

    def status(self) -> list[SourceStatus]:
        out = []
        for name in self._sources(None):
            cfg = self.project.config.sources[name]
            source = self.source(name)
            if cfg.is_stream:
                pending, ingested = [], 0
                landing = f"{cfg.kind} stream"
            else:
                pending, ingested = source.pending(self.warehouse)
                landing = str(self.project.landing(name).relative_to(self.project.root))
            bronze = self._info_or_none(f"bronze.{name}")
            quarantine = self._info_or_none(f"quarantine.{name}")
            out.append(
                SourceStatus(
                    name,
                    cfg.kind,
                    self.project.contract(name).ref,
                    landing,
                    len(pending),
                    ingested,
                    bronze.rows if bronze else 0,
                    quarantine.rows if quarantine else 0,
                    bronze.last_commit if bronze else None,
                )
            )
        return out

    def _info_or_none(self, identifier: str) -> TableInfo | None:
        return self.table_info(identifier) if self.warehouse.exists(identifier) else None

    def read(self, identifier: str, *, limit: int | None = None, columns: list[str] | None = None) -> Any:
        """Rows of a table as Arrow (through DuckDB over the planned Parquet files)."""
        from lakestack.engine.duckdb import DuckDBEngine

        if not self.warehouse.exists(identifier):
            raise StorageError(f"table {identifier} does not exist (see 'lakestack tables')")
        engine = DuckDBEngine()
        try:
            engine.register("t", self.warehouse.load(identifier))
            select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
            query = f"SELECT {select} FROM t" + (" LIMIT ?" if limit is not None else "")
            return engine.sql(query, [limit] if limit is not None else None)
        finally:
            engine.close()


def _report_stream(job: JobHandle, kind: str, name: str, stats: Any) -> None:
    """A stream session's totals: its last progress, what it received and what it landed."""
    job.progress(**_stream_figures(stats))
    job.dataset(DatasetIO(f"{kind}.{name}", "input", rows=stats.received, source=kind))
    job.dataset(
        DatasetIO(
            f"bronze.{name}", "output", rows=stats.landed, quarantined=stats.quarantined, dropped=stats.duplicates
        )
    )


def _stream_figures(stats: Any) -> dict[str, Any]:
    """A stream session's running totals, as listeners see them."""
    return {
        "received": stats.received,
        "landed": stats.landed,
        "quarantined": stats.quarantined,
        "duplicates": stats.duplicates,
        "buffered": stats.buffered,
        "commits": stats.commits,
        "lag": stats.lag,
        "records_per_s": round(stats.rate(), 1),
    }


def _checked_columns(check: Any) -> list[str]:
    """The columns a check looks at (`columns: [...]` or `column: x`)."""
    columns = getattr(check, "columns", None) or [getattr(check, "column", None)]
    return [c for c in columns if isinstance(c, str)]

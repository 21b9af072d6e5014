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
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
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
        from lakestack.secrets import install as install_secrets

        install_secrets(self.env.secrets, project.root)  # `{secret: NAME}` resolves through it from now on
        self._warehouse: Any = None
        self._audit: Any = None
        self._wrote = False
        # Every job reports through `events` (pipeline/events.py); run records always listen.
        self.events = RunEvents()
        from lakestack.pipeline.inflight import InFlight

        self.recorder = RunRecorder(
            lambda: self.warehouse,
            self.events,
            inflight=InFlight(project.root / ".lakestack" / "runs" / self.environment),
        )
        self.events.add(self.recorder)
        from lakestack.pipeline.listeners import default_listeners

        def build() -> list[RunListener]:
            return [*default_listeners(project, self.environment), *listeners]

        if self.env.alerts is None and self.env.metrics.cloudwatch is None:
            self.events.defer(build)  # lineage built at the first event: a read never builds it
        else:  # sinks that start threads or need an extra: at open, as they always were
            for listener in build():
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
        """Flush what listeners buffer (run records of a run that never ended, lineage events not yet
        written, audit rows); the CLI closes its lake when a command ends."""
        self.events.close()
        if self._audit is not None or self._wrote:
            # a command that wrote the lake commits the spooled audit rows; a read only seals its own
            self.audit.close(commit=self._wrote or self.audit.buffered > 0)

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

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

    def _snapshots(self, identifiers: Sequence[str]) -> dict[str, DatasetIO]:
        """Each existing table as an input at its current snapshot: the snapshot id, its total rows
        (from the snapshot summary) and its columns."""
        from lakestack.pipeline.dataset_io import table_columns

        out: dict[str, DatasetIO] = {}
        for identifier in identifiers:
            if not self.warehouse.exists(identifier):
                continue
            table = self.warehouse.load(identifier)
            snap = table.current_snapshot()
            summary = snap.summary.additional_properties if snap and snap.summary else {}
            total = summary.get("total-records")
            out[identifier] = DatasetIO(
                identifier,
                "input",
                snap.snapshot_id if snap else None,
                rows=int(total) if total is not None else None,
                columns=table_columns(table),
            )
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
            # the project lock is for writing: close() commits the audit spool, after a command that
            # ended well (a refused one writes nothing, not even the audit rows: the next one will)
            self._wrote = True
        finally:
            self._lock_depth = 0
            lock.release()

    @property
    def env(self) -> EnvironmentConfig:
        return self.project.config.environments[self.environment]

    @property
    def audit(self) -> Any:
        """The audit log (`_lakestack.audit`, pipeline/audit.py): rows spooled in
        `.lakestack/audit/<environment>/`, committed by `flush` (ADR 0034)."""
        if self._audit is None:
            from lakestack.pipeline.audit import AuditLog
            from lakestack.pipeline.audit_spool import AuditSpool, spool_folder

            spool = AuditSpool(spool_folder(self.project.root, self.environment))
            self._audit = AuditLog(lambda: self.warehouse, spool)
        return self._audit

    def columns(self, identifier: str) -> list[str] | None:
        """A table's column names (None: no such table), from its metadata file when the read path
        applies, else through the catalog."""
        read_path = self.read_path
        pointers = read_path.pointers([identifier]) if read_path is not None else None
        if pointers is not None:
            location = pointers.get(identifier)
            names = read_path.columns(location) if location else None
            if location is None or names is not None:
                return names
        if not self.warehouse.exists(identifier):
            return None
        return [f.name for f in self.warehouse.load(identifier).schema().fields]

    @property
    def warehouse(self) -> Any:
        if self._warehouse is None:
            from lakestack.storage.catalog import open_warehouse

            self._warehouse = open_warehouse(self.env, self.project.root, self.project.name)
            self._warehouse.ensure_namespaces()
        return self._warehouse

    @property
    def read_path(self) -> Any:
        """The read path without pyiceberg (`storage.readpath.ReadPath`) for a local SQLite catalog
        and warehouse; None elsewhere (query, show and tables then open the catalog)."""
        if not hasattr(self, "_read_path"):
            from lakestack.storage.readpath import ReadPath

            self._read_path = ReadPath.open(self.env, self.project.root, self.project.name)
        return self._read_path

    def _sources(self, names: list[str] | None) -> list[str]:
        known = list(self.project.config.sources)
        for name in names or []:
            if name not in known:
                raise UsageError(f"unknown source '{name}' (sources: {', '.join(known) or 'none'})")
        return names or known

    def source(self, name: str) -> Any:
        cfg = self.project.config.sources[name]
        cls = source_class(cfg.kind)
        if cfg.kind == "database":  # a pull from a database (ingest/database.py)
            from lakestack.config import locate

            where = locate(self.project.config, "sources", name, "database")
            return cls(name, self.project.contract(name), cfg.database, location=where)  # type: ignore[call-arg]
        if cfg.is_stream or cfg.kind == "rest":  # rest: ingest/rest.py reads its `rest:` block
            return cls(name, self.project.contract(name), cfg, self.project.name)  # type: ignore[call-arg]
        landing, root = self.project.landing(name), self.project.root
        from lakestack.pipeline.evolution import previous_accepted

        # in a contract's transition window, the version before it is accepted too
        options = {"limits": cfg.limits, "project": root, "previous": previous_accepted(self.project, name)}
        if cfg.landing and cfg.landing.startswith("s3://"):  # an S3 prefix (ingest/s3files.py)
            from lakestack.ingest.s3files import S3FileSource

            contract = self.project.contract(name)
            cache = self.project.root / ".lakestack" / "landing" / self.environment / f"{name}.json"
            return S3FileSource(
                name, contract, cfg.landing, cfg.pattern, cfg.format, env=self.env, hash_cache=cache, **options
            )
        if cfg.landing and cfg.landing.startswith("sftp://"):  # a folder on an SFTP server (ingest/sftp.py)
            from lakestack.ingest.sftp import SftpFileSource

            contract = self.project.contract(name)
            return SftpFileSource(name, contract, cfg.landing, cfg.pattern, cfg.format, settings=cfg.sftp, **options)
        return cls(name, self.project.contract(name), landing, cfg.pattern, cfg.format, **options)  # type: ignore[call-arg]

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
        from lakestack.pipeline.evolution import evolve_bronze

        # a newer contract version than Bronze holds: refused (exit 2, nothing written) when it breaks
        # its compatibility mode; otherwise Bronze's schema evolves to it first
        evolve_bronze(self.project.contracts, self.warehouse, [self.project.contract(n) for n in names])
        with self._top("ingest", run_id) as top:
            for name in names:
                with self.events.job("ingest", f"ingest.{name}", parent=top.run) as job:
                    source = self.source(name)
                    report = source.ingest(self.warehouse, run_id, observer or NullObserver(), only=files)
                    reports.append(report)
                    self._report_ingest(job, name, report)
        return IngestReport(run_id, started, time.perf_counter() - t0, tuple(reports))

    def _report_ingest(self, job: JobHandle, name: str, report: SourceReport) -> None:
        from lakestack.pipeline.dataset_io import source_url, table_io

        read = [f for f in report.files if f.status in ("landed", "rejected")]
        where = source_url(self.project, name)  # file:// of the landing folder
        contract = self._contract_columns(name)
        job.dataset(
            DatasetIO(
                f"landing.{name}",
                "input",
                rows=report.rows_in,
                bytes=sum(f.size for f in read),
                columns=contract,
                source=where,
            )
        )
        bronze = table_io(
            self.warehouse,
            f"bronze.{name}",
            "output",
            report.snapshots.get(f"bronze.{name}"),
            rows=report.landed,
            quarantined=report.quarantined,
        )
        job.dataset(bronze if bronze.columns else replace(bronze, columns=contract))
        if report.quarantined:
            job.dataset(
                table_io(
                    self.warehouse,
                    f"quarantine.{name}",
                    "output",
                    report.snapshots.get(f"quarantine.{name}"),
                    rows=report.quarantined,
                )
            )
        job.stage("ingest", report.duration_s)

    def _contract_columns(self, source: str) -> tuple[tuple[str, str], ...]:
        """The columns a source's contract declares (what a landing file or a stream record holds)."""
        from lakestack.pipeline.dataset_io import schema_columns
        from lakestack.storage.schema import contract_schema

        return schema_columns(contract_schema(self.project.contract(source)))

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
        from lakestack.pipeline.evolution import evolve_bronze

        evolve_bronze(self.project.contracts, self.warehouse, [source.contract])
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
            self._report_stream(job, name, stats)
        return stats

    @contextmanager
    def stream_session(
        self, name: str, stats: Callable[[], Any], run_id: str, kind: str = "http", *, collector: str | None = None
    ) -> Iterator[Any]:
        """One run for a session that is pushed to (the `serve` collector of one source): a thread
        tells listeners `stats()` every STREAM_PROGRESS_S until the block ends, then the totals.
        `collector` is the served base URL (`http://host:port`), where the session's input is."""
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
                self._report_stream(job, name, stats(), collector=collector)

    def _report_stream(self, job: JobHandle, name: str, stats: Any, *, collector: str | None = None) -> None:
        """A stream session's totals: its last progress, what it received (from where: a URL, no
        credentials) and what it landed."""
        from lakestack.pipeline.dataset_io import source_urls, table_io

        kind = self.project.config.sources[name].kind
        job.progress(**_stream_figures(stats))
        contract = self._contract_columns(name)
        urls = source_urls(self.project, name, collector) or [kind]  # a secret location: the kind alone
        job.dataset(DatasetIO(f"{kind}.{name}", "input", rows=stats.received, columns=contract, source=urls[0]))
        for n, url in enumerate(urls[1:], 2):  # a Kafka source's other topics
            job.dataset(DatasetIO(f"{kind}.{name}.{n}", "input", columns=contract, source=url))
        bronze = table_io(
            self.warehouse,
            f"bronze.{name}",
            "output",
            rows=stats.landed,
            quarantined=stats.quarantined,
            dropped=stats.duplicates,
        )
        job.dataset(bronze if bronze.columns else replace(bronze, columns=contract))

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
        from lakestack.pipeline.dataset_io import schema_columns, table_io
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
                    before = self._snapshots([bronze]).get(bronze, DatasetIO(bronze, "input"))
                    result = SilverPromotion(model, self.warehouse, run_id, self.env).run()
                    results.append(result)
                    job.dataset(replace(before, rows=result.bronze_rows))
                    written = result.inserted + result.updated
                    silver = table_io(self.warehouse, model.identifier, "output", result.snapshot_id, rows=written)
                    if not silver.columns:  # nothing was written to a table that does not exist yet
                        silver = replace(silver, columns=schema_columns(contract_schema(model.contract)))
                    job.dataset(silver)
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
        evaluation = Evaluation(self.warehouse, run_id, environment=self.env)
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
        from lakestack.pipeline.dataset_io import table_io
        from lakestack.pipeline.gold import GoldBuild

        path = model.path
        where = str(path.relative_to(self.project.root)) if path.is_relative_to(self.project.root) else str(path)
        with self.events.job("build", f"build.{model.name}", parent=top.run, sql=model.sql, source_file=where) as job:
            upstream = self._snapshots(model.upstream)
            try:
                target = self.env.maintenance.target_file_mb * 1024 * 1024  # picks the partition granularity
                build = GoldBuild(
                    model, self.warehouse, run_id, self.project.root, target_bytes=target, environment=self.env
                )
                result = build.run(full_refresh, audit)
            except Exception:  # what it was reading when it failed
                for read in upstream.values():
                    job.dataset(replace(read, rows=None))
                raise
            for read in upstream.values():  # a full build read every row of its inputs
                job.dataset(read if result.mode == "full" else replace(read, rows=None))
            job.stage(result.mode, result.duration_s)
            if result.mode == "blocked":
                failing = ", ".join(self._gate_failures.get(model.identifier, [])) or "its checks"
                job.fail(f"gate({model.identifier}) failed: {failing}", blocked=True)
            elif result.mode != "skipped":
                job.dataset(
                    table_io(self.warehouse, model.identifier, "output", result.snapshot_id, rows=result.rows_written)
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
        from lakestack.pipeline.dataset_io import arrow_columns

        with self.events.job("check", f"check.{dataset}", parent=top.run) as job:
            t0 = time.perf_counter()
            found: list[Any] = evaluation.run(dataset, checks, contract=self._contract_of(dataset), staged=staged)
            job.stage("evaluate", time.perf_counter() - t0)
            if staged is None:  # the table as the checks read it
                job.dataset(self._snapshots([dataset]).get(dataset, DatasetIO(dataset, "input")))
            else:  # a build's staged result, before it is published
                schema = arrow_columns(staged.schema) if hasattr(staged, "schema") else ()
                job.dataset(DatasetIO(dataset, "input", rows=getattr(staged, "num_rows", None), columns=schema))
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
                    after = self._snapshots([dataset]).get(dataset, DatasetIO(dataset, "input"))
                    job.dataset(replace(after, role="output", rows=0, dropped=dropped))
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
        evaluation = Evaluation(self.warehouse, run_id, environment=self.env)
        results: list[Any] = []
        with self._top("check", run_id) as top:
            for dataset in datasets or sorted(checks):
                if self.warehouse.exists(dataset):
                    results += self._evaluate(top, evaluation, dataset, checks[dataset])
            failing = sorted({r.dataset for r in results if r.blocks})
            if failing:
                top.fail(f"checks failed on {', '.join(failing)}", blocked=True)
        return results

    def check_results(self, run_id: str, *, role: str | None = None) -> list[dict[str, Any]]:
        """The check evaluations a run recorded (of the datasets `role` may read)."""
        from lakestack.pipeline.access import governed_checks

        return governed_checks(self, self._system_rows("_lakestack.check_results", run_id), role)

    def check_failures(self, run_id: str, *, role: str | None = None) -> list[dict[str, Any]]:
        """The failing-row samples (PII masked) a run recorded, as `role` may see them."""
        from lakestack.pipeline.access import governed_checks

        return governed_checks(self, self._system_rows("_lakestack.check_failures", run_id), role)

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

    # -- SLAs ------------------------------------------------------------------------------------
    def sla(self, now: datetime | None = None, *, names: list[str] | None = None, store: bool = True) -> list[Any]:
        """Evaluate the SLAs of `slas.yaml` (all, or `names`) at `now` (default: now): a list of
        `monitor.sla.SlaResult` with error budgets, stored in `_lakestack.sla_results` unless `store` is off."""
        from lakestack.monitor.sla import evaluate

        return evaluate(self, now, names=names, store=store)

    def sla_interval(self) -> float | None:
        """Seconds between SLA evaluations in `lakestack serve` (`evaluate_every` of slas.yaml); None without SLAs."""
        from lakestack.monitor.sla import load_spec

        spec = load_spec(self.project.root, self.project.config)
        return spec.every_s if spec is not None and spec.slas else None

    def sla_history(self, names: list[str] | None, since: datetime) -> list[dict[str, Any]]:
        """Stored SLA evaluations since `since` (of `names`, or all), oldest first."""
        from lakestack.monitor.sla_history import read_history

        return read_history(self.warehouse, names, since)

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

    def enrich(self, dataset: str, run_id: str | None = None) -> Any:
        """Fill a Silver dataset's lookup cache (pipeline/enrich.py) as a run of its own: one run
        record, job `enrich.<dataset>`, with the Silver table read, the cache written and the calls."""
        run_id = run_id or new_run_id()
        with self._top("enrich", run_id) as top:
            return self._enrich_job(top, dataset, run_id)

    def _enrich_job(self, top: JobHandle, dataset: str, run_id: str) -> Any:
        from lakestack.pipeline.dataset_io import table_io
        from lakestack.pipeline.enrich import enrich

        with self.events.job("enrich", f"enrich.{dataset}", parent=top.run) as job:
            report = enrich(self, dataset, run_id)
            job.stage("enrich", report.duration_s)
            job.progress(
                keys=report.keys,
                cached=report.cached,
                fetched=report.fetched,
                failed=report.failed,
                left=report.left,
                calls=report.calls,
                cost_units=report.cost_units,
            )
            job.dataset(table_io(self.warehouse, f"silver.{dataset}", "input", rows=report.keys))
            job.dataset(table_io(self.warehouse, report.table, "output", rows=report.fetched))
        return report

    def _enrich(self, top: JobHandle, dataset: str, run_id: str) -> None:
        """A Silver dataset's lookup within `run`: an API that stays down (5xx, timeouts) is a warning
        (its job recorded FAIL) and Gold joins the cache as it is; refused credentials and other errors
        fail the run."""
        from lakestack.ingest.restclient import RestUnavailable

        try:
            self._enrich_job(top, dataset, run_id)
        except RestUnavailable as exc:
            log.warning("enrich %s: %s; Gold joins the lookup cache as it is", dataset, exc)

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
        evaluation = Evaluation(self.warehouse, run_id, environment=self.env)
        results: list[Any] = []
        blocked: set[str] = set()

        def gate(dataset: str, staged: Any = None) -> bool:
            if dataset not in checks or (staged is None and not self.warehouse.exists(dataset)):
                return True
            drop = None
            if dataset.startswith("silver."):
                model = model_from_config(dataset.partition(".")[2], self.project)

                def drop(found: list[Any]) -> int:
                    return drop_failing_rows(self.warehouse, model, checks[dataset], found, run_id, self.env)

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
        for result in promoted:  # enrichment lookups (pipeline/enrich.py) of Silver datasets past their gate
            lookup = self.project.config.datasets[result.dataset.partition(".")[2]].lookup
            if lookup is not None and result.dataset not in blocked:
                with _step(step, "enrich", result.dataset):
                    self._enrich(top, result.dataset.partition(".")[2], run_id)
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
        published = self._publish_after_gates(run_id, select, blocked)
        return RunReport(
            run_id,
            started,
            time.perf_counter() - t0,
            ingested,
            tuple(promoted),
            tuple(built),
            tuple(results),
            tuple(sorted(blocked)),
            published.tables,
        )

    def _publish_after_gates(self, run_id: str, select: list[str] | None, blocked: set[str]) -> Any:
        """A run's publish step (pipeline/publish.py): the blocks' datasets whose gates passed."""
        from lakestack.pipeline.publish import PublishResult, run_publish

        chosen = [d for c in self.project.config.publish.values() for d in c.datasets]
        if select:
            chosen = [d for d in chosen if d.partition(".")[2] in select or d in select]
        if not chosen:
            return PublishResult(run_id, ())
        return run_publish(self, chosen, run_id=run_id, top=self._top, after_run=True, blocked=frozenset(blocked))

    @_exclusive("publish")
    def publish(self, datasets: list[str] | None = None, *, run_id: str | None = None) -> Any:
        """Publish datasets (`gold.x`; None: every one) to the targets of the project's `publish:`
        blocks, each a `publish` job (pipeline/publish.py); a `PublishResult`."""
        from lakestack.pipeline.publish import run_publish

        return run_publish(self, datasets, run_id=run_id or new_run_id(), top=self._top)

    def query(
        self,
        sql: str,
        *,
        timeout_s: float = 60.0,
        limits: Any = None,
        as_of: Any = None,
        role: str | None = None,
        user: dict[str, str] | None = None,
    ) -> Any:
        """Read-only SQL over the project's tables (`silver.orders`, `gold.daily_order_metrics`, ...)
        as one Arrow table; `limits` (an `engine.SqlLimits`) bounds time, memory, rows and bytes;
        `as_of` (a datetime, a snapshot id, `"silver.orders=<id>"` or a `timetravel.AsOf`) reads
        the tables as they were then; `role` (and the caller's `user` attributes for row filters)
        reads them as that role may (`policies.yaml`)."""
        from lakestack.engine.base import SqlLimits

        limits = limits or SqlLimits(timeout_s=timeout_s)
        with self.query_stream(sql, limits, as_of=as_of, role=role, user=user) as result:
            return result.read_all()

    def query_stream(
        self,
        sql: str,
        limits: Any = None,
        *,
        as_of: Any = None,
        role: str | None = None,
        user: Any = None,
        small_rows: int = 0,
    ) -> Any:
        """The same as a stream of record batches (an `engine.ResultStream`, a context manager): the
        sandbox sees only the tables the SQL names that the role may read, masked, and the result
        stops at the limits. With `small_rows`, a result of at most that many rows may come whole
        as Python values (`ResultStream.records`)."""
        sandbox = self.open_sandbox([sql], limits, as_of=as_of, role=role, user=user)
        return sandbox.stream(sql, small_rows=small_rows)

    def open_sandbox(
        self,
        naming: list[str],
        limits: Any = None,
        *,
        as_of: Any = None,
        role: str | None = None,
        user: dict[str, str] | None = None,
        label: str = "the query",
    ) -> Any:
        """A locked-down sandbox over the tables the SQL texts `naming` name, as `role` may read
        them (pipeline/access.py); `role` None is the policy's default role."""
        from lakestack.engine import open_sandbox
        from lakestack.engine.base import SqlInput
        from lakestack.pipeline.access import sandbox_inputs
        from lakestack.pipeline.timetravel import AsOf, pin

        when = AsOf.of(as_of) if as_of is not None else None
        chosen = self.role(role)

        def inputs(named: list[str]) -> list[SqlInput]:
            planned = self._planned([t for t in named if "." in t]) if chosen is None and when is None else None
            if planned is not None:  # every table as it is: views over recorded plans, no catalog opened
                return [SqlInput(t, table) for t, table in planned.items()]
            tables = {t: self.warehouse.load(t) for t in named if "." in t and self.warehouse.exists(t)}
            pins = pin(when, tables) if when is not None else {}
            sql = naming[0] if len(naming) == 1 else None
            return sandbox_inputs(self.policy, chosen, tables, pins, user=user, sql=sql)

        if self.read_path is None:
            self.warehouse  # noqa: B018  opened first: an S3 warehouse's filesystem is then on the sandbox (ADR 25)
        return open_sandbox(inputs, limits, label=label, naming=naming)

    def _planned(self, identifiers: list[str]) -> dict[str, Any] | None:
        """Each existing table of `identifiers` at its current snapshot, through the read path: a
        recorded plan (`storage.readpath.PlannedTable`), else the pyiceberg table (its plan then
        recorded for the next read). None when the read path does not apply."""
        read_path = self.read_path
        pointers = read_path.pointers(identifiers) if read_path is not None else None
        if pointers is None:
            return None
        out: dict[str, Any] = {}
        for identifier, location in pointers.items():
            planned = read_path.plan(identifier, location)
            if planned is None:
                planned = self.warehouse.load(identifier)
                read_path.remember(identifier, location, planned)
            out[identifier] = planned
        return out

    @property
    def policy(self) -> Any:
        """The project's `governance.policy.Policy` (`policies.yaml` over the default roles)."""
        from lakestack.governance.policy import load_policies

        if getattr(self, "_policy", None) is None:
            self._policy = load_policies(self.project)
        return self._policy

    def role(self, name: str | None) -> str | None:
        """The role a read runs as: `name`, else the policy's default; None (no policy layer: every
        table as it is) for the default role without a `policies.yaml`. Unknown: exit 2 with the roles."""
        chosen: str = self.policy.role(name)
        return None if name is None and self.policy.source is None else chosen

    # -- time travel and rollback ----------------------------------------------------------------
    def history(self, identifier: str, *, limit: int | None = None) -> list[Any]:
        """A table's snapshots, newest first, with the run and job that made each (`HistoryEntry`)."""
        from lakestack.pipeline.timetravel import table_history

        return table_history(self.warehouse, identifier, limit)

    @_exclusive("rollback")
    def rollback(self, identifier: str, snapshot_id: int, *, run_id: str | None = None) -> Any:
        """Make an earlier snapshot of a Silver or Gold table current again (a `rollback` job).

        The next promote / build goes on from that snapshot's checkpoint: what the rolled-back
        commits had merged is promoted or built again. Bronze and quarantine are refused."""
        from lakestack.pipeline.timetravel import RollbackResult, rollback_target, rows_at
        from lakestack.storage.snapshots import rollback

        table = rollback_target(self.warehouse, identifier, snapshot_id)
        run_id = run_id or new_run_id()
        with (
            self._top("rollback", run_id) as top,
            self.events.job("rollback", f"rollback.{identifier}", parent=top.run) as job,
        ):
            done = rollback(table, snapshot_id, run_id=run_id)
            before = rows_at(table, done.from_snapshot)
            job.dataset(DatasetIO(identifier, "input", done.from_snapshot, rows=before))
            job.dataset(DatasetIO(identifier, "output", snapshot_id, rows=0))
        after = rows_at(table, snapshot_id)
        return RollbackResult(
            run_id, identifier, done.from_snapshot, snapshot_id, done.changed, before, after, self._readers(identifier)
        )

    @_exclusive("backfill")
    def backfill(
        self,
        dataset: str,
        start: date | None = None,
        end: date | None = None,
        *,
        downstream: bool = False,
        run_id: str | None = None,
    ) -> Any:
        """Re-derive a Silver dataset for the event days [start, end] (both None: all of it) from
        Bronze with the promotion code, in one commit; partitions outside are untouched. With
        `downstream`, the Gold models reading it build next (pipeline/backfill.py)."""
        from lakestack.pipeline.backfill import run_backfill

        return run_backfill(self, dataset, start, end, downstream=downstream, run_id=run_id or new_run_id())

    def _readers(self, identifier: str) -> tuple[str, ...]:
        """The Gold models that read a table (none when the models cannot be loaded)."""
        try:
            models = self.gold_models()
        except ProjectError:
            return ()
        return tuple(m.identifier for m in models.values() if identifier in m.upstream)

    @_exclusive("replay")
    def replay(self, source: str, where: Any = None, *, dry_run: bool = False, run_id: str | None = None) -> Any:
        """Re-validate `source`'s quarantined records (a `ReplayFilter`) against its current contract;
        those that pass land in Bronze once, as a `replay` job (pipeline/replay.py)."""
        from lakestack.pipeline.replay import ReplayFilter, run_replay

        where = where or ReplayFilter()
        return run_replay(self, source, where, dry_run=dry_run, run_id=run_id or new_run_id(), top=self._top)

    # -- maintenance -------------------------------------------------------------------------------
    @_exclusive("maintain")
    def maintain(self, tables: list[str] | None = None, *, dry_run: bool = False, step: Step | None = None) -> Any:
        """Compact, rewrite manifests, expire snapshots, remove orphan files and old history rows,
        table by table, each a `maintain` job (pipeline/maintain.py). `dry_run`: only say what would
        be done; nothing is written, not even a run record."""
        from lakestack.pipeline.maintain import maintain

        return maintain(self, tables, dry_run=dry_run, step=step, top=self._top)

    @_exclusive("erase")
    def erase(self, subject: str, *, dry_run: bool = False, retention: str = "0s") -> Any:
        """Erase a data subject (`COLUMN=VALUE`) from every layer, expire the snapshots that still
        hold the old files once `retention` has passed, and write the receipt to the audit log, as
        an `erase` run (pipeline/erase.py). `dry_run`: only say what would be erased."""
        from lakestack.config import duration_seconds
        from lakestack.pipeline.erase import erase
        from lakestack.pipeline.erase_targets import Subject

        try:
            seconds = duration_seconds(retention)
        except ValueError as exc:
            raise UsageError(f"--retention: {exc}") from exc
        return erase(self, Subject.parse(subject), dry_run=dry_run, retention_s=seconds, top=self._top)

    # -- looking ---------------------------------------------------------------------------------
    def tables(self) -> list[TableInfo]:
        pointers = self.read_path.pointers() if self.read_path is not None else None
        if pointers is not None:  # figures from the metadata files: no catalog library loaded
            infos = [self._figures(t, location) for t, location in pointers.items()]
            if all(info is not None for info in infos):
                return [info for info in infos if info is not None]
        return [self.table_info(t) for t in self.warehouse.tables()]

    def _figures(self, identifier: str, location: str) -> TableInfo | None:
        figures = self.read_path.figures(location)
        if figures is None:
            return None
        return TableInfo(
            identifier,
            figures.rows,
            figures.files,
            figures.snapshots,
            figures.last_commit,
            figures.last_run,
            figures.location,
        )

    def table_info(self, identifier: str) -> TableInfo:
        pointers = self.read_path.pointers([identifier]) if self.read_path is not None else None
        info = self._figures(identifier, pointers[identifier]) if pointers and identifier in pointers else None
        if info is not None:
            return info
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

    def may_read(self, role: str | None, identifier: str) -> bool:
        """Whether `role` (default: the policy's) may read `identifier` at all."""
        chosen = self.role(role)
        return chosen is None or self.policy.may_read(chosen, identifier)

    def schema(self, identifier: str) -> list[dict[str, Any]]:
        """Columns of a table: name, Iceberg type, required, and PII class where the contract gave one."""
        pointers = self.read_path.pointers([identifier]) if self.read_path is not None else None
        found = self.read_path.schema(pointers[identifier]) if pointers and identifier in pointers else None
        if found is not None:  # from the metadata file: no catalog library loaded
            fields, properties = found
            pii = {k.removeprefix("lakestack.pii."): v for k, v in properties.items() if k.startswith("lakestack.pii.")}
            return [{"column": n, "type": t, "required": r, "pii": pii.get(n)} for n, t, r in fields]
        table = self.warehouse.load(identifier)
        pii = {
            k.removeprefix("lakestack.pii."): v for k, v in table.properties.items() if k.startswith("lakestack.pii.")
        }
        return [
            {"column": f.name, "type": str(f.field_type), "required": f.required, "pii": pii.get(f.name)}
            for f in table.schema().fields
        ]

    def status(self) -> list[SourceStatus]:
        pointers = self.read_path.pointers() if self.read_path is not None else None
        out = []
        for name in self._sources(None):
            cfg = self.project.config.sources[name]
            pending: list[Any] = []
            ingested = 0
            if cfg.is_stream:
                landing = f"{cfg.kind} stream"
            else:
                pending, ingested = self._pending(self._waiting_view(name, cfg), cfg, pointers)
                landing = (
                    cfg.landing
                    if cfg.landing and "://" in cfg.landing
                    else str(self.project.landing(name).relative_to(self.project.root))
                )
                if cfg.kind == "database" and cfg.database is not None:  # the URL is a secret: the table
                    landing = f"database: {cfg.database.table or 'query'}"
                if cfg.kind == "rest" and cfg.rest is not None:  # the API (credentials go in headers)
                    landing = cfg.rest.base_url
            bronze = self._info_or_none(f"bronze.{name}", pointers)
            quarantine = self._info_or_none(f"quarantine.{name}", pointers)
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

    def _waiting_view(self, name: str, cfg: Any) -> Any:
        """What `status` asks for a source's waiting files: a local landing folder is listed and checked
        against the ledger without the ingest's readers and validators (ingest/landing.py: no pyarrow,
        no pyiceberg); every other kind is its source."""
        if _local_drop(cfg):
            from lakestack.ingest.landing import LandingFolder

            contract = self.project.contract(name)
            landing = self.project.landing(name)
            return LandingFolder(name, contract, landing, cfg.pattern, cfg.format, project=self.project.root)
        return self.source(name)

    def _pending(self, source: Any, cfg: Any, pointers: dict[str, str] | None) -> tuple[list[Any], int]:
        """A source's files not yet ingested and how many Bronze holds; a local file drop reads its
        ledger, a REST source its page cursors, from the metadata files (storage.readpath.CheckpointView)
        when the read path applies (no pyiceberg, no SQLAlchemy: ~0.5 s of a `status`)."""
        if pointers is not None and (_local_drop(cfg) or cfg.kind == "rest"):
            from lakestack.storage.readpath import CheckpointView

            try:
                found: tuple[list[Any], int] = source.pending(CheckpointView(pointers))
                return found
            except Exception as exc:  # anything the view cannot read: the full path answers
                log.debug("status of %s through the catalog: %s", cfg, exc)
        found = source.pending(self.warehouse)
        return found

    def _info_or_none(self, identifier: str, pointers: dict[str, str] | None = None) -> TableInfo | None:
        if pointers is not None:
            return self.table_info(identifier) if identifier in pointers else None
        return self.table_info(identifier) if self.warehouse.exists(identifier) else None

    def read_rows(
        self, identifier: str, *, limit: int, role: str | None = None, user: dict[str, str] | None = None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """The first `limit` rows of a table as its column names and Python values (what `lakestack
        show` prints), read as `read` reads them; a few rows of plain types without pyarrow."""
        from lakestack.engine import create_engine
        from lakestack.engine.records import pylist

        planned = self._planned([identifier]) if self.role(role) is None else None
        table = planned.get(identifier) if planned is not None else None
        if table is not None:
            with create_engine(purpose="read") as engine:
                engine.register_table("t", table)
                found = engine.records(f"SELECT * FROM t LIMIT {int(limit)}", most=int(limit))
            if found is not None:
                return found
        data = self.read(identifier, limit=limit, role=role, user=user)
        return list(data.column_names), pylist(data)

    def read(
        self,
        identifier: str,
        *,
        limit: int | None = None,
        columns: list[str] | None = None,
        role: str | None = None,
        user: dict[str, str] | None = None,
    ) -> Any:
        """Rows of a table as Arrow (through the embedded engine over the planned Parquet files, as
        `lakestack query`); with a `role` (or a `policies.yaml`), through that role's sandbox: masked,
        filtered, or as if missing."""
        from lakestack.engine import create_engine

        if columns is None and self.role(role) is None:
            planned = self._planned([identifier])
            table = planned.get(identifier) if planned is not None else None
            if planned is not None and table is None:
                raise StorageError(f"table {identifier} does not exist (see 'lakestack tables')")
            if table is not None:  # as `lakestack query` reads it: a view over the planned files
                with create_engine(purpose="read") as engine:
                    engine.register_table("t", table)
                    return engine.fetch("SELECT * FROM t" + (f" LIMIT {int(limit)}" if limit is not None else ""))
        from sqlglot import exp

        if not self.warehouse.exists(identifier) or not self.may_read(role, identifier):
            raise StorageError(f"table {identifier} does not exist (see 'lakestack tables')")
        if self.role(role) is not None:
            from lakestack.pipeline.access import read_sql

            return self.query(read_sql(identifier, limit, columns), role=role, user=user)
        with create_engine(purpose="read") as engine:  # interactive reads stay embedded, like queries
            engine.register_table("t", self.warehouse.load(identifier))
            query = exp.select(*([exp.column(c, quoted=True) for c in columns] if columns else ["*"])).from_("t")
            return engine.fetch(query.limit(limit) if limit is not None else query)


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


def _local_drop(cfg: Any) -> bool:
    """A file source whose landing folder is in the project (not an `s3://` or `sftp://` one)."""
    return bool(cfg.kind == "files" and not (cfg.landing and "://" in cfg.landing))

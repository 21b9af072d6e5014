"""The OpenLineage listener: job runs become RunEvents (`lakestack.lineage`) sent through a transport.

An environment chooses the transport in `lakestack.yaml`::

    environments:
      dev:  {openlineage: {transport: file}}          # default: <warehouse>/_lakestack/lineage/YYYY-MM-DD.ndjson
      prod: {openlineage: {transport: http, url: "http://marquez:5000", api_key_secret: MARQUEZ_KEY}}

- `file`: one JSON event per line, appended whole under an exclusive lock (several processes may
  write one file); a warehouse that is not a local folder (S3) writes under `.lakestack/lineage/`.
- `console`: each event logged on `lakestack.lineage` at INFO.
- `http`: `POST {url}/api/v1/lineage` (Marquez) from a background thread fed by a bounded queue:
  the data job never waits for the network. An attempt has `timeout` seconds; a failed event is
  retried `retries` times with backoff, then spooled to `.lakestack/openlineage-spool.ndjson`
  (at most `spool_max_events`) and resent, oldest first, when the endpoint answers again (also by
  a later process). What cannot be queued or spooled is dropped and counted (`dropped`).
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import json
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lakestack.config import OpenLineageConfig, SecretRef
from lakestack.engine import ENGINE_PACKAGES, ENGINES
from lakestack.errors import ConfigError
from lakestack.lineage.events import EventContext, EventType, Root, model_lineage, run_event
from lakestack.pipeline.events import DatasetIO, JobRun, RunListener

if TYPE_CHECKING:
    from lakestack.pipeline.project import Project

log = logging.getLogger(__name__)
event_log = logging.getLogger("lakestack.lineage")
PRODUCER = "https://github.com/lakestack/lakestack/tree/v{version}"
LINEAGE_DIR = "_lakestack/lineage"
SPOOL_FILE = ".lakestack/openlineage-spool.ndjson"


class Transport(Protocol):
    dropped: int

    def emit(self, event: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


_Item = tuple[EventType, JobRun, Root | None, datetime]  # what the builder thread makes an event of


class OpenLineageListener(RunListener):
    """Sends a START when a job begins, RUNNING with a stream's progress, and COMPLETE, FAIL or
    ABORT when it ends, each with what the job reported (datasets, checks, column lineage).

    The job's thread only copies the run into a bounded queue; a builder thread makes the event
    (sqlglot's column lineage of a model takes a fraction of a second) and hands it to the
    transport. A full queue drops the event and counts it (`dropped`).
    """

    def __init__(self, context: EventContext, transport: Transport, *, max_pending: int = 10_000) -> None:
        self.context, self.transport = context, transport
        self._open: dict[str, tuple[str | None, str]] = {}  # run id → (parent run id, job): for the root
        self._lock = threading.RLock()  # one order for the events of a tree, whichever thread reports
        self._queue: queue.Queue[_Item | None] = queue.Queue(max_pending)
        self._held: dict[str, list[_Item]] = {}  # a job tree's events until it shows it was not refused
        self._released: set[str] = set()  # trees whose events go out as they come
        self._dropped = 0
        self._closed = False
        # each table's columns as the last job that reported them saw them (the builder thread's own):
        # a build's inputs are Silver tables a promotion of this process reported, and a model's
        # column lineage needs them to resolve `*` and unqualified names
        self._columns: dict[str, tuple[tuple[str, str], ...]] = {}
        self._thread: threading.Thread | None = None  # started by the first event, ends when idle
        _LIVE.add(self)

    @property
    def dropped(self) -> int:
        """Events lost: a full queue here, or a transport that could not keep or deliver them."""
        return self._dropped + self.transport.dropped

    def on_start(self, job: JobRun) -> None:
        with self._lock:
            self._open[job.run_id] = (job.parent_run_id, job.job)
        self._send(self._item("START", job), job, release=False)

    def on_dataset(self, job: JobRun, dataset: DatasetIO) -> None:
        if dataset.role == "output":  # the command wrote: it was not refused (what it only read may be,
            self._release(self._tree(job))  # like a hostile model's inputs: run records keep nothing of it)

    def on_progress(self, job: JobRun) -> None:
        self._send(self._item("RUNNING", job), job, release=True)

    def on_complete(self, job: JobRun) -> None:
        self._send(self._item("COMPLETE", job), job, release=True)
        self._forget(job)

    def on_fail(self, job: JobRun) -> None:
        item = self._item("ABORT" if job.status == "ABORT" else "FAIL", job)
        tree = self._tree(job)
        with self._lock:
            if job.parent_run_id is None and job.exit_code == 2 and tree in self._held:
                # refused before it touched data (a bad project file, an unknown source): like the run
                # records, lineage keeps nothing of it, and writes nothing into a lake it was refused on
                del self._held[tree]
            else:
                self._send(item, job, release=job.exit_code != 2)
        self._forget(job)

    def close(self, wait: float = 30.0) -> None:
        """Send what is queued (waiting at most `wait` seconds), then close the transport."""
        if self._closed:
            return
        self._closed = True
        for tree in list(self._held):  # trees still open: nothing says they were refused
            self._release(tree)
        with self._lock:
            idle = self._thread is None and self._queue.empty()
        if idle:  # nothing was ever queued, or all of it is built: no thread to start and stop
            self.transport.close()
            _LIVE.discard(self)
            return
        with suppress(queue.Full):
            self._queue.put(None, timeout=wait)
        thread = self._ensure_builder()
        thread.join(wait)
        if thread.is_alive():
            left = self._queue.qsize()
            self._dropped += left
            log.warning("OpenLineage: %d events not built within %.0f s of closing", left, wait)
        self.transport.close()
        _LIVE.discard(self)

    def _item(self, event_type: EventType, job: JobRun) -> _Item:
        # a copy: the job goes on adding datasets while the builder works on this event
        snapshot = replace(
            job,
            datasets=list(job.datasets),
            checks=list(job.checks),
            stages=dict(job.stages),
            progress=dict(job.progress),
        )
        at = job.started_at if event_type == "START" else job.ended_at or datetime.now(UTC)
        return event_type, snapshot, self._root(job), at

    def _tree(self, job: JobRun) -> str:
        root = self._root(job)
        return root.run_id if root is not None else job.run_id

    def _send(self, item: _Item, job: JobRun, *, release: bool) -> None:
        """Queue the event, or hold it with its tree's until the tree shows it was not refused: a
        dataset reported, a job that ended other than refused, the tree's end."""
        tree = self._tree(job)
        with self._lock:
            held = self._held.get(tree)
            if held is None and tree not in self._released:
                held = self._held[tree] = []
            if held is not None:
                held.append(item)
            else:
                self._enqueue(item)
            if release or (job.parent_run_id is None and job.status != "RUNNING"):
                self._release(tree)
            if job.parent_run_id is None and job.status != "RUNNING":
                self._released.discard(tree)

    def _release(self, tree: str) -> None:
        with self._lock:
            self._released.add(tree)
            for item in self._held.pop(tree, []):
                self._enqueue(item)

    def _enqueue(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._dropped += 1
            log.warning("OpenLineage queue full: the %s event of %s was dropped", item[0], item[1].job)
        self._ensure_builder()

    def _ensure_builder(self) -> threading.Thread:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._build, name="openlineage-events", daemon=True)
                self._thread.start()
            return self._thread

    def _build(self) -> None:
        # A builder ends after IDLE_S without events (the next event starts another), so a process
        # that opens many lakes and never closes them does not keep a thread for each.
        while True:
            try:
                item = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if item is None:
                return
            event_type, job, root, at = item
            try:
                self._fill_columns(job)
                self.transport.emit(self._event(event_type, job, root, at))
            except Exception:  # the builder outlives a bad event: the next ones still go out
                self._dropped += 1
                log.warning("OpenLineage: no %s event for %s", event_type, job.job, exc_info=True)

    def _fill_columns(self, job: JobRun) -> None:
        """Learn the columns the job reports; give its datasets reported without them the known ones."""
        self._columns.update({io.name: io.columns for io in job.datasets if io.columns})
        job.datasets = [
            replace(io, columns=self._columns[io.name]) if not io.columns and io.name in self._columns else io
            for io in job.datasets
        ]

    def _event(self, event_type: EventType, job: JobRun, root: Root | None, at: datetime) -> dict[str, Any]:
        lineage = None
        if event_type in ("COMPLETE", "FAIL") and job.sql and job.job_type == "build":
            try:
                lineage = model_lineage(job, self.context.dialect)
            except Exception:  # a model sqlglot cannot parse still gets its event, without column lineage
                log.info("no column lineage for %s", job.job, exc_info=True)
        return run_event(event_type, job, self.context, root=root, at=at, lineage=lineage)

    def _root(self, job: JobRun) -> Root | None:
        if job.parent_run_id is None:
            return None
        with self._lock:
            run_id, name = job.parent_run_id, job.parent_job or ""
            for _ in range(100):
                parent = self._open.get(run_id)
                if parent is None or parent[0] is None:
                    break
                run_id = parent[0]
                name = self._open.get(run_id, (None, name))[1]
        return Root(run_id, name)

    def _forget(self, job: JobRun) -> None:
        with self._lock:
            self._open.pop(job.run_id, None)


IDLE_S = 2.0  # a builder thread without events this long ends
_LIVE: weakref.WeakSet[OpenLineageListener] = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    """Write what is queued when the process ends without closing its lake (a CLI command that
    returns early): a few seconds at most, the file transport needs far less."""
    for listener in list(_LIVE):
        listener.close(wait=5.0)


def lake_listeners(project: Project, environment: str) -> list[RunListener]:
    """The OpenLineage listener an environment of a project asks for (none for `transport: none`).

    `Lake` adds them to its run events: `self.events.listeners += lake_listeners(project, env)`.
    """
    env = project.config.environments[environment]
    location = env.warehouse  # as `storage.catalog.warehouse_uri` gives it, without making the folder
    warehouse = location if "://" in location else (project.root / location).resolve().as_uri()
    listener = create_listener(
        env.openlineage,
        project=project.name,
        environment=environment,
        warehouse=warehouse,
        root=project.root,
        engine=env.engine,
    )
    return [listener] if listener is not None else []


def create_listener(
    config: OpenLineageConfig, *, project: str, environment: str, warehouse: str, root: Path, engine: str = ENGINES[0]
) -> OpenLineageListener | None:
    """The listener an environment asks for (None for `transport: none`).

    `Lake` adds it to its `RunEvents`; `warehouse` is the absolute warehouse URI
    (`storage.catalog.warehouse_uri`).
    """
    if config.transport == "none":
        return None
    from lakestack import __version__

    context = EventContext(
        producer=PRODUCER.format(version=__version__),
        job_namespace=config.namespace or f"{project}.{environment}",
        warehouse=warehouse.rstrip("/"),
        project_root=root,
        engine=engine,
        engine_version=_version(engine),
        lakestack_version=__version__,
    )
    transport: Transport
    if config.transport == "console":
        transport = ConsoleTransport()
    elif config.transport == "http":  # its sender thread, spool and API key only once there is an event
        transport = DeferredTransport(lambda: HttpTransport(config, spool=root / SPOOL_FILE))
    else:
        transport = FileTransport(lineage_dir(warehouse, root))
    return OpenLineageListener(context, transport)


def lineage_dir(warehouse: str, root: Path) -> Path:
    """`<warehouse>/_lakestack/lineage` for a local warehouse, else `.lakestack/lineage` in the project."""
    if warehouse.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(warehouse).path)) / LINEAGE_DIR
    if "://" not in warehouse:
        return (root / warehouse).resolve() / LINEAGE_DIR
    return root / ".lakestack" / "lineage"


@functools.cache  # once per process: every lake opened asks, and reading package metadata is not free
def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(ENGINE_PACKAGES.get(distribution, distribution))
    except PackageNotFoundError:
        return "unknown"


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n"


@contextmanager
def _locked_append(path: Path) -> Iterator[int]:
    """An O_APPEND descriptor of `path` held under an exclusive lock (other processes wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FileTransport:
    """NDJSON, one file per UTC day; each event one whole line, appended under a lock."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.dropped = 0

    def path_for(self, when: datetime) -> Path:
        return self.directory / f"{when.astimezone(UTC):%Y-%m-%d}.ndjson"

    def emit(self, event: dict[str, Any]) -> None:
        try:
            with _locked_append(self.path_for(datetime.now(UTC))) as fd:
                _write_all(fd, _line(event))
        except OSError as exc:  # a full disk loses lineage, never the data job
            self.dropped += 1
            log.warning("could not write an OpenLineage event to %s: %s", self.directory, exc)

    def close(self) -> None:
        """Nothing is buffered."""


class DeferredTransport:
    """A transport made when the first event is emitted: a lake that emits nothing (a read-only
    command such as `lakestack query`) starts no thread, reads no secret and touches no spool."""

    def __init__(self, make: Callable[[], Transport]) -> None:
        self._make = make
        self.made: Transport | None = None
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped + (self.made.dropped if self.made is not None else 0)

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._dropped = value - (self.made.dropped if self.made is not None else 0)

    def emit(self, event: dict[str, Any]) -> None:
        if self.made is None:
            self.made = self._make()
        self.made.emit(event)

    def close(self) -> None:
        if self.made is not None:
            self.made.close()


class ConsoleTransport:
    def __init__(self) -> None:
        self.dropped = 0

    def emit(self, event: dict[str, Any]) -> None:
        event_log.info("%s", _line(event).decode().rstrip("\n"))

    def close(self) -> None:
        """Nothing is buffered."""


class Spool:
    """Undelivered events on disk, oldest first, bounded; shared by processes through a lock file."""

    def __init__(self, path: Path, max_events: int) -> None:
        self.path, self.max_events = path, max_events
        self._lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self, lines: list[bytes]) -> int:
        """Append what fits; returns how many did not."""
        with self._locked():
            held = self._count()
            room = max(0, self.max_events - held)
            with open(self.path, "ab") as out:
                out.writelines(lines[:room])
            return len(lines) - min(room, len(lines))

    def _count(self) -> int:
        try:
            with open(self.path, "rb") as spooled:
                return sum(1 for _ in spooled)
        except FileNotFoundError:
            return 0

    def drain(self, send: Any) -> bool:
        """Send spooled events in order until one fails; keep the rest. True when the spool is empty."""
        with self._locked():
            try:
                lines = self.path.read_bytes().splitlines(keepends=True)
            except FileNotFoundError:
                return True
            sent = 0
            for line in lines:
                if not send(line):
                    break
                sent += 1
            if sent:
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_bytes(b"".join(lines[sent:]))
                os.replace(tmp, self.path)
            return sent == len(lines)


class HttpTransport:
    """Marquez-compatible HTTP: a sender thread, a bounded queue, retries with backoff, a spool."""

    BACKOFF_S = 0.25  # first retry wait; doubles per attempt
    MAX_DOWN_S = 30.0  # longest wait before trying an endpoint that was down again

    def __init__(self, config: OpenLineageConfig, spool: Path) -> None:
        assert config.url is not None  # the config model requires it for http
        self.endpoint = config.url.rstrip("/") + "/api/v1/lineage"
        self.timeout, self.retries = config.timeout, config.retries
        self._key: str | None = None
        self._key_missing = False
        if config.api_key_secret:
            try:
                self._key = SecretRef(secret=config.api_key_secret).resolve()
            except ConfigError as exc:  # lineage never fails the data job: events wait in the spool
                self._key_missing = True
                log.error("OpenLineage http transport: %s; events are spooled until it is set", exc)
        self.spool = Spool(spool, config.spool_max_events)
        self.dropped = 0
        self.delivered = 0
        self.rejected = 0  # events the endpoint refused (4xx): resending cannot help
        self._queue: queue.Queue[bytes | None] = queue.Queue(config.queue_max_events)
        self._down_until = 0.0
        self._down_for = 0.0
        self._spooled = spool.exists() and spool.stat().st_size > 0
        self._thread = threading.Thread(target=self._run, name="openlineage-http", daemon=True)
        self._thread.start()

    def emit(self, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(_line(event))
        except queue.Full:
            self.dropped += 1
            log.warning("OpenLineage queue full (%d events): an event was dropped", self._queue.maxsize)

    def close(self, wait: float | None = None) -> None:
        """Stop the sender: what it has not delivered in `wait` seconds (default: one attempt's
        timeout + 1 s) is spooled for a later process."""
        with suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
        self._thread.join(self.timeout + 1.0 if wait is None else wait)
        left = self._take_all()
        if left:
            self._spool(left)
        if self._thread.is_alive():  # still in an attempt: it stops after it (the queue has room now)
            self._queue.put(None)

    def _take_all(self) -> list[bytes]:
        taken: list[bytes] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return taken
            if item is not None:
                taken.append(item)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = b""
            if item is None:
                return
            if self._spooled and time.monotonic() >= self._down_until:
                self._spooled = not self.spool.drain(self._post_once)
                if self._spooled:
                    self._mark_down()
            if not item:
                continue
            if self._spooled or time.monotonic() < self._down_until:
                self._spool([item])  # keep order: nothing overtakes the spool
            elif not self._deliver(item):
                self._mark_down()
                self._spool([item])

    def _spool(self, lines: list[bytes]) -> None:
        lost = self.spool.add(lines)
        self._spooled = True
        if lost:
            self.dropped += lost
            log.warning("OpenLineage spool full (%d events): %d dropped", self.spool.max_events, lost)

    def _mark_down(self) -> None:
        self._down_for = min(self.MAX_DOWN_S, max(1.0, self._down_for * 2))
        self._down_until = time.monotonic() + self._down_for

    def _deliver(self, body: bytes) -> bool:
        for attempt in range(self.retries + 1):
            if self._post_once(body):
                self._down_for = 0.0
                return True
            if attempt < self.retries:
                time.sleep(min(self.BACKOFF_S * 2**attempt, 5.0))
        return False

    def _post_once(self, body: bytes) -> bool:
        """True when the event is done with: delivered, or refused for good (counted)."""
        import urllib.error
        import urllib.request

        if self._key_missing:
            return False
        request = urllib.request.Request(self.endpoint, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if self._key:
            request.add_header("Authorization", f"Bearer {self._key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # the config allows http(s) URLs only
                answer.read()
            self.delivered += 1
            return True
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                self.rejected += 1
                log.warning("the lineage endpoint refused an event (HTTP %d): not resent", exc.code)
                return True
            return False
        except (OSError, ValueError):  # refused, reset, timed out, unreachable
            return False

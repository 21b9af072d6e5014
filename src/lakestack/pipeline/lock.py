"""The project lock: one batch run (`ingest`, `promote`, `build`, `run`) at a time per project.

Two runs started together would both read the same checkpoints and race their commits. Every
commit is fenced (no blind retries, batch ids, the file ledger re-read per attempt), so a race
cannot double-commit, but it wastes work and makes reports hard to read; the lock makes the
second run wait (`--wait SECONDS`) or refuse at once with who holds it.

- Local catalogs (SQLite): `flock` on `.lakestack/run.lock` in the project. The kernel releases
  it when the holder dies, however it dies.
- A PostgreSQL catalog (shared by several machines): a session advisory lock in the catalog's
  database, keyed by the project name. It dies with the session: a killed holder's connection
  closes and the server drops the lock.

Forked children (the file-ingest workers) would inherit the lock's file descriptor or socket
and keep it alive after the holder is killed; after a fork the child's copy is pointed at
/dev/null, so only the holder process keeps the lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakestack.errors import RunError, Transient

log = logging.getLogger(__name__)

LOCK_FILE = ".lakestack/run.lock"
SCHEDULER_LOCK_FILE = ".lakestack/scheduler.lock"
POLL_S = 0.2
_PG_CLASS = 0x1A4E57  # first key of lakestack's advisory locks; the second is the project's

# File descriptors of locks this process holds, to drop in forked children (see module docstring).
_held_fds: set[int] = set()
_fds_lock = threading.Lock()


def _drop_in_child() -> None:
    if not _held_fds:
        return
    null = os.open(os.devnull, os.O_RDWR)
    for fd in list(_held_fds):
        with contextlib.suppress(OSError):
            os.dup2(null, fd)  # the child no longer refers to the lock; the number stays valid
    os.close(null)
    _held_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_in_child)


class ProjectLockedError(RunError, Transient):
    """Another run holds the project lock (exit 3; retry later or pass --wait)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a project lock, as far as it told."""

    pid: int | None = None
    host: str | None = None
    command: str | None = None
    since: str | None = None

    def describe(self) -> str:
        if self.pid is None and self.since is None:
            return f"another run holds the lock ({self.command or 'holder unknown'})"
        where = f"pid {self.pid}" + (f" on {self.host}" if self.host and self.host != socket.gethostname() else "")
        what = f"lakestack {self.command}, " if self.command else ""
        return f"another run holds the lock since {self.since or 'an unknown time'} ({what}{where})"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class ProjectLock(ABC):
    """Acquire with a deadline; release. Subclasses try once (`_try`) and name the holder (`holder`)."""

    what = "project"

    def acquire(self, command: str, wait: float = 0.0) -> None:
        """Take the lock, waiting up to `wait` seconds; ProjectLockedError when it stays held."""
        deadline = time.monotonic() + max(0.0, wait)
        told = False
        while not self._try(command):
            if time.monotonic() >= deadline:
                hint = f"waited {wait:g}s" if wait > 0 else "to wait for it: lakestack --wait SECONDS ..."
                raise ProjectLockedError(f"{self.what}: {self.holder().describe()}; {hint}")
            if not told:
                log.warning("%s: %s; waiting up to %gs", self.what, self.holder().describe(), wait)
                told = True
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        log.debug("%s: lock taken for %s", self.what, command)

    @abstractmethod
    def _try(self, command: str) -> bool:
        """Take the lock if free, without waiting."""

    @abstractmethod
    def holder(self) -> Holder:
        """Who holds the lock, as far as it told."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock up."""

    def alive(self) -> bool:
        """Whether a lock taken is still held (a PostgreSQL session can break under it)."""
        return True


class FileLock(ProjectLock):
    """`flock` on a file; its content names the holder (pid, host, command, since)."""

    def __init__(self, path: Path, project: str, *, what: str | None = None) -> None:
        self.path = path
        self.what = what or f"project {project}"
        self._fd: int | None = None

    def _try(self, command: str) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _fds_lock:
            _held_fds.add(fd)
        self._fd = fd
        return True

    def holder(self) -> Holder:
        info: dict[str, Any] = {}
        for _ in range(20):  # a new holder writes its name just after taking the flock: give it a moment
            try:
                info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):  # being rewritten by a new holder
                info = {}
            if info:
                break
            time.sleep(0.05)
        return Holder(info.get("pid"), info.get("host"), info.get("command"), info.get("since"))

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with _fds_lock:
            _held_fds.discard(fd)
        try:
            os.ftruncate(fd, 0)  # no stale holder left behind for the next reader to quote
        finally:
            os.close(fd)  # closing the last descriptor releases the flock


class PostgresLock(ProjectLock):
    """A session advisory lock in the catalog's database; the session's application_name names the holder."""

    def __init__(self, dsn: str, project: str, *, key: str | None = None, what: str | None = None) -> None:
        self.dsn = dsn
        self.project = project
        self.what = what or f"project {project}"
        self.key = zlib.crc32((key or project).encode()) - (1 << 31)  # an int4, as pg_locks.objid shows it
        self._conn: Any = None
        self._socket: int | None = None  # the session's socket, dropped in forked children

    def _connect(self, name: str) -> Any:
        import psycopg

        from lakestack.errors import StorageError

        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10, application_name=name[:63])
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"cannot reach the catalog database to take the project lock ({first})") from None

    def acquire(self, command: str, wait: float = 0.0) -> None:
        import psycopg

        from lakestack.errors import StorageError

        try:
            super().acquire(command, wait)
        except psycopg.Error as exc:  # the session broke while trying (the server or network went away)
            self.release()
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"lost the catalog database while taking the project lock ({first})") from None

    def _try(self, command: str) -> bool:
        name = f"lakestack {command} pid {os.getpid()} since {_now()}"
        conn = self._conn or self._connect(name)
        got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_PG_CLASS, self.key)).fetchone()[0]
        if not got:
            self._conn = conn  # keep the session for the next try
            return False
        conn.execute("SELECT set_config('application_name', %s, false)", (name[:63],))
        self._socket = conn.pgconn.socket
        with _fds_lock:
            _held_fds.add(self._socket)
        self._conn = conn
        return True

    def holder(self) -> Holder:
        import re

        conn = self._conn or self._connect("lakestack lock probe")
        row = conn.execute(
            "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 2",
            (_PG_CLASS, self.key & 0xFFFFFFFF),
        ).fetchone()
        if conn is not self._conn:
            conn.close()
        if row is None:
            return Holder()
        m = re.match(r"lakestack (\S+) pid (\d+) since (.+)$", row[0] or "")
        if m is None:  # a session that took the key without saying who it is
            return Holder(pid=None, since=None, command=f"session {row[1]} of the catalog database")
        return Holder(int(m.group(2)), None, m.group(1), m.group(3))

    def alive(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except Exception as exc:  # the session broke: the server has dropped its advisory locks
            log.warning("%s: the lock's database session broke (%s)", self.what, str(exc).strip()[:200])
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        with _fds_lock:
            _held_fds.discard(self._socket or -1)
        self._socket = None
        try:
            conn.close()  # ends the session: the server drops its advisory locks
        except Exception as exc:  # the session is gone already (a cut network): so is the lock
            log.debug("closing the lock session: %s", exc)


def project_lock(env: Any, root: Path, project: str) -> ProjectLock:
    """The lock for a project in an environment: advisory in a PostgreSQL catalog, else a file."""
    from lakestack.storage.catalog import catalog_uri

    uri = catalog_uri(env, root)
    if uri.startswith("postgresql"):
        return PostgresLock("postgresql://" + uri.split("://", 1)[1], project)
    return FileLock(root / LOCK_FILE, project)


def scheduler_lock(env: Any, root: Path, project: str) -> ProjectLock:
    """The lock whose holder runs a project's schedules (orchestrate/leader.py): one `lakestack
    serve` per project and environment fires them; the others stand by. Advisory in a PostgreSQL
    catalog (serve processes on several machines), else a file in the project."""
    from lakestack.storage.catalog import catalog_uri

    what = f"the schedules of project {project}"
    uri = catalog_uri(env, root)
    if uri.startswith("postgresql"):
        return PostgresLock("postgresql://" + uri.split("://", 1)[1], project, key=f"{project}#schedules", what=what)
    return FileLock(root / SCHEDULER_LOCK_FILE, project, what=what)

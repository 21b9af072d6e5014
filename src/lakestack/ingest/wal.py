"""The HTTP collector's write-ahead log: what was acknowledged and is not in Iceberg yet (ADR 9).

Positions never go backwards. Bronze's checkpoint records the last log position it holds
(`committed`); on start the next position is after the larger of that and the newest position the
log knows (its last entry, or the name of its newest segment, which is the position the segment
starts at). A log that is missing, behind the checkpoint, or missing entries beyond it is reported
as a :class:`LogHealth` problem and kept in ``incidents.log`` beside the segments: acknowledged
records may have been lost before this start, and nothing about it may be silent.

One process writes a source's log: :class:`SourceLock` holds an exclusive `flock` on ``LOCK`` in
the log folder for the collector's life, and a second process is refused with the holder's pid.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakestack.errors import LakestackError, StorageError, Transient
from lakestack.failpoints import failpoint

log = logging.getLogger(__name__)

SUFFIX = ".wal"
INCIDENTS = "incidents.log"
LOCK = "LOCK"


class LogWriteError(StorageError, Transient):
    """The log could not be written (a full or failing disk): nothing of the group was acknowledged."""

    def __init__(self, message: str, cause: OSError | None = None) -> None:
        super().__init__(message)
        self.errno = cause.errno if cause is not None else None


class SourceBusy(LakestackError):
    """Another process collects this source (holds its log's lock). Exit code 3."""

    exit_code = 3


class SourceLock:
    """An exclusive `flock` on the log folder's LOCK file, held until :meth:`release` or the
    process ends (kill -9 included: the kernel drops it), so two collectors never share a log."""

    def __init__(self, folder: Path, source: str) -> None:
        self.path = folder / LOCK
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open the log of source {source} at {folder}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(f"cannot lock the log of source {source} ({self.path}): {exc}") from exc
            raise SourceBusy(
                f"source {source} is collected by {_holder(self.path)} (lock {self.path}); "
                "stop that `lakestack serve` first: two collectors must not share one log"
            ) from None
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": since}).encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        return f"pid {info['pid']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it is starting)"


@dataclass(frozen=True, slots=True)
class LogHealth:
    """What the log looked like at start against Bronze's checkpoint."""

    committed: int  # Bronze's checkpointed log position (-1: none)
    top: int  # the newest position the log knew at start (-1: none)
    segments: int
    lost: int  # positions beyond the checkpoint missing from the log (acknowledged, not committed)
    problem: str | None  # what was wrong, as logged; None when the log is whole
    incidents: int  # problems recorded in this log folder, ever (incidents.log)


class Wal:
    """An append-only log in segment files: each entry is position, length, CRC32 and payload.

    Appends are written and fsynced once per call; a failed append is cut off again, so it leaves
    nothing a restart could commit. A torn entry at the end (a crash mid-write) fails its CRC and
    is cut off on reading. A segment is named after the first position it holds; segments whose
    entries are all committed are deleted, except the newest.
    """

    HEADER = struct.Struct(">QII")

    def __init__(
        self,
        folder: Path,
        segment_bytes: int = 64 * 1024 * 1024,
        *,
        committed: int = -1,
        at_least: int = -1,
        source: str = "",
        lock: SourceLock | None = None,
    ) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.source = source or folder.name
        self._lock = lock or SourceLock(folder, self.source)  # before reading: nobody else writes now
        self._fd: int | None = None
        self._current = folder / f"{0:020d}{SUFFIX}"  # the open segment, once one is
        self._size = 0
        self._last: dict[Path, int] = {}  # segment → its last position (its name - 1 while empty)
        positions: list[int] = []
        for path in self._segments():
            entries = [pos for pos, _ in self._read(path)]
            positions += entries
            self._last[path] = entries[-1] if entries else int(path.stem) - 1
        top = max([-1, *self._last.values()])
        self._next = max(top, committed, at_least) + 1  # `at_least`: quarantine's checkpoint, which may be ahead
        self.health = self._check(committed, top, positions)
        if self.health.problem is not None:  # anchor the new position now, so the next start finds it
            try:
                self._roll()
            except OSError as exc:
                log.error("cannot start a log segment in %s: %s", folder, exc)

    # -- start: line the log up with the checkpoint ------------------------------------------------
    def _check(self, committed: int, top: int, positions: list[int]) -> LogHealth:
        beyond = [p for p in positions if p > committed]
        expected = range(committed + 1, committed + 1 + len(beyond))
        lost = (beyond[-1] - committed - len(beyond)) if beyond else 0
        problem = None
        if committed >= 0 and not self._last:
            problem = (
                f"the write-ahead log of source {self.source} ({self.folder}) is missing or empty while "
                f"Bronze's checkpoint is at log position {committed}"
            )
        elif top < committed:
            problem = (
                f"the write-ahead log of source {self.source} ({self.folder}) ends at position {top}, "
                f"behind Bronze's checkpoint ({committed}): it is not the log Bronze was fed from"
            )
        elif beyond != list(expected):
            problem = (
                f"the write-ahead log of source {self.source} ({self.folder}) misses {lost} entries after "
                f"Bronze's checkpoint ({committed}): acknowledged records in them are LOST"
            )
        incidents = self._incidents(problem)
        if problem is not None:
            log.error(
                "%s. If it was lost (a new disk or container, a deleted folder), records acknowledged after "
                "the last commit may have been lost before this start; positions continue from %d. "
                "This is incident %d of this log (%s).",
                problem,
                self._next,
                incidents,
                self.folder / INCIDENTS,
            )
        return LogHealth(committed, top, len(self._last), lost, problem, incidents)

    def _incidents(self, problem: str | None) -> int:
        """Record a problem beside the segments (so a later start still shows it); how many there are."""
        path = self.folder / INCIDENTS
        if problem is not None:
            line = json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), "problem": problem})
            try:
                with path.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                log.exception("cannot record the log incident in %s", path)
        try:
            return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        except OSError:
            return 1 if problem is not None else 0

    # -- reading ---------------------------------------------------------------------------------
    def _segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: int(p.stem))

    def _read(self, path: Path) -> Iterator[tuple[int, bytes]]:
        data = path.read_bytes()
        offset, header = 0, self.HEADER
        while offset + header.size <= len(data):
            position, length, crc = header.unpack_from(data, offset)
            payload = data[offset + header.size : offset + header.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            yield position, payload
            offset += header.size + length
        if offset < len(data):  # a torn entry (a crash mid-write): it was never acknowledged
            log.warning("%s: cut off a torn entry at byte %d", path.name, offset)
            with path.open("r+b") as f:
                f.truncate(offset)

    def read_after(self, position: int) -> Iterator[tuple[int, bytes]]:
        for path in self._segments():
            if self._last.get(path, position + 1) <= position:
                continue  # every entry of it is committed: do not read it
            for pos, payload in self._read(path):
                if pos > position:
                    yield pos, payload

    @property
    def next_position(self) -> int:
        return self._next

    # -- writing ---------------------------------------------------------------------------------
    def append(self, payloads: list[bytes]) -> int:
        """Write entries and fsync; returns the position of the first. On any failure nothing of them
        stays in the log and LogWriteError is raised (the caller must not acknowledge them)."""
        try:
            if self._fd is None or self._size >= self.segment_bytes or os.fstat(self._fd).st_nlink == 0:
                self._roll()
        except OSError as exc:
            self._close()
            raise LogWriteError(f"cannot open a log segment in {self.folder}: {exc}", exc) from exc
        assert self._fd is not None
        first, start = self._next, self._size
        block = b"".join(
            self.HEADER.pack(first + i, len(payload), zlib.crc32(payload)) + payload
            for i, payload in enumerate(payloads)
        )
        try:
            failpoint("wal.append.before_write")
            _write_all(self._fd, block)
            failpoint("wal.append.after_write")
            failpoint("wal.append.before_fsync")
            os.fsync(self._fd)
            failpoint("wal.append.after_fsync")
        except OSError as exc:
            self._undo(start, first, len(payloads))
            raise LogWriteError(f"cannot write the log in {self.folder}: {exc}", exc) from exc
        self._size += len(block)
        self._next = first + len(payloads)
        self._last[self._current] = self._next - 1
        return first

    def _undo(self, start: int, first: int, count: int) -> None:
        """Cut a failed write off. After a failed fsync the file's cached pages cannot be trusted, so
        the segment is closed and the next append starts a new one."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, start)
            os.fsync(self._fd)
        except OSError:  # the entries may stay: burn their positions so none is ever reused
            log.exception("cannot cut a failed write off %s; positions %d.. are skipped", self._current, first)
            self._next = first + count
        self._close()

    def _roll(self) -> None:
        self._close()
        path = self.folder / f"{self._next:020d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fd, self._current = fd, path
        failpoint("wal.roll.after_create")
        self._size = os.fstat(fd).st_size
        self._last.setdefault(path, self._next - 1)
        failpoint("wal.roll.before_dir_fsync")
        _fsync_dir(self.folder)  # the new segment's name is durable too

    def trim(self, committed: int) -> int:
        """Delete segments whose entries are all at or below `committed`, never the newest (its name
        keeps the position even when Bronze's checkpoint is not at hand). Returns how many."""
        segments = sorted(list(self._last.items()), key=lambda item: int(item[0].stem))  # a copy: the log
        doomed = [path for path, last in segments[:-1] if last <= committed]  # thread may roll meanwhile
        if doomed:  # pyiceberg never fsyncs a commit's files: flush them before the log lets go of their
            os.sync()  # records (rare: a segment goes every 64 MiB of log and after each start)
        removed = 0
        for path in doomed:
            failpoint("wal.trim.before_unlink")
            path.unlink(missing_ok=True)
            failpoint("wal.trim.after_unlink")
            self._last.pop(path, None)
            removed += 1
        return removed

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close()
        self._lock.release()


def _write_all(fd: int, block: bytes) -> None:
    view = memoryview(block)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

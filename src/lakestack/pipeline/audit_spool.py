"""The audit spool: audit rows on local disk, fsynced before the read they record shows anything,
committed to `_lakestack.audit` later in batches, exactly once (ADR 0034).

`.lakestack/audit/<environment>/` holds segments, one per writing process (`<ms>-<pid>-<hex>.ndjson`),
one JSON line per audit row. A writer holds an exclusive `flock` on its segment while it may still
append to it; the kernel drops the lock when the writer closes it or dies. A segment nobody holds is
*sealed*: it never changes again, and only sealed segments are committed.

A row may take several lines with the same `audit_id`: a read writes one before it starts (as an
error, "ended before the read finished") and one when it ends (its result and rows); the last line
of an id wins. So a read killed mid-way is still in the log, as unfinished.

A flush, under `flush.lock` (one flusher per environment on this host):
1. a `flush.json` left by an earlier flush is settled: if its batch id is in the table's history
   that commit landed, so its segments go; otherwise the manifest goes and the segments stay;
2. the sealed segments are folded into rows, `flush.json` names them and the batch id (the sha-256
   of their audit ids) and is fsynced, then one Iceberg append carries that batch id;
3. the segments, then the manifest, are deleted.
A crash anywhere leaves either segments not yet committed (committed by the next flush) or a
manifest whose batch id tells whether its segments are in the table; no row is lost or doubled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from lakestack.failpoints import failpoint

log = logging.getLogger(__name__)

SUFFIX = ".ndjson"
MANIFEST = "flush.json"
LOCK = "flush.lock"


def spool_folder(root: Path, environment: str) -> Path:
    return root / ".lakestack" / "audit" / environment


def _line(row: dict[str, Any]) -> bytes:
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _row(line: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
        data["at"] = datetime.fromisoformat(data["at"])
    except (ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("audit_id"), str) else None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditSpool:
    """One environment's spool folder; `append` writes this process's segment."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None
        self._name: str | None = None

    # -- writing ----------------------------------------------------------------------------------
    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write rows to this process's segment and fsync them; raises OSError when it cannot."""
        if not rows:
            return
        fd = self._segment()
        data = b"".join(_line(r) for r in rows)
        failpoint("audit.spool.before_write")
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)

    def _segment(self) -> int:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{datetime.now().strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
            # locked under a name no flusher lists, then renamed: a flusher never sees it unheld
            temporary = self.folder / f".{name}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.replace(temporary, self.folder / name)
            _fsync_dir(self.folder)  # the segment's name survives a crash with its first line
            self._fd, self._name = fd, name
        return self._fd

    def seal(self) -> None:
        """Close this process's segment: nothing more is written to it, a flush may commit it."""
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = self._name = None

    # -- reading ----------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX))

    def sealed(self) -> list[Path]:
        """Segments no live writer holds (this process's open one included among the held)."""
        return [p for p in self.segments() if p.name != self._name and not _held(p)]

    @staticmethod
    def rows(paths: list[Path]) -> list[dict[str, Any]]:
        """The rows of these segments, the last line of each audit id winning, in order of writing.
        A torn last line (a writer killed mid-write) is skipped: its row's earlier line stands."""
        folded: dict[str, dict[str, Any]] = {}
        for path in paths:
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # committed by another flusher meanwhile
                continue
            for line in data.split(b"\n"):
                row = _row(line) if line else None
                if row is not None:
                    folded[row["audit_id"]] = row
        return list(folded.values())

    def pending(self) -> list[dict[str, Any]]:
        """Every spooled row not yet committed, held segments included (reads still running)."""
        return self.rows(self.segments())

    # -- committing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def flushing(self) -> Iterator[None]:
        """The environment's flush lock (waits for another process's flush)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def commit(self, write: Callable[[list[dict[str, Any]], str], None], landed: Callable[[str], bool]) -> int:
        """Commit the sealed segments through `write(rows, batch_id)` (one Iceberg append), exactly
        once: `landed(batch_id)` tells whether an earlier flush's commit is in the table. Call it
        inside `flushing()`. The number of rows committed."""
        self.settle(landed)
        paths = self.sealed()
        rows = self.rows(paths)
        if not rows:
            self._remove(paths)  # empty or torn-only segments
            return 0
        rows.sort(key=lambda r: (r["at"], r["audit_id"]))
        digest = hashlib.sha256("\n".join(sorted(r["audit_id"] for r in rows)).encode()).hexdigest()
        batch_id = f"audit:{digest[:32]}:{len(rows)}"
        manifest = {"batch_id": batch_id, "segments": [p.name for p in paths]}
        temporary = self.folder / f".{MANIFEST}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.folder / MANIFEST)
        _fsync_dir(self.folder)
        write(rows, batch_id)  # failpoints audit.before_commit / audit.after_commit inside
        failpoint("audit.spool.before_remove")
        self._remove(paths)
        (self.folder / MANIFEST).unlink(missing_ok=True)
        return len(rows)

    def settle(self, landed: Callable[[str], bool]) -> None:
        """Finish a flush that ended between writing its manifest and removing its segments."""
        path = self.folder / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            batch_id, names = str(manifest["batch_id"]), [str(n) for n in manifest["segments"]]
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError, OSError):  # unreadable: os.replace makes this unlikely
            log.warning("ignoring an unreadable audit flush manifest %s", path)
            path.unlink(missing_ok=True)
            return
        if landed(batch_id):
            self._remove([self.folder / Path(n).name for n in names])
        path.unlink(missing_ok=True)

    @staticmethod
    def _remove(paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)


def _held(path: Path) -> bool:
    """Whether a live process holds the segment (its writer, still able to append)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # gone: not ours to commit
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the probe's lock too
    return False

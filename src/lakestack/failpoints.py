"""Named crash points in the commit paths, armed only by tests (FoundationDB's buggify, TiKV's fail-rs).

Every step of a commit path that matters for crash consistency calls :func:`failpoint` with its
name. Unarmed (the normal case) that is one global lookup and a return. A test arms points for a
child process through the environment::

    LAKESTACK_FAILPOINTS="wal.roll.after_create=kill;stream.after_quarantine_commit=2*raise"

or in its own process with :func:`armed`. Each term is ``NAME=[COUNT*]ACTION[(ARG)][@HIT]``:

- ``kill``: SIGKILL this process at once (no cleanup, no flush: a power cut as far as files go);
- ``raise``: raise ``OSError(EIO)``; ``enospc``: raise ``OSError(ENOSPC)`` (a full disk);
- ``sleep(MS)``: sleep that many milliseconds (widen a race window); ``off``: nothing;
- ``COUNT*``: fire at most COUNT times in this process (default: every hit);
- ``@HIT``: fire from the HIT-th time the point is reached (1-based; default 1).

With ``LAKESTACK_FAILPOINTS_LOG=PATH`` each firing appends ``NAME ACTION`` to PATH (fsynced
before the action), so a test can tell the process crashed where it meant it to. Names are
checked against :data:`NAMES`: arming a point that does not exist is an error, never a silent
no-op.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

ENV = "LAKESTACK_FAILPOINTS"
LOG_ENV = "LAKESTACK_FAILPOINTS_LOG"

# Every failpoint in the code, by commit path. tests/unit/test_failpoints.py checks each is reached
# somewhere in src/ and each has a row in the crash matrix.
NAMES: frozenset[str] = frozenset(
    {
        # the HTTP collector's write-ahead log (ingest/wal.py) and its collector (ingest/http.py)
        "wal.append.before_write",
        "wal.append.after_write",
        "wal.append.before_fsync",
        "wal.append.after_fsync",
        "wal.roll.after_create",
        "wal.roll.before_dir_fsync",
        "wal.trim.before_unlink",
        "wal.trim.after_unlink",
        "http.recover.before_commit",
        "http.recover.after_commit",
        "http.before_answer",
        "http.commit.before",
        "http.commit.after",
        # the stream writer (ingest/stream.py), shared by Kafka, Kinesis, NATS and the collector
        "stream.fence",
        "stream.before_quarantine_commit",
        "stream.after_quarantine_commit",
        "stream.after_bronze_commit",
        "stream.before_ack",
        # file ingest (ingest/files.py)
        "files.ledger.read",
        "files.before_read",  # a file is about to be opened for its records (tests widen the swap race here)
        "files.after_quarantine_commit",
        "files.before_bronze_commit",
        "files.after_bronze_commit",
        # REST pulls (ingest/rest.py): a page fetched and buffered, then each commit of its batch
        "rest.after_fetch",
        "rest.after_quarantine_commit",
        "rest.after_bronze_commit",
        # database pulls (ingest/database.py): quarantine, then Bronze, both carrying the pull's mark
        "database.after_quarantine_commit",
        "database.before_bronze_commit",
        "database.after_bronze_commit",
        # SFTP drops (ingest/sftp.py): a file downloaded to the run's private folder, not yet read
        "sftp.after_download",
        # storage commits (storage/warehouse.py): after data files are written, before the catalog commit
        "storage.append.after_write",
        "storage.append.after_commit",
        "storage.replace.after_write",
        "storage.replace.after_commit",
        # the compact checkpoint (storage/checkpoints.py): a side file (file ledger, folded batch ids)
        # written, the commit that references it next
        "checkpoints.side_file.after_write",
        # schema evolution to a newer contract version (storage/evolution.py): one metadata commit
        "schema.before_evolve",
        "schema.after_evolve",
        # Silver MERGE, Gold build, check results (pipeline/)
        "silver.before_commit",
        "silver.after_commit",
        "gold.after_staging",
        "gold.before_publish",
        "gold.after_publish",
        "checks.before_write",
        "checks.after_write",
        # table maintenance (storage/maintenance.py, storage/expiry.py): each commit, and file deletion
        "maintain.compact.after_write",
        "maintain.compact.after_commit",
        "maintain.manifests.after_write",
        "maintain.manifests.after_commit",
        "maintain.expire.before_commit",
        "maintain.expire.after_commit",
        "maintain.history.before_commit",
        "maintain.history.after_commit",
        "maintain.delete_file",
        # run records (pipeline/records.py): one commit per top-level run, after its data commits
        "runs.before_commit",
        "runs.after_commit",
        # alert state (monitor/alerts.py): one compare-and-swap commit per change, alerts sent after it
        "alerts.before_commit",
        "alerts.after_commit",
        # SLA evaluations (monitor/sla_history.py): one commit per evaluation
        "sla.before_commit",
        "sla.after_commit",
        # rollback of a Silver/Gold table (storage/snapshots.py): one metadata commit
        "rollback.before_commit",
        "rollback.after_commit",
        # backfill of a Silver dataset (pipeline/backfill.py): one commit replacing the range
        "backfill.before_commit",
        "backfill.after_commit",
        # quarantine replay (storage/replayed.py, pipeline/replay.py): the `_replayed_from` column
        # added to Bronze (one metadata commit, once), then one Bronze append of the replayed rows
        "replay.before_schema",
        "replay.after_schema",
        "replay.before_commit",
        "replay.after_commit",
        # the audit log (pipeline/audit.py, audit_spool.py): rows spooled, then committed in batches
        "audit.spool.before_write",
        "audit.before_commit",
        "audit.after_commit",
        "audit.spool.before_remove",
        # API keys (pipeline/apikeys.py): one commit per key created or revoked
        "keys.before_commit",
        "keys.after_commit",
        # the token vault (pipeline/vault.py): one append per `lakestack policies vault`
        "vault.before_commit",
        "vault.after_commit",
        # `lakestack apply` (pipeline/apply.py): its intent, each table created or evolved, each Silver
        # backfill, the Gold builds, each drop, then the one `_lakestack.applied` record commit
        "apply.intent.after_commit",
        "apply.schema.after_commit",
        "apply.backfill.after_commit",
        "apply.gold.after_builds",
        "apply.drop.after_commit",
        "apply.record.before_commit",
        "apply.record.after_commit",
        # erasure (storage/rewrite.py, pipeline/erase.py): one rewrite commit per table holding the
        # subject, then the expiry of the older snapshots (maintain.expire.*, maintain.delete_file),
        # then the receipt in the audit log
        "erase.rewrite.after_write",
        "erase.rewrite.after_commit",
        "erase.seal.after_commit",
        "erase.before_expire",
        "erase.receipt.before_commit",
        "erase.receipt.after_commit",
    }
)

_TERM = re.compile(
    r"^(?:(?P<count>\d+)\*)?(?P<action>kill|raise|enospc|sleep|off)(?:\((?P<arg>\d+)\))?(?:@(?P<hit>\d+))?$"
)


class FailpointError(ValueError):
    """A failpoint specification that cannot be armed (unknown name or action)."""


@dataclass(slots=True)
class _Armed:
    action: str
    arg: int
    remaining: int | None  # firings left; None: every hit
    start: int  # the first hit that fires (1-based)
    hits: int = 0


def parse(spec: str) -> dict[str, _Armed]:
    """`name=action;…` as armed points. Raises FailpointError on an unknown name or action."""
    out: dict[str, _Armed] = {}
    for term in filter(None, (t.strip() for t in re.split(r"[;,]", spec))):
        name, sep, action = term.partition("=")
        name = name.strip()
        if not sep or name not in NAMES:
            raise FailpointError(f"unknown failpoint {name!r} in {ENV} (known: {', '.join(sorted(NAMES))})")
        match = _TERM.match(action.strip())
        if match is None:
            raise FailpointError(
                f"failpoint {name}: cannot read action {action!r} (kill, raise, enospc, sleep(MS), off)"
            )
        count = match["count"]
        out[name] = _Armed(
            match["action"], int(match["arg"] or 0), int(count) if count else None, int(match["hit"] or 1)
        )
    return out


_armed: dict[str, _Armed] = parse(os.environ.get(ENV, ""))
_lock = threading.Lock()


def failpoint(name: str) -> None:
    """Crash, fail or pause here if a test armed `name`; otherwise return at once."""
    if not _armed:
        return
    _fire(name)


def _fire(name: str) -> None:
    point = _armed.get(name)
    if point is None:
        return
    with _lock:
        point.hits += 1
        if point.hits < point.start or point.action == "off" or point.remaining == 0:
            return
        if point.remaining is not None:
            point.remaining -= 1
    _record(name, point.action)
    if point.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # the signal is delivered asynchronously; never run past the point
    elif point.action == "raise":
        raise OSError(errno.EIO, f"failpoint {name}: injected I/O error")
    elif point.action == "enospc":
        raise OSError(errno.ENOSPC, f"failpoint {name}: no space left on device (injected)")
    elif point.action == "sleep":
        time.sleep(point.arg / 1000)


def _record(name: str, action: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{name} {action}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def armed(spec: str) -> Iterator[None]:
    """Arm points in this process for the duration of a block (tests)."""
    global _armed
    before = _armed
    _armed = {**before, **parse(spec)}
    try:
        yield
    finally:
        _armed = before


def hits(log_path: str) -> list[str]:
    """The failpoints that fired, in order, from a LAKESTACK_FAILPOINTS_LOG file."""
    try:
        with open(log_path, encoding="utf-8") as f:
            return [line.split(" ", 1)[0] for line in f if line.strip()]
    except FileNotFoundError:
        return []

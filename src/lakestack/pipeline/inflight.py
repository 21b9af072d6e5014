"""Runs in flight: a small marker file per top-level run, so a run that was killed is still recorded.

Run records are buffered and written when a run ends (pipeline/records.py): a process killed with
SIGKILL, by the OOM killer or a power cut never reaches that point. So each top-level run leaves a
marker in `.lakestack/runs/<environment>/<run id>.json` (its job, run ids, start, pid, host and the
process's start time) when it starts and removes it once its record is written. The next run that
writes records on the same host finds the markers of processes that are gone and records each as
FAIL ("ended without finishing") in the same commit; `lakestack runs` shows the live ones as
RUNNING (a stream session, a long ingest).

A marker of another host is left alone (its process cannot be checked from here). A pid that was
reused is told apart by the process start time. Marker I/O never fails a job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakestack.pipeline.events import JobRun

log = logging.getLogger(__name__)


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command name, which may hold spaces


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    return started is None or _process_start(pid) in (None, started)


@dataclass(frozen=True, slots=True)
class Marker:
    run_id: str
    lake_run_id: str | None
    job: str
    job_type: str
    started_at: datetime
    pid: int
    host: str
    process_start: str | None
    seen_at: datetime  # the marker's last touch: the start, or a stream session's last progress

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    @property
    def alive(self) -> bool:
        """True unless this host can tell the process is gone."""
        return not self.local or _alive(self.pid, self.process_start)

    def as_job(self) -> JobRun:
        """The FAIL record of a run whose process ended without finishing it."""
        return JobRun(
            run_id=self.run_id,
            job=self.job,
            job_type=self.job_type,  # type: ignore[arg-type]
            lake_run_id=self.lake_run_id,
            started_at=self.started_at,
            ended_at=max(self.seen_at, self.started_at),
            status="FAIL",
            error=f"ended without finishing (process {self.pid} on {self.host} was killed)",
            exit_code=3,
        )

    def as_row(self) -> dict[str, Any]:
        """A RUNNING row for `lakestack runs` (the columns of a run record that a marker knows)."""
        return {
            "run_id": self.run_id,
            "lake_run_id": self.lake_run_id,
            "parent_run_id": None,
            "job": self.job,
            "job_type": self.job_type,
            "status": "RUNNING",
            "started_at": self.started_at,
            "ended_at": None,
            "duration_s": None,
            "rows_read": None,
            "rows_written": None,
            "rows_quarantined": None,
            "rows_dropped": None,
            "datasets": [],
            "checks_total": 0,
            "checks_failed": 0,
            "checks": [],
            "stages": [],
            "progress": None,
            "source_file": None,
            "error": None,
            "listener_errors": 0,
            "listener_drops": 0,
        }


class InFlight:
    """The markers of one environment's runs in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def start(self, job: JobRun) -> None:
        marker = {
            "run_id": job.run_id,
            "lake_run_id": job.lake_run_id,
            "job": job.job,
            "job_type": job.job_type,
            "started_at": job.started_at.isoformat(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "process_start": _process_start(os.getpid()),
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{job.run_id}.tmp"
            tmp.write_text(json.dumps(marker))
            tmp.replace(self._path(job.run_id))
        except OSError as exc:  # a read-only project folder: the run goes on, unmarked
            log.debug("could not mark run %s in flight: %s", job.run_id, exc)

    def touch(self, run_id: str) -> None:
        """A long run is still going (its `seen_at`: when a killed one was last known alive)."""
        with contextlib.suppress(OSError):
            os.utime(self._path(run_id))

    def finish(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            self._path(run_id).unlink(missing_ok=True)

    def claim(self, marker: Marker) -> bool:
        """Take an abandoned marker to record it (one of two runs reaping at once wins)."""
        try:
            self._path(marker.run_id).rename(self.folder / f"{marker.run_id}.claimed")
        except OSError:
            return False
        return True

    def settle(self, run_ids: list[str], *, recorded: bool) -> None:
        """Claimed markers: gone once their FAIL records are written, back for the next run if not."""
        for run_id in run_ids:
            claimed = self.folder / f"{run_id}.claimed"
            with contextlib.suppress(OSError):
                claimed.unlink() if recorded else claimed.rename(self._path(run_id))

    def markers(self) -> list[Marker]:
        out: list[Marker] = []
        if not self.folder.is_dir():
            return out
        for path in self.folder.glob("*.json"):
            try:
                data = json.loads(path.read_text())
                seen = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                out.append(
                    Marker(
                        run_id=str(data["run_id"]),
                        lake_run_id=data.get("lake_run_id"),
                        job=str(data["job"]),
                        job_type=str(data["job_type"]),
                        started_at=datetime.fromisoformat(data["started_at"]),
                        pid=int(data["pid"]),
                        host=str(data["host"]),
                        process_start=data.get("process_start"),
                        seen_at=seen,
                    )
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:  # half-written or foreign: skip it
                log.debug("ignoring run marker %s: %s", path.name, exc)
        return sorted(out, key=lambda m: m.started_at, reverse=True)

    def abandoned(self) -> list[Marker]:
        """Markers of runs on this host whose process is gone."""
        return [m for m in self.markers() if not m.alive]

    def running(self) -> list[Marker]:
        return [m for m in self.markers() if m.alive]

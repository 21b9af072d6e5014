"""Running the CLI as a hostile user would meet it: a child process under a memory cap, checked for
a clear message, the documented exit code, no traceback, and a lake left as it was."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_capped(
    *args: str,
    cwd: Path | None = None,
    memory_mb: int = 1536,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Outcome:
    """`lakestack ARGS` in a child process with RLIMIT_AS = `memory_mb` (address space, so the cap
    holds for C allocations too) and a wall-clock timeout; asserts there is no traceback."""

    def cap() -> None:
        limit = memory_mb * MiB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    full_env.pop("LAKESTACK_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "lakestack", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
        preexec_fn=cap,
    )
    outcome = Outcome(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in outcome.output, outcome.output[-3000:]
    return outcome


def lake_fingerprint(project: Path) -> str:
    """A digest of every file under the project's warehouse and catalog folders (names, sizes and
    contents): equal before and after means the lake was not changed."""
    digest = hashlib.sha256()
    for folder in ("warehouse", ".lakestack"):
        root = project / folder
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.name.endswith(("-wal", "-shm", ".lock")):  # SQLite's journals and run locks change on reads
                continue
            digest.update(str(path.relative_to(project)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()

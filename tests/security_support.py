"""Running the CLI as a hostile user would meet it: a child process under a memory cap, checked for
a clear message, the documented exit code, no traceback, and a lake left as it was."""

from __future__ import annotations

import hashlib
import os
import resource
import sqlite3
import subprocess
import sys
from contextlib import closing
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
    memory_mb: int = 3072,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Outcome:
    """`lakestack ARGS` in a child process with RLIMIT_AS = `memory_mb` (address space, so the cap
    holds for C allocations too) and a wall-clock timeout; asserts there is no traceback."""

    def cap() -> None:
        limit = memory_mb * MiB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # glibc gives threads malloc arenas of 64 MiB address space each, as many as they contend for:
    # two keep the address space a cap measures close to the memory really used
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "MALLOC_ARENA_MAX": "2", **(env or {})}
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
    contents) and of every catalog row: equal before and after means the lake was not changed.

    The audit log is left out: every read, refused ones included, is audited (pipeline/audit.py), and
    an audited read must change nothing else. So are its spool (ADR 0034), SQLite's journals, the run
    locks and the local caches (`.lakestack/cache`: the contract regexes' verdicts, not lake state)."""
    digest = hashlib.sha256()
    skipped = (
        project / "warehouse" / "_lakestack" / "audit",
        project / ".lakestack" / "audit",
        project / ".lakestack" / "cache",
    )
    for folder in ("warehouse", ".lakestack"):
        root = project / folder
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not any(k in p.parents for k in skipped)):
            if path.name.endswith(("-wal", "-shm", ".lock")):  # SQLite's journals and run locks change on reads
                continue
            if path.suffix == ".db":  # the catalog: its rows, less the audit table's
                rows = _catalog_rows(path)
                if rows:  # a catalog that only the audit log made counts as none
                    digest.update(str(path.relative_to(project)).encode() + rows)
                continue
            digest.update(str(path.relative_to(project)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _catalog_rows(path: Path) -> bytes:
    """Every table row of a SQLite catalog but the audit table's. Namespaces are left out: the first
    audited read opens the warehouse for writing, which creates the layers' namespaces (no data)."""
    digest, kept = hashlib.sha256(), 0
    with closing(sqlite3.connect(path)) as con:
        tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        for table in tables:
            for row in sorted(map(repr, con.execute(f'SELECT * FROM "{table}"'))):
                if "'_lakestack', 'audit'" in row or table == "iceberg_namespace_properties":
                    continue
                digest.update(table.encode() + row.encode())
                kept += 1
    return digest.digest() if kept else b""

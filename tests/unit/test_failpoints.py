"""Failpoints: parsing, firing, counting, and the registry kept true to the code."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lakestack import failpoints
from lakestack.failpoints import FailpointError, armed, failpoint, parse

SRC = Path(__file__).resolve().parents[2] / "src" / "lakestack"


def test_unarmed_points_do_nothing() -> None:
    for name in failpoints.NAMES:
        failpoint(name)


def test_unknown_names_and_actions_are_refused() -> None:
    with pytest.raises(FailpointError, match=r"unknown failpoint 'wal\.nope'"):
        parse("wal.nope=kill")
    with pytest.raises(FailpointError, match="cannot read action"):
        parse("wal.roll.after_create=explode")


def test_raise_and_enospc_raise_os_errors() -> None:
    with armed("wal.append.before_write=raise"), pytest.raises(OSError, match="injected I/O error") as info:
        failpoint("wal.append.before_write")
    assert info.value.errno == errno.EIO
    with armed("wal.append.before_fsync=enospc"), pytest.raises(OSError, match="no space left") as info:
        failpoint("wal.append.before_fsync")
    assert info.value.errno == errno.ENOSPC
    failpoint("wal.append.before_write")  # disarmed after the block


def test_count_and_start_hit() -> None:
    fired = 0
    with armed("stream.fence=2*raise@3"):
        for _ in range(6):
            try:
                failpoint("stream.fence")
            except OSError:
                fired += 1
    assert fired == 2
    with armed("stream.fence=off"):
        failpoint("stream.fence")


def test_kill_from_the_environment_kills_the_child_and_logs_the_hit(tmp_path: Path) -> None:
    log = tmp_path / "hits.log"
    code = "from lakestack.failpoints import failpoint\nfailpoint('wal.roll.after_create')\nprint('survived')"
    env = {**os.environ, "LAKESTACK_FAILPOINTS": "wal.roll.after_create=kill", "LAKESTACK_FAILPOINTS_LOG": str(log)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert "survived" not in proc.stdout
    assert failpoints.hits(str(log)) == ["wal.roll.after_create"]


def test_every_registered_point_is_in_the_code_and_every_point_in_the_code_is_registered() -> None:
    used: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.name == "failpoints.py":
            continue
        used |= set(re.findall(r"failpoint\(\s*[\"']([a-z_.]+)[\"']", path.read_text()))
    assert used <= failpoints.NAMES, f"not registered: {sorted(used - failpoints.NAMES)}"
    assert used >= failpoints.NAMES, f"registered but never reached: {sorted(failpoints.NAMES - used)}"

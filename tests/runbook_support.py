"""Run a runbook's scripted parts: the `sh` blocks of a docs/runbooks/*.md file, in one bash shell
with `lakestack` on PATH (this interpreter's package), so a test proves the commands a runbook
tells an operator to type still work.

Convention of every runbook: its last `sh` block is the "Walk-through on the Northwind example"
(it makes the example and the trouble the runbook is about); the steps' blocks come before it.
The walk-through runs first, then every step's block in order.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

RUNBOOKS = Path(__file__).resolve().parents[1] / "docs" / "runbooks"


def sh_blocks(runbook: str) -> list[str]:
    """The `sh` fenced blocks of docs/runbooks/<runbook>, in document order."""
    text = (RUNBOOKS / runbook).read_text(encoding="utf-8")
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def script(runbook: str, *, min_blocks: int = 2) -> str:
    """The walk-through (last block) then every step's block, under `set -euo pipefail`."""
    blocks = sh_blocks(runbook)
    assert len(blocks) >= min_blocks, f"{runbook}: {len(blocks)} sh blocks, expected at least {min_blocks}"
    walk_through, steps = blocks[-1], blocks[:-1]
    return "set -euo pipefail\n" + walk_through + "".join(steps)


def run_runbook(
    runbook: str, cwd: Path, *, min_blocks: int = 2, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run `runbook`'s script in `cwd` and assert it exited 0 (its output in the message if not)."""
    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "lakestack"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lakestack "$@"\n', encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESTACK_FAILPOINTS")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", COLUMNS="200")
    done = subprocess.run(
        ["bash", "-c", script(runbook, min_blocks=min_blocks)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done

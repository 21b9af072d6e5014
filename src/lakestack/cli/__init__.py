"""The `lakestack` command line (Typer + rich)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

# `lakestack stream` stops cleanly on SIGTERM/SIGINT from its first moment: importing Typer and rich
# takes a few hundred milliseconds on a loaded machine, and a signal then would end the process
# with -15. The signals are noted here, before those imports; the stream command takes them over.
EARLY_SIGNALS: list[int] = []


def _note(signum: int, _frame: FrameType | None) -> None:
    EARLY_SIGNALS.append(signum)


if os.path.basename(sys.argv[0]) == "lakestack" and "stream" in sys.argv[1:]:
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _note)

"""Bounded stops for the long-running commands (`lakestack stream`).

A stop (SIGTERM, Ctrl-C) makes a final commit and leaves the broker; every step of it has its own
bound (the commit's retry budget, the consumer's leave wait, the listeners' close waits). Two
guards stand behind those bounds, for what they do not foresee:

- `arm_stop_dump`: a stop still under way STOP_DUMP_S seconds after the signal writes where each
  thread is to stderr (faulthandler's own watchdog thread: it needs no GIL), so a stop that hangs
  says where, instead of waiting for a supervisor's SIGKILL without a word;
- `exit_after`: once the command has finished its work and printed its summary, the interpreter
  gets EXIT_GRACE_S seconds to end; a thread that holds it up (a broker client's background close)
  is reported with its stack and the process exits with the command's code. A hang inside the
  interpreter's finalization, where no Python thread runs any more, ends FINAL_GRACE_S later by
  faulthandler's watchdog (stacks, exit 1). By then every commit is in the table: nothing is lost.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading

STOP_DUMP_S = 150.0  # a stop this long is stuck somewhere: the final commit's budget is 60 s
EXIT_GRACE_S = 15.0  # after the summary, this long for the interpreter to end
FINAL_GRACE_S = 15.0  # and this much longer for its finalization, where no Python thread runs

_armed = False


def arm_stop_dump(seconds: float = STOP_DUMP_S) -> None:
    """From now on, a process still alive after `seconds` dumps every thread's stack to stderr
    (once; the process goes on)."""
    global _armed
    if _armed:
        return
    _armed = True
    try:
        faulthandler.dump_traceback_later(seconds, repeat=False, file=sys.stderr, exit=False)
    except (ValueError, OSError, RuntimeError):  # stderr has no file descriptor (embedded): no dump
        _armed = False


def exit_after(code: int = 0, seconds: float = EXIT_GRACE_S) -> None:
    """Give the interpreter `seconds` to end on its own, then end it with `code`: a daemon timer,
    so an interpreter that ends in time never waits for it."""

    def _force() -> None:
        names = sorted(t.name for t in threading.enumerate() if t is not threading.current_thread())
        print(
            f"lakestack: the process had not ended {seconds:.0f} s after its work was done "
            f"(threads: {', '.join(names) or 'none'}); where each thread is:",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(seconds, _force)
    timer.daemon = True
    timer.name = "lakestack-exit-guard"
    timer.start()
    # A hang past the point where Python threads can run (the interpreter's own finalization, e.g. a
    # broker client's destructor) is met by faulthandler's C watchdog: the stacks, then exit 1.
    # It replaces the stop dump (one watchdog per process); a clean finalization cancels it.
    with contextlib.suppress(ValueError, OSError, RuntimeError):
        faulthandler.dump_traceback_later(seconds + FINAL_GRACE_S, repeat=False, file=sys.stderr, exit=True)

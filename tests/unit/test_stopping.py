"""The guards behind a stream's stop (cli/stopping.py), in real child processes: a thread that
would hold the exit of a finished command cannot, and a stop that hangs says where."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time


def _run(code: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    return done, time.monotonic() - started


def test_exit_after_ends_a_process_a_thread_holds_with_the_code_and_the_stacks() -> None:
    done, took = _run(
        """
        import threading
        from lakestack.cli.stopping import exit_after

        def held_up():  # a non-daemon thread: the interpreter waits for it at exit, for ever
            threading.Event().wait()

        threading.Thread(target=held_up, name="stuck-leave").start()
        print("summary", flush=True)
        exit_after(3, seconds=1.0)
        """
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "summary\n"
    assert "had not ended 1 s after its work was done" in done.stderr
    assert "stuck-leave" in done.stderr and "in held_up" in done.stderr  # the names, then the stacks
    assert took < 30


def test_exit_after_never_delays_a_process_that_ends_on_its_own() -> None:
    done, took = _run(
        """
        from lakestack.cli.stopping import exit_after

        exit_after(3, seconds=30.0)
        print("done", flush=True)
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
    assert took < 25  # not the 30 s of the guard


def test_a_stop_that_hangs_dumps_every_thread_once_and_goes_on() -> None:
    done, _ = _run(
        """
        import time
        from lakestack.cli.stopping import arm_stop_dump

        arm_stop_dump(0.5)
        arm_stop_dump(0.5)  # a second signal arms nothing more

        def final_commit():
            time.sleep(2.0)

        final_commit()
        print("stopped", flush=True)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped\n"
    assert done.stderr.count("Timeout (0:00:00.500000)!") == 1
    assert "in final_commit" in done.stderr


def test_a_hang_in_finalization_is_ended_by_the_c_watchdog() -> None:
    """A destructor that blocks while the interpreter finalizes (no Python thread runs then): the
    faulthandler watchdog dumps and exits 1 instead of hanging for ever."""
    done, took = _run(
        """
        import time
        from lakestack.cli import stopping

        stopping.FINAL_GRACE_S = 1.0

        class Client:
            def __del__(self):  # like a broker client's close, run by the finalizing interpreter
                time.sleep(600)

        held = Client()  # a module global: collected while the interpreter finalizes
        print("summary", flush=True)
        stopping.exit_after(0, seconds=1.0)
        """
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == "summary\n"
    assert "Timeout (0:00:02)!" in done.stderr and "__del__" in done.stderr
    assert took < 30

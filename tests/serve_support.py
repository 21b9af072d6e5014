"""A real uvicorn server on 127.0.0.1 serving a project's API, for the duration of a `with`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_server(root: Path) -> Iterator[str]:
    import uvicorn

    from lakestack.pipeline.lake import Lake
    from lakestack.serve.api import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(Lake.open(root), insecure_dev=True), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# -- `lakestack serve` as a real child process (kill tests, crash matrix, lock tests) -------------------

LAKESTACK = str(Path(sys.executable).parent / "lakestack")


def start_serve(
    root: Path, port: int, failpoints: str = "", hits: Path | None = None, *, insecure_dev: bool = True
) -> subprocess.Popen[bytes]:
    """`lakestack serve` on 127.0.0.1:`port`, with failpoints armed when given (hits logged to `hits`);
    `insecure_dev` (the default in tests): requests without an API key are let in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESTACK_FAILPOINTS")}
    if failpoints:
        env["LAKESTACK_FAILPOINTS"] = failpoints
    if hits is not None:
        env["LAKESTACK_FAILPOINTS_LOG"] = str(hits)
    command = [LAKESTACK, "-p", str(root), "serve", "--port", str(port), "--log-level", "warning"]
    command += ["--insecure-dev"] if insecure_dev else []
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def wait_healthy(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 90) -> bool:
    """True once the server answers /health; False if `proc` exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"the server on port {port} did not come up in {timeout} s")


def stop_serve(proc: subprocess.Popen[bytes], timeout: float = 90) -> str:
    """SIGTERM (a clean stop commits what the log holds); its stderr. Asserts it exited 0."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    text = err.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def kill_serve(proc: subprocess.Popen[bytes]) -> str:
    """SIGKILL; its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    return err.decode(errors="replace")

"""A moto server on 127.0.0.1 (S3, Kinesis, Glue, ...) reached through the real boto3 client."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto in server mode on a free loopback port; yield its endpoint URL. Shared by the
    session: tests using it name their resources apart."""
    yield from _moto_server()


@pytest.fixture
def own_moto_server() -> Iterator[str]:
    """A moto server of the test's own, in a child process (moto's backends are global to a process,
    so a second in-process server would share state), for tests that see account-wide names such as
    the Glue databases `bronze`, `silver`, ... that other tests' catalogs create."""
    import subprocess
    import sys
    import time
    import urllib.request

    from serve_support import free_port

    port = free_port()
    env = {**os.environ, **FAKE_CREDENTIALS}
    code = "import sys; from moto.server import main; main(sys.argv[1:])"
    argv = [sys.executable, "-c", code, "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"moto server did not start: {proc.communicate()[1][-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _moto_server() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        message = f"moto[server] is not installed ({exc})"
        if os.environ.get("LAKESTACK_REQUIRE_SERVICES"):
            pytest.fail(message + "; LAKESTACK_REQUIRE_SERVICES is set")
        pytest.skip(message)
    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

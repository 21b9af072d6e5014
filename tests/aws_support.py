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
    """Start moto in server mode on a free loopback port; yield its endpoint URL."""
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

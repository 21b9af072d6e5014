"""Real alert endpoints on 127.0.0.1: a webhook HTTP server and an SMTP server (aiosmtpd), and a
project with an `alerts:` block."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Webhook:
    """POST endpoint that answers `status` after `delay` seconds and keeps what it accepted."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self.status = 200
        self.delay = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.attempts += 1
                time.sleep(owner.delay)
                if owner.status < 300:
                    owner.received.append(json.loads(body))
                    owner.headers.append(dict(self.headers))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self) -> list[tuple[str, str]]:
        """(event, incident key) of each generic JSON payload received, in order."""
        return [(p["event"], p["key"]) for p in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def smtp_server(user: str | None = None, password: str | None = None) -> Iterator[tuple[int, list[Message]]]:
    """An aiosmtpd server on a free loopback port; with `user`, it requires that login (no TLS)."""
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
    except ImportError as exc:
        if os.environ.get("LAKESTACK_REQUIRE_SERVICES"):
            pytest.fail(f"aiosmtpd is not installed ({exc}); LAKESTACK_REQUIRE_SERVICES is set")
        pytest.skip(f"aiosmtpd is not installed ({exc})")
    from serve_support import free_port

    received: list[Message] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(message_from_bytes(envelope.content))
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535

    options: dict[str, Any] = {}
    if user is not None:
        options = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False}
    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller.port, received
    finally:
        controller.stop()


def with_alerts(project: Path, alerts: dict[str, Any], environment: str = "dev") -> Path:
    """Give the project's environment an `alerts:` block."""
    path = project / "lakestack.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["environments"][environment]["alerts"] = alerts
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return project

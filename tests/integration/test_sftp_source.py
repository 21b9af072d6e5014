"""A files source whose landing folder is on an SFTP server: a real asyncssh SFTP server on
127.0.0.1, started by the test in a thread and stopped after it. Password and key auth, only files
not in the ledger downloaded, the same content under a new name skipped, a file that changes while
it is downloaded refused for the run and picked up by the next, a wrong password or an unknown host
key (exit 3), and the secrets never in any output."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, spawn
from lakestack import Lake

pytestmark = pytest.mark.integration
asyncssh = pytest.importorskip("asyncssh")

PASSWORD = "pw-9f8e7d6c5b4a"
CONTRACT = """\
source: rates
version: 1
key: [day, currency]
file: {pattern: "rates_{date:%Y%m%d}*.csv", format: csv}
columns:
  - {name: day, type: date, nullable: false}
  - {name: currency, type: string, nullable: false, regex: "^[A-Z]{3}$"}
  - {name: rate, type: "decimal(12,6)", nullable: false}
"""


@dataclass
class Server:
    root: Path  # the folder the server serves (chroot)
    port: int
    host_key: Any
    client_key: Any
    opened: list[str] = field(default_factory=list)  # files the clients opened for reading

    def known_hosts(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key.export_public_key().decode().strip()}\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "sftp-root"
    (root / "drops").mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    state = Server(root, 0, host_key, client_key)
    loop = asyncio.new_event_loop()

    class Auth(asyncssh.SSHServer):  # type: ignore[misc]
        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == "drops" and password == PASSWORD

    class Sftp(asyncssh.SFTPServer):  # type: ignore[misc]
        def __init__(self, chan: Any) -> None:
            super().__init__(chan, chroot=str(root).encode())

        def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
            state.opened.append(Path(path.decode()).name)
            return super().open(path, pflags, attrs)

    async def start() -> Any:
        return await asyncssh.create_server(
            Auth,
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
            sftp_factory=Sftp,
        )

    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    state.port = holder["server"].sockets[0].getsockname()[1]
    try:
        yield state
    finally:

        async def stop() -> None:
            holder["server"].close()
            await holder["server"].wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def project(root: Path, server: Server, auth: str, *, known_hosts: str = "known_hosts") -> Path:
    (root / "contracts").mkdir(parents=True, exist_ok=True)
    (root / "contracts" / "rates.v1.yaml").write_text(CONTRACT)
    (root / "known_hosts").write_text(server.known_hosts())
    (root / "lakestack.yaml").write_text(
        "name: sftptest\nsources:\n  rates:\n    kind: files\n    contract: rates\n"
        f"    landing: sftp://127.0.0.1:{server.port}/drops\n"
        f"    sftp: {{user: drops, {auth}, known_hosts: {known_hosts}, connect_timeout: 5}}\n"
    )
    return root


def drop(server: Server, name: str, rows: list[str]) -> None:
    (server.root / "drops" / name).write_text("day,currency,rate\n" + "".join(r + "\n" for r in rows))


def bronze_rows(root: Path) -> list[dict[str, Any]]:
    with Lake.open(root) as lake:
        return lake.warehouse.load("bronze.rates").scan().to_arrow().to_pylist()


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SFTP_PASSWORD", PASSWORD)
    return PASSWORD


def test_password_auth_downloads_only_files_not_in_the_ledger(tmp_path: Path, server: Server, password: str) -> None:
    root = project(tmp_path / "p", server, "password: {secret: SFTP_PASSWORD}")
    drop(server, "rates_20261101.csv", ["2026-11-01,EUR,1.08", "2026-11-01,GBP,1.27"])
    drop(server, "rates_20261102.csv", ["2026-11-02,EUR,1.09", "2026-11-02,usd,1.00"])  # usd: quarantined
    drop(server, "notes.txt", ["not a drop"])
    (server.root / "drops" / ".partial").write_text("hidden")
    with Lake.open(root) as lake:
        report = lake.ingest().sources[0]
    assert sorted((f.name, f.status, f.landed, f.quarantined) for f in report.files) == [
        ("rates_20261101.csv", "landed", 2, 0),
        ("rates_20261102.csv", "landed", 1, 1),
    ]
    assert sorted(server.opened) == ["rates_20261101.csv", "rates_20261102.csv"]
    server.opened.clear()
    drop(server, "rates_20261103.csv", ["2026-11-03,EUR,1.10"])
    drop(server, "rates_20261104_copy.csv", ["2026-11-01,EUR,1.08", "2026-11-01,GBP,1.27"])  # content seen before
    done = cli(root, "ingest", "--json", SFTP_PASSWORD=password)
    assert done.returncode == 0, done.stderr
    assert sorted(server.opened) == ["rates_20261103.csv", "rates_20261104_copy.csv"]  # not the two in the ledger
    out = json.loads(done.stdout)
    files = {f["name"]: f["status"] for s in out["sources"] for f in s["files"]}
    assert files == {"rates_20261103.csv": "landed", "rates_20261104_copy.csv": "skipped"}
    assert password not in done.stdout + done.stderr
    assert len(bronze_rows(root)) == 4


def test_key_auth_and_a_wrong_password_or_host_key(tmp_path: Path, server: Server, monkeypatch: Any) -> None:
    pem = server.client_key.export_private_key().decode()
    monkeypatch.setenv("SFTP_KEY", pem)
    root = project(tmp_path / "k", server, "private_key: {secret: SFTP_KEY}")
    drop(server, "rates_20261101.csv", ["2026-11-01,EUR,1.08"])
    done = cli(root, "ingest", SFTP_KEY=pem)
    assert done.returncode == 0, done.stderr
    assert len(bronze_rows(root)) == 1
    assert "PRIVATE KEY" not in done.stdout + done.stderr

    wrong = project(tmp_path / "w", server, "password: {secret: SFTP_PASSWORD}")
    done = cli(wrong, "ingest", SFTP_PASSWORD="not-the-pw-123")
    assert done.returncode == 3, done.stderr
    assert "cannot be reached" in done.stderr and "drops@127.0.0.1" in done.stderr
    assert "not-the-pw-123" not in done.stdout + done.stderr and "Traceback" not in done.stderr

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    (wrong / "known_hosts").write_text(f"[127.0.0.1]:{server.port} {other}\n")  # a server we do not know
    done = cli(wrong, "ingest", SFTP_PASSWORD=PASSWORD)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_a_file_that_changes_while_downloaded_waits_for_the_next_run(
    tmp_path: Path, server: Server, password: str
) -> None:
    root = project(tmp_path / "c", server, "password: {secret: SFTP_PASSWORD}")
    drop(server, "rates_20261101.csv", ["2026-11-01,EUR,1.08"])
    hits = tmp_path / "hits.log"
    proc = spawn(
        root,
        "ingest",
        "--json",
        SFTP_PASSWORD=password,
        LAKESTACK_FAILPOINTS="sftp.after_download=sleep(3000)",
        LAKESTACK_FAILPOINTS_LOG=str(hits),
    )
    deadline = time.monotonic() + 60
    while not (hits.exists() and hits.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    with (server.root / "drops" / "rates_20261101.csv").open("a") as f:  # the vendor is still writing
        f.write("2026-11-01,GBP,1.27\n")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    files = [f for s in json.loads(out)["sources"] for f in s["files"]]
    assert [(f["name"], f["status"]) for f in files] == [("rates_20261101.csv", "refused")]
    assert "changed while being downloaded" in files[0]["reason"]
    with Lake.open(root) as lake:
        assert not lake.warehouse.exists("bronze.rates") or not bronze_rows(root)
        report = lake.ingest().sources[0]
    assert [(f.name, f.status, f.landed) for f in report.files] == [("rates_20261101.csv", "landed", 2)]

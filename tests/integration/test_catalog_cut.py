"""The PostgreSQL catalog cut off mid-run, through a loopback TCP proxy the test controls.

A failpoint `sleep` holds the run at a chosen step; the test cuts the proxy there (every
connection closed, new ones refused), or lets the next catalog commit reach the server and cuts
before its answer comes back (the commit landed, the writer cannot know). Either way the run fails
with one message (exit 3, no traceback); once the proxy is restored the next run completes, commits
nothing twice (the file ledger, Silver's and Gold's checkpoints, batch ids) and leaves the lake
equal to a run that was never cut.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake_support import (
    cli,
    copy_project,
    create_database,
    drop_database,
    lake_contents,
    small_northwind,
    spawn,
)
from lakestack import failpoints
from tests_support import service_url

pytestmark = pytest.mark.integration


class CatalogProxy:
    """127.0.0.1:<port> → the PostgreSQL server; `cut()` drops every connection and refuses new
    ones until `restore()`; `cut_after_next_commit()` forwards the next catalog commit (the UPDATE
    of iceberg_tables, then its COMMIT) to the server and cuts before the answer returns."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.commit_armed = False
        self.update_seen = False
        self.commits_left = 0
        self.commit_cut = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if from_client and self.commit_armed:
                    self.update_seen = self.update_seen or b"UPDATE iceberg_tables" in data
                    if self.update_seen and b"COMMIT" in data and self._last_commit():
                        dst.sendall(data)
                        time.sleep(0.3)  # the server commits; its answer is never forwarded
                        self.cut()
                        self.commit_cut.set()
                        return
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down = True
        self.commit_armed = False
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut_after_next_commit(self, nth: int = 1) -> None:
        """Cut after the nth catalog commit from now (its answer never returns)."""
        self.update_seen = False
        self.commits_left = nth
        self.commit_armed = True

    def _last_commit(self) -> bool:
        self.update_seen = False
        self.commits_left -= 1
        return self.commits_left == 0

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_northwind(tmp_path_factory.mktemp("cut") / "pristine", orders=600, days=3)


@pytest.fixture(scope="module")
def reference(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = copy_project(pristine, tmp_path_factory.mktemp("reference") / "p")
    assert cli(project, "run").returncode == 0
    return lake_contents(project)


@pytest.fixture
def proxied(pristine: Path, tmp_path: Path) -> Iterator[tuple[Path, CatalogProxy]]:
    """A project whose PostgreSQL catalog (a database of its own) is reached through the proxy."""
    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    server = url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = server.partition(":")
    proxy = CatalogProxy((host, int(port or 5432)))
    via_proxy = url.replace(f"@{server}/", f"@127.0.0.1:{proxy.port}/")
    try:
        yield copy_project(pristine, tmp_path / "p", catalog_url=via_proxy), proxy
    finally:
        proxy.close()
        drop_database(url)


def _wait_for_hit(log: Path, point: str, proc: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while point not in failpoints.hits(str(log)):
        assert proc.poll() is None, f"the run ended before {point}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{point} not reached in {timeout}s"
        time.sleep(0.05)


def _assert_one_message(code: int, stderr: str) -> None:
    assert code == 3, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert stderr.count("error:") == 1 and "lost its connection to the catalog" in stderr, stderr


def _assert_equal_to_a_run_never_cut(project: Path, reference: dict[str, Any]) -> None:
    from lakestack import Lake

    lake = lake_contents(project)
    for identifier in (t for t in lake if t.startswith(("bronze.", "quarantine."))):
        rows = Lake.open(project).read(identifier, columns=["_source_file", "_source_line"]).to_pylist()
        assert len({(r["_source_file"], r["_source_line"]) for r in rows}) == len(rows), identifier
    assert lake == reference


@pytest.mark.parametrize("point", ["files.before_bronze_commit", "silver.before_commit"])
def test_catalog_cut_mid_run_fails_with_one_message_and_the_next_run_completes(
    proxied: tuple[Path, CatalogProxy], reference: dict[str, Any], tmp_path: Path, point: str
) -> None:
    project, proxy = proxied
    log = tmp_path / "hits.log"
    run = spawn(project, "run", LAKESTACK_FAILPOINTS=f"{point}=1*sleep(2000)", LAKESTACK_FAILPOINTS_LOG=str(log))
    _wait_for_hit(log, point, run)
    proxy.cut()
    _, stderr = run.communicate(timeout=120)
    _assert_one_message(run.returncode, stderr)

    refused = cli(project, "run")  # still cut: refused at once, with the same kind of message
    assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr

    proxy.restore()
    done = cli(project, "run")
    assert done.returncode == 0, done.stderr
    _assert_equal_to_a_run_never_cut(project, reference)


# Which catalog commit after each pause carries data, and the table it goes to (a new Gold table
# with partition_by is created, then its partition spec committed, then its rows).
LANDS_AT = {
    "files.before_bronze_commit": (1, "bronze.orders"),
    "silver.before_commit": (1, "silver.orders"),
    "gold.before_publish": (2, "gold.fact_sales"),
}


@pytest.mark.parametrize(
    "point",
    [
        "files.before_bronze_commit",
        pytest.param("silver.before_commit", marks=[pytest.mark.slow, pytest.mark.crash]),
        pytest.param("gold.before_publish", marks=[pytest.mark.slow, pytest.mark.crash]),
    ],
)
def test_a_commit_whose_answer_is_lost_is_not_committed_again(
    proxied: tuple[Path, CatalogProxy], reference: dict[str, Any], tmp_path: Path, point: str
) -> None:
    project, proxy = proxied
    log = tmp_path / "hits.log"
    run = spawn(project, "run", LAKESTACK_FAILPOINTS=f"{point}=1*sleep(2000)", LAKESTACK_FAILPOINTS_LOG=str(log))
    _wait_for_hit(log, point, run)
    nth, table = LANDS_AT[point]
    proxy.cut_after_next_commit(nth)
    _, stderr = run.communicate(timeout=120)
    assert proxy.commit_cut.is_set(), "the run never committed to the catalog after the pause"
    _assert_one_message(run.returncode, stderr)

    proxy.restore()
    from lakestack import Lake

    assert Lake.open(project).table_info(table).rows > 0  # the commit did land
    done = cli(project, "run")
    assert done.returncode == 0, done.stderr
    _assert_equal_to_a_run_never_cut(project, reference)

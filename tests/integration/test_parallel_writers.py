"""Parallel writers on one PostgreSQL catalog (issue 16 item 5): several `lakestack stream`
processes append to the same Bronze table while `lakestack promote` runs from other hosts, with
commit conflicts forced; one writer is SIGKILLed mid-commit. Committed rows equal acknowledged
rows exactly (every event the broker acknowledged to the producer is in Bronze or quarantine once)
and every key is in Silver once.

Each process runs from a project folder of its own, as it would on a host of its own: the same
project name (so the same catalog namespace and tables), the same PostgreSQL catalog database and
the same warehouse folder (the shared object store). `stream` takes no project lock, so the
stream writers commit in parallel and meet only in the catalog's optimistic concurrency. `promote`
takes the project lock, which on a PostgreSQL catalog is an advisory lock in the catalog database
(pipeline/lock.py): promotes from two hosts take turns (`--wait`) instead of racing, while the
streams keep committing to the Bronze table they read.

Conflicts are forced by a pause between writing a commit's data files and the catalog commit
(`storage.append.after_write=sleep(...)`), and shown to have happened: every try that lost its
commit left its data files behind, unreferenced by any snapshot.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafka_support import CONSUMER_PROPERTIES, create_topic, kafka_broker, produce, unique
from lake_support import child_env, create_database, drop_database
from stream_support import assert_exactly_once, bronze_ids, events_with_invalid, stream_project
from tests_support import service_url

pytestmark = pytest.mark.integration
__all__ = ["kafka_broker"]  # a fixture

LAKESTACK = str(Path(sys.executable).parent / "lakestack")
WIDEN = "storage.append.after_write=sleep(150)"  # data files written, the catalog commit next
KILL_AT = 2  # the victim kills itself at its 2nd commit try, after writing the data files
RUN_S = 4.0  # the producer feeds the writers this long at least (and until the victim is dead)
REPLACEMENT_S = 4.0  # and this long after the replacement of the victim started
CHUNK = 100  # events per produce call, every 0.25 s
FEED_MAX = 100_000

PROCESSES = [
    pytest.param(2, marks=pytest.mark.slow),
    pytest.param(4, marks=pytest.mark.slow),
    pytest.param(8, marks=[pytest.mark.slow, pytest.mark.crash]),
]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    url = create_database(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    yield url
    drop_database(url)


def _host(root: Path, name: str, catalog: str, warehouse: Path, settings: dict[str, Any]) -> Path:
    """A project folder for one host: shared name, catalog and warehouse; a Silver dataset `events`."""
    stream_project(root, "kafka", settings, max_seconds=0.2)
    config = yaml.safe_load((root / "lakestack.yaml").read_text())
    config["name"] = name
    config["environments"]["dev"] = {"warehouse": str(warehouse), "catalog": {"type": "sql", "uri": catalog}}
    config["datasets"] = {"events": {"layer": "silver", "partition_by": "none"}}
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


class Writer:
    """One `lakestack stream events --json` process; its output in a file."""

    def __init__(self, root: Path, label: str, failpoints: str, log: Path) -> None:
        self.out = root.parent / f"{label}-{uuid.uuid4().hex[:6]}.out"
        env = child_env(LAKESTACK_FAILPOINTS=failpoints, LAKESTACK_FAILPOINTS_LOG=str(log), PYTHONFAULTHANDLER="1")
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [LAKESTACK, "-p", str(root), "stream", "events", "--json"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    terminated = False

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def terminate(self) -> None:
        """SIGTERM, once: a second one, coming while the first's clean stop exits, would end it -15."""
        if self.proc.poll() is None and not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self, timeout: float = 240) -> int:
        """SIGTERM, then the exit code; a writer that does not stop fails the test with its output
        (its final commit may queue behind 7 others' conflicts on a loaded machine: a generous bound)."""
        self.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack: where it hung
            self.proc.wait(timeout=30)
            output = self.output()
            pytest.fail(
                f"{self.out.name} did not stop {timeout:.0f} s after SIGTERM; its main thread "
                f"(the last stack of each dump):\n{main_stacks(output)}\n--- its output ---\n{output[-6000:]}"
            )


def main_stacks(output: str) -> str:
    """The main thread's stack from each faulthandler dump in `output` (the stop guard's at
    STOP_DUMP_S, the SIGABRT's): faulthandler lists the newest thread first and the main one last,
    and a long dump's tail is what a CI log cuts first. A dump's thread blocks are separated by
    blank lines; any other line ends the dump."""
    ends: list[str] = []
    block: list[str] = []
    for line in [*output.splitlines(), "end"]:
        if line.startswith(("Thread 0x", "Current thread 0x")):
            block = [line]
        elif block and (line.startswith("  ") or not line.strip()):
            if line.strip():
                block.append(line)
        elif block:
            ends.append("\n".join(block))
            block = []
    return "\n\n".join(ends) or "(no thread dump in the output)"


def _promote_loop(hosts: list[Path], until: threading.Event, results: list[tuple[int, str]]) -> None:
    """Promote from host after host until `until` is set; each waits for the project lock."""
    n = 0
    while not until.is_set():
        host = hosts[n % len(hosts)]
        done = subprocess.run(
            [LAKESTACK, "-p", str(host), "--wait", "120", "promote", "--json"], capture_output=True, text=True
        )
        results.append((done.returncode, done.stdout[-2000:] + done.stderr[-2000:]))
        n += 1


def _orphans(root: Path, identifier: str) -> int:
    """Data files of `identifier` in the warehouse that no snapshot references: tries that lost."""
    from lakestack.pipeline.lake import Lake

    table = Lake.open(root).warehouse.load(identifier)
    referenced = set()
    for snap in table.snapshots():
        for manifest in snap.manifests(table.io):
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                referenced.add(entry.data_file.file_path.removeprefix("file://"))
    on_disk = {str(p) for p in Path(table.location().removeprefix("file://"), "data").rglob("*.parquet")}
    assert referenced <= on_disk, "a snapshot references a file that is not there"
    return len(on_disk - referenced)


@pytest.mark.parametrize("processes", PROCESSES)
def test_parallel_writers_commit_every_acknowledged_row_once(
    tmp_path: Path, kafka_broker: str, postgres_database: str, processes: int
) -> None:
    topic = create_topic(kafka_broker, partitions=processes)
    settings: dict[str, Any] = {
        "bootstrap_servers": kafka_broker,
        "topics": [topic],
        "group_id": unique("g"),
        # a closing member's leave starts a rebalance that waits for every member to rejoin, up to
        # max.poll.interval.ms (300 s by default) while the others are busy with their final commits:
        # bound it above the commit retry budget (60 s), below the stop timeout
        "properties": {**CONSUMER_PROPERTIES, "max.poll.interval.ms": 90_000},
    }
    name, warehouse = f"pw_{uuid.uuid4().hex[:8]}", tmp_path / "object-store"
    hosts = [_host(tmp_path / f"host{i}", name, postgres_database, warehouse, settings) for i in range(processes)]
    log = tmp_path / "failpoints.log"
    log.touch()
    # host 0's writer kills itself mid-commit; the others pause there, so their commits overlap
    writers = [Writer(hosts[0], "victim", f"storage.append.after_write=kill@{KILL_AT}", log)]
    writers += [Writer(h, f"w{i}", WIDEN, log) for i, h in enumerate(hosts[1:], 1)]
    started = list(writers)
    payloads, invalid = events_with_invalid(FEED_MAX, seed=processes)
    stop_promoting = threading.Event()
    promotes: list[tuple[int, str]] = []
    promoter = threading.Thread(target=_promote_loop, args=(hosts[-2:], stop_promoting, promotes), daemon=True)
    sent = 0
    try:
        promoter.start()
        begun = time.monotonic()
        # feed for RUN_S seconds, until the victim has killed itself (it must be given records) and
        # REPLACEMENT_S after its replacement started (a SIGTERM before its handlers are set ends it -15)
        replaced = float("inf")  # not yet: now - inf is below any bound
        while time.monotonic() - begun < RUN_S or time.monotonic() - replaced < REPLACEMENT_S:
            assert time.monotonic() - begun < 150, "the victim never reached its commit: " + writers[0].output()
            assert sent < len(payloads), "every event was sent and the victim never reached its commit"
            produce(kafka_broker, topic, payloads[sent : sent + CHUNK])  # acknowledged by the broker
            sent += CHUNK
            time.sleep(0.25)
            if writers[0].proc.poll() is not None and len(started) == processes:
                # the victim is dead: a replacement on its host takes its partitions back
                replacement = Writer(hosts[0], "replacement", WIDEN, log)
                writers.append(replacement)
                started.append(replacement)
                replaced = time.monotonic()
        stop_promoting.set()  # the promote under way finishes while the writers stop
        victim = writers[0].proc.wait(timeout=60)
        assert victim == -signal.SIGKILL, f"the victim did not die mid-commit (exit {victim}): {writers[0].output()}"
        for writer in writers[1:]:  # SIGTERM: each makes a final commit of what it read
            writer.terminate()
        for writer in writers[1:]:
            code, output = writer.stop(), writer.output()
            assert code == 0 and "Traceback" not in output, f"exit {code}: {output[-2000:]}"
        promoter.join(timeout=300)
    finally:
        stop_promoting.set()
        for writer in started:
            if writer.proc.poll() is None:
                writer.proc.kill()
                writer.proc.wait()
    assert "storage.append.after_write kill" in log.read_text()
    # a promote before the first Bronze commit is refused (exit 2, "does not exist yet"); none failed
    assert all(code == 0 or (code == 2 and "does not exist yet" in out) for code, out in promotes), promotes
    assert any(code == 0 for code, _ in promotes), promotes

    # catch up from the positions in Iceberg (a fresh group), then a last promote
    config = hosts[1] / "lakestack.yaml"
    config.write_text(config.read_text().replace(settings["group_id"], unique("final")))
    final = subprocess.run(
        [LAKESTACK, "-p", str(hosts[1]), "stream", "events", "--until-idle", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    done = subprocess.run([LAKESTACK, "-p", str(hosts[0]), "promote", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    invalid = {e for e in invalid if int(e[1:]) < sent}
    assert_exactly_once(hosts[0], sent, invalid)  # committed = acknowledged, nothing twice
    from lakestack.pipeline.lake import Lake

    keys = Lake.open(hosts[2 % processes]).read("silver.events", columns=["event_id"]).column("event_id").to_pylist()
    twice = [k for k, v in Counter(keys).items() if v > 1]
    assert not twice, f"{len(twice)} keys are in Silver more than once: {twice[:10]}"
    assert set(keys) == set(bronze_ids(hosts[0]))
    # the victim's try and the tries that lost a conflict left their data files behind, in Bronze
    # or quarantine (whichever commit each was making); from 4 writers on, conflicts are certain
    orphans = sum(_orphans(hosts[0], t) for t in ("bronze.events", "quarantine.events"))
    assert orphans >= 1 + (processes > 2), orphans


@pytest.mark.slow
def test_two_hosts_ingesting_the_same_landing_file_land_it_once(tmp_path: Path, postgres_database: str) -> None:
    """Two hosts (project folders with the same name, catalog and warehouse) each hold a copy of the
    same landing files and ingest them at once, below the project lock (as two hosts whose runs
    the lock does not serialise would): both read empty file ledgers, then commit. The ledger is
    keyed by content, re-read at every commit attempt: every file lands once, and the host that
    lost reports it as committed by a concurrent run."""
    from lake_support import copy_project, small_northwind

    pristine = small_northwind(tmp_path / "pristine", orders=300, days=2)
    warehouse = tmp_path / "object-store"
    hosts = []
    for i in range(2):
        host = copy_project(pristine, tmp_path / f"host{i}", catalog_url=postgres_database)
        config = yaml.safe_load((host / "lakestack.yaml").read_text())
        config["name"] = "shared_ingest"
        config["environments"]["dev"]["warehouse"] = str(warehouse)
        (host / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        hosts.append(host)
    script = (
        "import json, sys\n"
        "from lakestack import Lake\n"
        "from lakestack.ingest.base import NullObserver\n"
        "from lakestack.pipeline.runs import new_run_id\n"
        "lake = Lake.open(sys.argv[1])\n"
        "report = lake.source('orders').ingest(lake.warehouse, new_run_id(), NullObserver())\n"
        "print(json.dumps([[f.name, f.status, f.landed, f.reason] for f in report.files]))\n"
    )
    # both read the ledgers at start, then pause at the first ledger read of their commit attempt
    env = child_env(LAKESTACK_FAILPOINTS="files.ledger.read=1*sleep(3000)@3")
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(h)], env=env, stdout=subprocess.PIPE, text=True)
        for h in hosts
    ]
    reports = [json.loads(p.communicate(timeout=180)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    names = sorted(p.name for p in (pristine / "landing" / "orders").iterdir())
    for name in names:
        statuses = sorted(next(r[1] for r in report if r[0] == name) for report in reports)
        assert statuses in (["landed", "skipped"], ["rejected", "skipped"]), (name, statuses, reports)
    from lakestack import Lake

    rows = Lake.open(hosts[0]).read("bronze.orders", columns=["_source_file", "_source_line"]).to_pylist()
    assert len({(r["_source_file"], r["_source_line"]) for r in rows}) == len(rows)  # nothing twice
    landed = sum(r[2] for report in reports for r in report if r[1] == "landed")
    assert len(rows) == landed  # committed = acknowledged
    rejects = Lake.open(hosts[1]).read("quarantine.orders", columns=["_source_file", "_source_line"]).to_pylist()
    assert len({(r["_source_file"], r["_source_line"]) for r in rejects}) == len(rejects)

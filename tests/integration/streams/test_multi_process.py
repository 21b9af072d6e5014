"""Several `lakestack stream` processes on one source, killed (-9), stopped (SIGTERM) and paused
(SIGSTOP past the lease or session) while a producer sends valid and invalid events: every valid
event lands once in Bronze and every reject once in quarantine, for NATS, Kafka and Kinesis.

NATS: one process owns the durable consumer (a lease); the others wait and one takes over when
the owner dies or is paused past its lease, and a woken owner stops without committing. Kafka:
the consumer group splits the partitions; a member paused past its session is fenced at commit.
Kinesis: every process reads every shard; the commit-time fence drops what a rival committed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aws_support import moto_server
from kafka_support import CONSUMER_PROPERTIES, create_topic, kafka_broker, produce, unique
from nats_support import lease_holder, publish
from stream_support import assert_exactly_once, bronze_ids, events_with_invalid, stream_project

pytestmark = [pytest.mark.integration]
__all__ = ["kafka_broker", "moto_server"]

LAKESTACK = str(Path(sys.executable).parent / "lakestack")
LEASE = 2.0  # seconds: the NATS owner lease in these tests
# about 40 s each: two processes run with `make test` (slow), three with the crash matrix
PROCESSES = [pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.crash)]


class Stream:
    """One `lakestack stream events --json` process, its output (and --json's error) kept in a file."""

    def __init__(self, root: Path, name: str, *extra: str) -> None:
        self.out = root.parent / f"{name}-{uuid.uuid4().hex[:6]}.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [LAKESTACK, "-p", str(root), "stream", "events", "--json", *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.proc.pid
        self.paused = False

    def stderr(self) -> str:
        """What it printed: logs, and with --json the summary or the error as JSON."""
        return self.out.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.paused = sig == signal.SIGSTOP

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (after SIGCONT when paused); the exit code."""
        if self.proc.poll() is None:
            if self.paused:
                self.signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll until `condition` holds; the seconds it took. Fails after `timeout` (a loaded machine)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def stopping() -> Iterator[list[Stream]]:
    """Processes a test started; any still running at the end are ended."""
    procs: list[Stream] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


# -- NATS --------------------------------------------------------------------------------------


def _nats_project(tmp_path: Path, url: str, name: str) -> Path:
    settings = {"url": url, "stream": name, "lease_seconds": LEASE}
    return stream_project(tmp_path / "p", "nats", settings, max_seconds=0.2)


def _owner_pid(url: str, name: str) -> int | None:
    holder = lease_holder(url, name, "lakestack-events")
    return int(str(holder["owner"]).rpartition("/")[2]) if holder else None


def test_nats_second_process_waits_and_takes_over_within_the_lease_when_the_owner_is_killed(
    tmp_path: Path, nats_stream: tuple[str, str, str], stopping: list[Stream]
) -> None:
    url, name, subject = nats_stream
    root = _nats_project(tmp_path, url, name)
    payloads, invalid = events_with_invalid(3_000, seed=11)
    publish(url, subject, payloads[:1_000])
    stopping.append(first := Stream(root, "first"))
    wait_for(lambda: _owner_pid(url, name) == first.pid, 60, "the first process to own the source")
    stopping.append(second := Stream(root, "second"))
    wait_for(lambda: "is owned by" in second.stderr(), 60, "the second process to say it waits")
    assert f"/{first.pid} since " in second.stderr()
    publish(url, subject, payloads[1_000:2_000])
    wait_for(lambda: len(bronze_ids(root)) > 1_000, 60, "the owner to commit")
    first.signal(signal.SIGKILL)
    first.proc.wait()
    took = wait_for(lambda: _owner_pid(url, name) == second.pid, 60, "the waiting process to take over")
    assert took < LEASE + 10, f"the successor took {took:.1f} s (lease {LEASE} s)"
    publish(url, subject, payloads[2_000:])
    stopping.append(third := Stream(root, "third"))  # a waiting process stops cleanly on SIGTERM
    wait_for(lambda: "is owned by" in third.stderr(), 60, "the third process to wait")
    assert third.stop() == 0, third.stderr()
    catch_up = subprocess.run(  # a catch-up run does not wait for a live owner: it names it and exits 3
        [LAKESTACK, "-p", str(root), "stream", "events", "--until-idle", "1"], capture_output=True, timeout=120
    )
    message = catch_up.stderr.decode(errors="replace")
    assert catch_up.returncode == 3, message
    assert f"/{second.pid} since" in message and "without --until-idle" in message, message
    assert "Traceback" not in message
    wait_for(lambda: len(bronze_ids(root)) >= 3_000 - len(invalid), 60, "the successor to land everything")
    assert second.stop() == 0, second.stderr()
    assert_exactly_once(root, len(payloads), invalid)


def test_nats_owner_paused_past_its_lease_stops_without_committing_when_it_wakes(
    tmp_path: Path, nats_stream: tuple[str, str, str], stopping: list[Stream]
) -> None:
    url, name, subject = nats_stream
    root = _nats_project(tmp_path, url, name)
    payloads, invalid = events_with_invalid(3_000, seed=12)
    publish(url, subject, payloads[:1_000])
    stopping.append(first := Stream(root, "first"))
    wait_for(lambda: _owner_pid(url, name) == first.pid, 60, "the first process to own the source")
    stopping.append(second := Stream(root, "second"))
    wait_for(lambda: len(bronze_ids(root)) > 0, 60, "the owner to commit")
    first.signal(signal.SIGSTOP)  # paused mid-stream, with records buffered or on their way
    publish(url, subject, payloads[1_000:2_000])
    wait_for(lambda: _owner_pid(url, name) == second.pid, 60, "the waiting process to take over")
    publish(url, subject, payloads[2_000:])
    wait_for(lambda: len(bronze_ids(root)) >= 3_000 - len(invalid), 60, "the successor to land everything")
    first.signal(signal.SIGCONT)
    assert first.proc.wait(timeout=60) == 3, first.stderr()
    assert "lost the lease" in first.stderr() or "newer owner" in first.stderr(), first.stderr()
    assert "Traceback" not in first.stderr()
    assert second.stop() == 0, second.stderr()
    assert_exactly_once(root, len(payloads), invalid)


def test_nats_two_processes_starting_together_on_a_fresh_project_both_run(
    tmp_path: Path, nats_stream: tuple[str, str, str]
) -> None:
    # both create the catalog, the namespaces and the tables at once: one used to exit 3 with
    # "IntegrityError UNIQUE constraint failed: iceberg_namespace_properties" (2 runs of 5)
    url, name, subject = nats_stream
    payloads, invalid = events_with_invalid(300, seed=7)
    publish(url, subject, payloads)
    for trial in range(3):
        root = stream_project(
            tmp_path / f"p{trial}", "nats", {"url": url, "stream": name, "lease_seconds": 1}, max_seconds=0.2
        )
        command = [LAKESTACK, "-p", str(root), "stream", "events", "--until-idle", "1", "--json"]
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        for proc in procs:
            output = proc.communicate(timeout=120)[0].decode(errors="replace")
            assert proc.returncode == 0, output
        assert_exactly_once(root, len(payloads), invalid)


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler yet (Linux: the SigCgt mask in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def test_nats_sigterm_right_after_start_is_a_clean_stop(tmp_path: Path, nats_stream: tuple[str, str, str]) -> None:
    url, name, _ = nats_stream
    root = _nats_project(tmp_path, url, name)
    # the moment the handler exists (lakestack.cli is imported, before Typer, rich or the project load)
    proc = Stream(root, "early")
    wait_for(lambda: _catches_sigterm(proc.pid) or proc.proc.poll() is not None, 30, "a SIGTERM handler")
    assert proc.stop() == 0, proc.stderr()
    assert json.loads(proc.stderr())["received"] == 0
    for delay in (0.3, 1.0):  # while the project opens, while the source is claimed
        proc = Stream(root, "early")
        time.sleep(delay)
        assert proc.stop() == 0, f"SIGTERM {delay} s after start: {proc.stderr()}"


def _chaos(
    procs: list[Stream],
    start: Callable[[int], Stream],
    until: threading.Event,
    rng: random.Random,
    pause: float,
    every: tuple[float, float],
    actions: int = 6,
) -> dict[str, int]:
    """Until `until` is set and `actions` were done: every few seconds kill -9, SIGTERM or pause (past
    `pause` seconds) one of the processes and start a replacement, so `len(procs)` keep running.
    Returns what was done."""
    done = {"kill": 0, "term": 0, "pause": 0}
    kinds = ["kill", "term", "pause"]
    while not until.is_set() or sum(done.values()) < actions:
        for slot, proc in enumerate(procs):  # a woken NATS owner that lost the source stopped itself
            if proc.proc.poll() is not None:
                _assert_clean_exit(proc)
                procs[slot] = start(slot)
        time.sleep(rng.uniform(*every))
        slot = rng.randrange(len(procs))
        action = kinds[sum(done.values()) % 3] if sum(done.values()) < 3 else rng.choice(kinds)
        victim = procs[slot]
        if action == "kill":
            victim.signal(signal.SIGKILL)
            victim.proc.wait()
        elif action == "term":
            victim.stop()
            _assert_clean_exit(victim)
        else:
            victim.signal(signal.SIGSTOP)
            time.sleep(pause)
            victim.signal(signal.SIGCONT)
            done["pause"] += 1
            continue  # it goes on (Kafka, Kinesis) or finds it lost the source and stops (NATS)
        done[action] += 1
        procs[slot] = start(slot)
    return done


def _assert_clean_exit(proc: Stream) -> None:
    """Exit 0 after SIGTERM, or 3 for a paused NATS owner that found another process owns the source."""
    code, output = proc.proc.wait(), proc.stderr()
    assert "Traceback" not in output, output
    # -15: SIGTERM came while the interpreter was already exiting with 3 (its handlers are gone then)
    lost = code in (3, -signal.SIGTERM) and "OwnershipLost" in output
    assert code == 0 or lost, f"exit {code}: {output[-2000:]}"


def _feed(send: Callable[[list[bytes]], object], payloads: list[bytes], chunk: int, gap: float) -> threading.Event:
    done = threading.Event()

    def run() -> None:
        for at in range(0, len(payloads), chunk):
            send(payloads[at : at + chunk])
            time.sleep(gap)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def _run_chaos(
    root: Path,
    stopping: list[Stream],
    send: Callable[[list[bytes]], object],
    *,
    processes: int,
    events: int,
    seed: int,
    pause: float,
    gap: float,
    extra_final: Callable[[], None] | None = None,
) -> dict[str, int]:
    payloads, invalid = events_with_invalid(events, seed=seed)
    rng = random.Random(seed)

    def start(slot: int) -> Stream:
        proc = Stream(root, f"s{slot}")
        stopping.append(proc)
        return proc

    procs = [start(i) for i in range(processes)]
    published = _feed(send, payloads, 200, gap)
    done = _chaos(procs, start, published, rng, pause, (1.0, 3.0))
    for proc in procs:
        proc.stop()
        _assert_clean_exit(proc)
    if extra_final is not None:
        extra_final()
    final = subprocess.run(
        [LAKESTACK, "-p", str(root), "stream", "events", "--until-idle", "3", "--json"],
        capture_output=True,
        timeout=180,
    )
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert_exactly_once(root, events, invalid)
    return done


@pytest.mark.parametrize("processes", PROCESSES)
def test_nats_processes_killed_stopped_and_paused_lose_and_double_nothing(
    tmp_path: Path, nats_stream: tuple[str, str, str], stopping: list[Stream], processes: int
) -> None:
    url, name, subject = nats_stream
    root = _nats_project(tmp_path, url, name)
    done = _run_chaos(
        root,
        stopping,
        lambda chunk: publish(url, subject, chunk),
        processes=processes,
        events=4_000,
        seed=processes,
        pause=LEASE + 1.5,
        gap=0.3,
    )
    assert min(done.values()) >= 1, done


# -- Kafka -------------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", PROCESSES)
def test_kafka_members_killed_stopped_and_paused_past_their_session_lose_and_double_nothing(
    tmp_path: Path, kafka_broker: str, stopping: list[Stream], processes: int
) -> None:
    topic = create_topic(kafka_broker, partitions=4)
    settings: dict[str, Any] = {
        "bootstrap_servers": kafka_broker,
        "topics": [topic],
        "group_id": unique("g"),
        "properties": CONSUMER_PROPERTIES,
    }
    root = stream_project(tmp_path / "p", "kafka", settings, max_seconds=0.2)
    config = root / "lakestack.yaml"

    def final_group() -> None:  # the final catch-up joins a fresh group: positions come from Iceberg
        config.write_text(config.read_text().replace(settings["group_id"], unique("final")))

    done = _run_chaos(
        root,
        stopping,
        lambda chunk: produce(kafka_broker, topic, chunk),
        processes=processes,
        events=3_000,
        seed=20 + processes,
        pause=CONSUMER_PROPERTIES["session.timeout.ms"] / 1000 + 2,
        gap=0.6,
        extra_final=final_group,
    )
    assert min(done.values()) >= 1, done


# -- Kinesis -----------------------------------------------------------------------------------


def _kinesis(endpoint: str, name: str | None = None) -> Any:
    import boto3

    return boto3.client("kinesis", region_name="us-east-1", endpoint_url=endpoint)


@pytest.mark.parametrize("processes", PROCESSES)
def test_kinesis_readers_killed_stopped_and_paused_lose_and_double_nothing(
    tmp_path: Path, moto_server: str, stopping: list[Stream], processes: int
) -> None:
    client = _kinesis(moto_server)
    name = f"events-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    settings = {"stream_name": name, "endpoint_url": moto_server, "region": "us-east-1", "poll_seconds": 0.05}
    root = stream_project(tmp_path / "p", "kinesis", settings, max_seconds=0.2)
    counter = iter(range(10**9))

    def put(chunk: list[bytes]) -> None:
        answer = client.put_records(
            StreamName=name, Records=[{"Data": p, "PartitionKey": f"k{next(counter)}"} for p in chunk]
        )
        assert answer["FailedRecordCount"] == 0

    done = _run_chaos(root, stopping, put, processes=processes, events=3_000, seed=30 + processes, pause=3.0, gap=0.4)
    assert min(done.values()) >= 1, done

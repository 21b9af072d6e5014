"""HTTP collector benchmark: 8 concurrent clients POST batches of 500 events to `lakestack serve`.

The server runs in its own process (as in production); the clients are threads of this process
holding keep-alive connections. Reported: sustained events/s (accepted and committed), and the
p50/p99 latency from sending a request to its answer, which comes only after the commit.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from data import EVENT_SCHEMA, make_events

PROJECT = """\
name: bench_http
environments:
  dev:
    warehouse: ./warehouse
    catalog: {type: sql, uri: "sqlite:///.lakestack/catalog.db"}
sources:
  events: {kind: http, contract: events, stream: {max_records: 50000, max_seconds: 1.0, max_pending: 400000}}
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _project(root: Path) -> None:
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "events.v1.json").write_text(json.dumps({**EVENT_SCHEMA, "x-lakestack-key": ["event_id"]}))
    (root / "lakestack.yaml").write_text(PROJECT)


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited early")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def run_load(
    port: int, bodies: list[bytes], clients: int, seconds: float, warmup: float = 2.0
) -> tuple[int, list[float], float]:
    """Each client sends bodies in a loop; returns (events accepted after warm-up, latencies, wall s)."""
    latencies: list[float] = []
    accepted = [0] * clients
    lock = threading.Lock()
    start = time.monotonic()
    measure_from = start + warmup
    end = measure_from + seconds
    errors: list[str] = []

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = c
        mine: list[float] = []
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            body = bodies[i % len(bodies)]
            i += clients
            conn.request("POST", "/v1/streams/events/records", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            t1 = time.monotonic()
            if response.status != 200:
                if response.status == 503:
                    time.sleep(float(response.getheader("Retry-After") or 1))
                    continue
                errors.append(f"{response.status}: {payload[:200]!r}")
                break
            if t0 >= measure_from and t1 <= end:
                mine.append(t1 - t0)
                accepted[c] += json.loads(payload)["accepted"]
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"requests failed: {errors[:3]}")
    return sum(accepted), latencies, seconds


def bench_http(seconds: float = 20.0, clients: int = 8, batch: int = 500, repeat: int = 1) -> list[dict[str, Any]]:
    events = make_events(batch * 400)
    bodies = [b"[" + b",".join(events[i : i + batch]) + b"]" for i in range(0, len(events), batch)]
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "p"
            _project(root)
            port = _port()
            exe = Path(sys.executable).parent / "lakestack"
            proc = subprocess.Popen(
                [str(exe), "-p", str(root), "serve", "--port", str(port), "--insecure-dev"],
                stdout=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                _wait(port, proc)
                print(f"  http collector · {clients} clients × {batch} events for {seconds:.0f} s ...", flush=True)
                accepted, latencies, wall = run_load(port, bodies, clients, seconds)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            runs.append((accepted / wall, latencies))
    rate = statistics.median(r for r, _ in runs)
    lat = sorted(x for _, ls in runs for x in ls)
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return [
        {
            "benchmark": "http collector",
            "tool": f"lakestack serve ({clients} clients × {batch})",
            "events_per_s": round(rate),
            "p50_ms": round(p50 * 1000, 1),
            "p99_ms": round(p99 * 1000, 1),
            "requests": len(lat),
            "median_s": round(seconds, 3),
            "per_s": round(rate),
        },
        {
            "benchmark": "http collector",
            "tool": "one Kinesis shard (AWS limit, for scale)",
            "events_per_s": 1000,
            "median_s": round(seconds, 3),
            "per_s": 1000,
        },
    ]


if __name__ == "__main__":
    for row in bench_http(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 20.0):
        print(row)

"""REST pull benchmark: a PAGES-page JSON API into Bronze, `kind: rest` against its peers.

The API runs in its own process on 127.0.0.1 (http.server, threaded): `/items?page=N` answers
`{"results": [...100 records...], "next": URL}` (json_link paging), the same bytes every time.

- lakestack: `lakestack ingest` of a `kind: rest` source (json_link paginator, records validated
  against a JSON Schema contract, exact bytes in `_raw`, a Bronze commit every 20 pages with the
  resource's cursor), into a fresh warehouse each repeat; no rate limit (10,000/s).
- the floor: the same GETs with httpx and a msgspec decode of each page (no validation, no write).
- dlt 1.x `rest_api` source (same paginator and data selector) into its `duckdb` destination,
  a fresh pipeline folder each repeat.

Medians of `repeat` runs each, interleaved. Run alone: `python benchmarks/pull_rest.py 200 3`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PER_PAGE = 100
CONTRACT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "x-lakestack-key": ["id"],
    "x-lakestack-event-time": "updated_at",
    "required": ["id", "updated_at", "amount", "status"],
    "properties": {
        "id": {"type": "integer"},
        "updated_at": {"type": "string", "format": "date-time"},
        "amount": {"type": "number", "minimum": 0},
        "status": {"type": "string", "enum": ["placed", "paid", "shipped"]},
        "customer": {"type": "string"},
    },
}

SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
pages, per = int(sys.argv[1]), int(sys.argv[2])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive: no 40 ms delayed-ACK stall between header and body
    def log_message(self, *a): pass
    def do_GET(self):
        n = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
        rows = [{"id": i, "updated_at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", "amount": (i % 1000) / 4,
                 "status": ("placed", "paid", "shipped")[i % 3], "customer": f"C{i % 5000:05d}"}
                for i in range((n - 1) * per, n * per)]
        nxt = f"http://127.0.0.1:{self.server.server_address[1]}/items?page={n + 1}" if n < pages else None
        data = json.dumps({"results": rows, "next": nxt}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def _project(root: Path, base: str) -> Path:
    import yaml

    (root / "contracts").mkdir(parents=True, exist_ok=True)
    (root / "contracts" / "items.v1.json").write_text(json.dumps(CONTRACT))
    rest = {
        "base_url": base,
        "rate_limit": 10000,
        "burst": 10000,
        "resources": {
            "items": {
                "path": "/items",
                "data_selector": "results",
                "paginator": {"type": "json_link", "next_url_path": "next"},
            }
        },
    }
    config = {"name": "bench_rest", "sources": {"items": {"kind": "rest", "contract": "items", "rest": rest}}}
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config))
    return root


def bench_pull_rest(pages: int, repeat: int) -> list[dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(pages), str(PER_PAGE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        times: dict[str, list[float]] = {}
        n_rows = pages * PER_PAGE
        with tempfile.TemporaryDirectory() as tmp:
            runs = _runs(base, Path(tmp))
            for i in range(repeat):
                for label, fn in runs.items():
                    t0 = time.perf_counter()
                    got = fn(i)
                    times.setdefault(label, []).append(time.perf_counter() - t0)
                    assert got == n_rows, f"{label}: {got} rows, expected {n_rows}"
                    print(f"  {label}: {times[label][-1]:.2f} s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return _rows(times, pages, n_rows, repeat)


def _runs(base: str, tmp: Path) -> dict[str, Callable[[int], int]]:
    from lakestack import Lake

    def lakestack(i: int) -> int:
        root = _project(tmp / f"lakestack{i}", base)
        with Lake.open(root) as lake:
            report = lake.ingest()
            assert report.quarantined == 0
            return int(report.landed)

    def floor(i: int) -> int:
        import httpx
        import msgspec

        count, url = 0, f"{base}/items"
        with httpx.Client() as client:
            while url:
                body = msgspec.json.decode(client.get(url).content)
                count += len(body["results"])
                url = body["next"]
        return count

    runs: dict[str, Callable[[int], int]] = {
        "lakestack ingest (kind: rest) → Bronze": lakestack,
        "bare httpx GET + msgspec decode (the floor)": floor,
    }
    try:
        import dlt  # noqa: F401
    except ImportError:
        print("  dlt is not installed (pip install 'lakestack[bench]'): its row is left out", file=sys.stderr)
        return runs

    def dlt_run(i: int) -> int:
        import dlt
        from dlt.sources.rest_api import rest_api_source

        folder = tmp / f"dlt-{i}"
        os.environ["DLT_DATA_DIR"] = str(folder / "data")
        source = rest_api_source(
            {
                "client": {"base_url": base, "paginator": {"type": "json_link", "next_url_path": "next"}},
                "resources": [{"name": "items", "endpoint": {"path": "items", "data_selector": "results"}}],
            }
        )
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_rest_{i}",
            pipelines_dir=str(folder / "pipelines"),
            destination=dlt.destinations.duckdb(str(folder / "out.duckdb")),
            dataset_name="bronze",
        )
        pipeline.run(source)
        with pipeline.sql_client() as client:
            return int(client.execute_sql("SELECT count(*) FROM items")[0][0])

    runs["dlt rest_api → duckdb"] = dlt_run
    return runs


def _rows(times: dict[str, list[float]], pages: int, n_rows: int, repeat: int) -> list[dict[str, Any]]:
    floor = statistics.median(times["bare httpx GET + msgspec decode (the floor)"])
    ours = statistics.median(times["lakestack ingest (kind: rest) → Bronze"])
    out = []
    for label, seconds in times.items():
        median = statistics.median(seconds)
        out.append(
            {
                "benchmark": "pull_rest",
                "tool": f"{label}, {pages} pages × {PER_PAGE}",
                "rows": n_rows,
                "median_s": round(median, 3),
                "per_s": round(n_rows / median),
                "vs_floor": round(median / floor, 1),
                "lakestack_speedup": round(median / ours, 2),
                "repeats": repeat,
                "all_s": [round(s, 3) for s in seconds],
            }
        )
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import show

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    show(bench_pull_rest(n, reps))

"""A real HTTP API on 127.0.0.1 for the REST source and enrichment tests (http.server in a thread).

`/{style}/items` serves `total` records (`id`, `updated_at`, `amount`) PAGE at a time, paged by
style: `cursor` (body `next_cursor`, param `cursor`), `page` (`page`), `offset` (`offset`/`limit`),
`link` (a `Link: <...>; rel="next"` header), `json` (body `next`: a URL). `updated_after` filters
(strictly after). `/token` grants OAuth2 client credentials; `/vmv` answers vehicle valuations.
`faults` injects answers: path → list of statuses (or "garbage", "html", "huge", "bomb", ...) given
to the next requests.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import yaml

PAGE = 10
API_KEY = "k-3f9a-SECRET-b7"
TOKEN = "tok-93jd-SECRET"
CLIENT_ID = "lakestack-client"
CLIENT_SECRET = "cs-88aa-SECRET"

ITEMS_CONTRACT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "x-lakestack-key": ["id"],
    "x-lakestack-event-time": "updated_at",
    "required": ["id", "updated_at", "amount"],
    "properties": {
        "id": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
        "amount": {"type": "integer", "minimum": 0},
    },
}


@dataclass
class Api:
    """The server's state: records, the auth it wants, injected faults, and every request seen."""

    total: int = 35
    auth: str | None = None  # api_key_header, api_key_query, bearer, oauth2
    faults: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    bad_ids: set[int] = field(default_factory=set)  # records served breaking the contract
    repeat_cursor: bool = False  # the cursor style answers the same next cursor for ever
    new_field_from: int | None = None  # records from this index on carry a field the contract lacks
    tokens_issued: int = 0
    token_ttl: int = 3600
    valuations: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def items(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {
                "id": f"i{i}",
                "updated_at": f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z",
                "amount": -1 if i in self.bad_ids else i,
            }
            for i in range(self.total)
        ]
        for i, row in enumerate(rows):
            if self.new_field_from is not None and i >= self.new_field_from:
                row["currency"] = "EUR"
        return rows

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)


class _Handler(BaseHTTPRequestHandler):
    api: Api

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        with self.api.lock:
            self.api.requests.append({"path": "/token", "query": {}, "headers": dict(self.headers), "form": form})
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self._json(401, {"error": "invalid_client"})
        self.api.tokens_issued += 1
        token = f"{TOKEN}-{self.api.tokens_issued}"
        return self._json(200, {"access_token": token, "token_type": "bearer", "expires_in": self.api.token_ttl})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        api = self.api
        with api.lock:
            api.requests.append(
                {"path": parts.path, "query": query, "headers": dict(self.headers), "at": time.monotonic()}
            )
            planned = api.faults.get(parts.path) or []
            fault = planned.pop(0) if planned else None
        if fault == "garbage":
            return self._raw(200, b'{"items": [{"id": "x", "upd', "application/json")
        if fault == "html":  # a proxy's error page with 200
            return self._raw(200, b"<html><body>Service maintenance</body></html>", "text/html")
        if fault == "huge":  # a 3 MiB page, its length declared
            return self._json(200, {"results": [{"id": "x", "pad": "." * 3_000_000}], "next": None})
        if fault == "bomb":  # 40 MiB of JSON in a 40 KiB gzip body; no declared length of the decoded size
            body = gzip.compress(b'{"results": [{"id": "' + b"a" * 40_000_000 + b'"}]}', compresslevel=9)
            return self._raw(200, body, "application/json", {"Content-Encoding": "gzip"})
        if fault == "offsite":  # a next link to another host
            return self._json(200, {"results": [], "next": "http://203.0.113.9/items?start=10"})
        if isinstance(fault, tuple):  # (429, retry-after)
            return self._json(fault[0], {"error": "slow down"}, {"Retry-After": str(fault[1])})
        if isinstance(fault, int):
            return self._json(fault, {"error": "injected"})
        if not self._authorized(query):
            return self._json(401, {"error": "unauthorized"})
        if parts.path == "/vmv":
            return self._vmv(query)
        style = parts.path.strip("/").split("/")[0]
        return self._items(style, query)

    def _authorized(self, query: dict[str, str]) -> bool:
        mode = self.api.auth
        if mode is None:
            return True
        if mode == "api_key_header":
            return self.headers.get("X-API-Key") == API_KEY
        if mode == "api_key_query":
            return query.get("api_key") == API_KEY
        if mode == "bearer":
            return self.headers.get("Authorization") == f"Bearer {TOKEN}"
        header = self.headers.get("Authorization") or ""
        return header == f"Bearer {TOKEN}-{self.api.tokens_issued}"  # only the newest token is valid

    def _items(self, style: str, q: dict[str, str]) -> None:
        rows = [r for r in self.api.items() if not q.get("updated_after") or r["updated_at"] > q["updated_after"]]
        base = f"{self.api.base}/{style}/items"
        keep = {k: v for k, v in q.items() if k == "updated_after"}
        if style == "cursor":
            start = int(q.get("cursor") or 0)
            page = rows[start : start + PAGE]
            nxt = start + PAGE if start + PAGE < len(rows) else None
            if self.api.repeat_cursor:
                nxt = 5
            return self._json(200, {"data": {"items": page}, "next_cursor": None if nxt is None else str(nxt)})
        if style == "page":
            n = int(q.get("page") or 1)
            return self._json(200, {"items": rows[(n - 1) * PAGE : n * PAGE]})
        if style == "offset":
            offset, limit = int(q.get("offset") or 0), int(q.get("limit") or PAGE)
            return self._json(200, {"items": rows[offset : offset + limit], "total": len(rows)})
        start = int(q.get("start") or 0)
        page = rows[start : start + PAGE]
        nxt = f"{base}?{urlencode({**keep, 'start': start + PAGE})}" if start + PAGE < len(rows) else None
        if style == "link":
            headers = {"Link": f'<{nxt}>; rel="next", <{base}>; rel="first"'} if nxt else {}
            return self._json(200, page, headers)
        return self._json(200, {"results": page, "next": nxt})

    def _vmv(self, q: dict[str, str]) -> None:
        key = (q.get("license_plate", ""), q.get("state_code", ""))
        if key not in self.api.valuations:
            return self._json(404, {"error": "no such vehicle"})
        return self._json(200, {"vehicle": {"plate": key[0]}, "valuation": {"amount": self.api.valuations[key]}})

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(body).encode(), "application/json", headers)

    def _raw(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serve_api(api: Api) -> Iterator[Api]:
    """Serve `api` on 127.0.0.1 (a free port) for the block; `api.base` is its URL."""
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    api.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def rest_project(root: Path, rest: dict[str, Any], datasets: dict[str, Any] | None = None) -> Path:
    """`root/lakestack.yaml` with REST source `items` (its `rest:` block given)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "contracts").mkdir(exist_ok=True)
    (root / "contracts" / "items.v1.json").write_text(json.dumps(ITEMS_CONTRACT, indent=2))
    config = {
        "name": "pull",
        "environments": {
            "dev": {"warehouse": "./warehouse", "catalog": {"type": "sql", "uri": "sqlite:///.lakestack/catalog.db"}}
        },
        "sources": {"items": {"kind": "rest", "contract": "items", "rest": rest}},
        "datasets": datasets or {},
    }
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False

"""The Northwind example's APIs: a CRM contacts API and a vehicle market valuation (VMV) API, over
real HTTP on 127.0.0.1 (http.server in a thread), so the example's REST source and enrichment
lookup run offline.

- `GET /crm/v3/contacts?limit=&after=&updated_after=`: contacts sorted by (`updated_at`,
  `contact_id`), `limit` a page (at most 100), the next page's cursor at `paging.next.after`
  (absent on the last page); `updated_after` keeps contacts changed strictly after it. A few
  contacts carry an email without `@` on purpose (the contract quarantines them).
- `GET /vmv?license_plate=&state_code=`: the vehicle's market value in USD at `valuation.amount`;
  400 without both parameters.

Both want the API key in the `X-API-Key` header (401 otherwise, checked first). Then, over all
authorised requests: a token bucket (`rate` per second, `burst`) answers 429 with `Retry-After: 1`
when it is empty, and the n-th request (1-based) gets an injected 429 when n % every_429 ==
offset_429 and an injected 500 when n % every_500 == offset_500, so every run sees both and
retries. Everything served comes from the seed, never from the clock: the same seed serves the
same contacts and values.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lakestack.errors import UsageError

SECRET = "NORTHWIND_API_KEY"  # the secret both APIs' key is read from (an environment variable by default)
CONTACTS_PATH = "/crm/v3/contacts"
VMV_PATH = "/vmv"
KEY_HEADER = "X-API-Key"
MAX_PAGE = 100
CONTACT_CUSTOMERS = 200  # contacts belong to customers C100000..C100199 (the generator always makes 200+)
JOB_TITLES = ("Buyer", "Purchasing Manager", "Owner", "Office Manager", "Head of Procurement", "Chef", "Accountant")
STAGES = ("lead", "opportunity", "customer", "evangelist")
BROKEN_EVERY = 60  # every 60th contact has an email without "@" (quarantined by the contract)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """What the example's APIs serve and how they misbehave (see the module docstring)."""

    seed: int
    key: str
    contacts: int = 240
    rate: float = 60.0
    burst: int = 20
    every_429: int = 40
    offset_429: int = 5
    every_500: int = 15
    offset_500: int = 7


@dataclass(slots=True)
class ApiState:
    """The server's counters: answers by (path, status), and the authorised requests so far."""

    settings: ApiSettings
    contacts: list[dict[str, Any]]
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    served: int = 0
    tokens: float = 0.0
    refilled: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int, path: str | None = None) -> int:
        return sum(n for (p, s), n in self.answers.items() if s == status and (path is None or p == path))

    def summary(self) -> str:
        total = sum(self.answers.values())
        by_path = Counter[str]()
        for (p, _), n in self.answers.items():
            by_path[p] += n
        paths = ", ".join(f"{p} {n}" for p, n in sorted(by_path.items()))
        statuses = ", ".join(f"{n} x {s}" for s, n in sorted(_status_counts(self.answers).items()))
        return f"{total} requests ({paths}): {statuses or 'none'}"

    def _take(self) -> bool:
        """One token from the bucket (under the lock): False when it is empty."""
        now = time.monotonic()
        rate, burst = self.settings.rate, self.settings.burst
        self.tokens = min(float(burst), self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def admit(self) -> int | None:
        """None: serve the request; else the status to answer instead (429 or 500)."""
        s = self.settings
        with self.lock:
            if not self._take():
                return 429
            self.served += 1
            n = self.served
        if s.every_429 and n % s.every_429 == s.offset_429:
            return 429
        if s.every_500 and n % s.every_500 == s.offset_500:
            return 500
        return None


def _status_counts(answers: Counter[tuple[str, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for (_, status), n in answers.items():
        out[status] = out.get(status, 0) + n
    return out


def contacts(seed: int, n: int) -> list[dict[str, Any]]:
    """The CRM's contacts for this seed, sorted as served (by updated_at, then contact_id)."""
    from lakestack.examples.northwind import DOMAINS, FIRST, LAST, _email_local

    rnd = random.Random(f"northwind-crm:{seed}")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        created = start - timedelta(days=rnd.randrange(30, 700), seconds=rnd.randrange(86_400))
        updated = start + timedelta(days=rnd.randrange(0, 14), seconds=rnd.randrange(86_400))
        email = f"{_email_local(first, last)}.{i}@{rnd.choice(DOMAINS)}"
        rows.append(
            {
                "contact_id": f"CT{i + 1:06d}",
                "customer_id": f"C{100_000 + rnd.randrange(CONTACT_CUSTOMERS):06d}",
                "first_name": first,
                "last_name": last,
                "email": email.replace("@", " at ") if i % BROKEN_EVERY == BROKEN_EVERY // 2 else email,
                "job_title": rnd.choice(JOB_TITLES),
                "lifecycle_stage": rnd.choice(STAGES),
                "created_at": f"{created:%Y-%m-%dT%H:%M:%S}Z",
                "updated_at": f"{updated:%Y-%m-%dT%H:%M:%S}Z",
            }
        )
    rows.sort(key=lambda r: (r["updated_at"], r["contact_id"]))
    return rows


def valuation(seed: int, plate: str, state: str) -> int:
    """A vehicle's market value in USD: 6,000-66,000 in steps of 50, from the seed, plate and state."""
    digest = hashlib.sha256(f"{seed}:{plate}:{state}".encode()).digest()
    return 6_000 + int.from_bytes(digest[:4], "big") % 1_200 * 50


class _Handler(BaseHTTPRequestHandler):
    state: ApiState
    server_version = "northwind-apis/1"

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the summary says what was served

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path not in (CONTACTS_PATH, VMV_PATH):
            return self._json(path, 404, {"error": f"no such resource {path}"})
        if self.headers.get(KEY_HEADER) != self.state.settings.key:
            return self._json(path, 401, {"error": f"missing or wrong API key (header {KEY_HEADER})"})
        refused = self.state.admit()
        if refused == 429:
            return self._json(path, 429, {"error": "rate limit exceeded"}, {"Retry-After": "1"})
        if refused is not None:
            return self._json(path, refused, {"error": "internal error (injected)"})
        if path == VMV_PATH:
            return self._vmv(query)
        return self._contacts(query)

    def _contacts(self, q: dict[str, str]) -> None:
        try:
            limit = min(MAX_PAGE, max(1, int(q.get("limit", MAX_PAGE))))
            start = int(q.get("after") or 0)
        except ValueError:
            return self._json(CONTACTS_PATH, 400, {"error": "limit and after must be integers"})
        since = q.get("updated_after")
        rows = [r for r in self.state.contacts if not since or r["updated_at"] > since]
        page = rows[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return self._json(CONTACTS_PATH, 200, body)

    def _vmv(self, q: dict[str, str]) -> None:
        plate, state = q.get("license_plate", ""), q.get("state_code", "")
        if not plate or not state:
            return self._json(VMV_PATH, 400, {"error": "license_plate and state_code are required"})
        amount = valuation(self.state.settings.seed, plate, state)
        body = {
            "license_plate": plate,
            "state_code": state,
            "valuation": {"amount": amount, "currency": "USD", "as_of": "2026-01-15"},
            "source": "northwind-vmv",
        }
        return self._json(VMV_PATH, 200, body)

    def _json(self, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        with self.state.lock:
            self.state.answers[(path, status)] += 1
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class NorthwindApis:
    """The example's APIs served on 127.0.0.1 (`port` 0: a free one) until :meth:`close`.

    >>> with NorthwindApis(ApiSettings(seed=42, key="k")) as apis:
    ...     apis.url  # 'http://127.0.0.1:<port>'
    """

    def __init__(self, settings: ApiSettings, port: int = 0) -> None:
        self.state = ApiState(settings, contacts(settings.seed, settings.contacts), tokens=float(settings.burst))
        self.state.refilled = time.monotonic()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="northwind-apis", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> NorthwindApis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_apis(project_dir: Path, url: str) -> list[str]:
    """Add the APIs' parts to a copied Northwind project: the `crm_contacts` REST source and the
    `assets` file source with its Silver datasets (the `vmv` lookup on `assets`), their contracts
    and `gold.fleet_values` (published with the other marts), all calling `url` (the server of
    :class:`NorthwindApis`). The project file keeps its comments: the sources, datasets and the
    published table are inserted at the end of their blocks.
    Returns the files written, relative to the project folder."""
    from lakestack.pipeline.scaffold import example_template

    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise UsageError(f"--apis wants the APIs' base URL, like http://127.0.0.1:8765 (got '{url}')")
    overlay = example_template("northwind") / "apis"
    written = []
    for item in sorted(overlay.rglob("*")):
        rel = item.relative_to(overlay)
        if item.is_dir() or len(rel.parts) == 1:  # sources.yaml, datasets.yaml: spliced into lakestack.yaml
            continue
        target = project_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.read_bytes())
        written.append(rel.as_posix())
    project = project_dir / "lakestack.yaml"
    text = project.read_text(encoding="utf-8")
    for block, before in (("sources.yaml", "datasets:"), ("datasets.yaml", "publish:")):
        fragment = (overlay / block).read_text(encoding="utf-8").replace("__API_URL__", url)
        text = _insert_before(text, before, fragment, project)
    text = _append_to_publish(text, (overlay / "publish.yaml").read_text(encoding="utf-8"), project)
    project.write_text(text, encoding="utf-8")
    return ["lakestack.yaml", *written]


def _append_to_publish(text: str, fragment: str, path: Path) -> str:
    """gold.fleet_values joins the tables the last publish target lists (the file's last block)."""
    lines = text.rstrip("\n").splitlines(keepends=True)
    if not lines or not lines[-1].startswith("      gold."):
        raise UsageError(f"{path}: the publish block's dataset list is not where the APIs' table is added (the end)")
    return "".join(lines) + "\n" + fragment


def _insert_before(text: str, top_key: str, fragment: str, path: Path) -> str:
    lines = text.splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if line.rstrip() == top_key), None)
    if at is None:
        raise UsageError(f"{path}: no top-level '{top_key}' line to add the APIs' entries before")
    while at > 0 and lines[at - 1].lstrip().startswith("#"):  # keep a block's leading comment with it
        at -= 1
    return "".join(lines[:at]) + fragment + "".join(lines[at:])

"""Who may call `lakestack serve`: API keys, a token bucket per key, every decision audited.

A request carries `Authorization: Bearer lsk_<id>_<secret>` (or `X-API-Key: ...`). No key, a
malformed, unknown, revoked or wrong key → 401; a key whose role or sources do not allow the call
→ 403, with the same answer for every source name (a key never learns whether a source it may not
use exists); over the key's rate → 429 with Retry-After. Each refusal, and each call let through,
is an `_lakestack.audit` row, buffered and committed by a background thread off the request path.

The keys are read from `_lakestack.api_keys` and re-read every `reload_seconds` (a revoked key
stops working within that, a new one starts). A key's scrypt hash is checked once per process (in
a worker thread: it costs tens of milliseconds on purpose); after that a SHA-256 of the presented
key finds it in memory. `insecure_dev` (`lakestack serve --insecure-dev`, loopback only) lets
requests without a key through as the `engineer` role, audited as such.

Open without a key: `/healthz` (and `/health`), `/readyz`, and the API's description (`/docs`,
`/redoc`, `/openapi.json`: paths and schemas, no data, no source names). `/metrics` needs an
`engineer` key: it names every dataset.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from lakestack.pipeline.apikeys import ApiKey, parse_key, read_keys, verify
from lakestack.pipeline.audit import AuditEntry, AuditLog, os_user

DEV_ROLE = "engineer"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is: its key (None in insecure dev mode) and role."""

    key_id: str | None
    role: str
    key: ApiKey | None = None

    @property
    def user(self) -> dict[str, str]:
        """The user attributes row filters read (the key's; none in insecure dev mode)."""
        return self.key.user if self.key is not None else {}


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take` answers 0 (granted) or the seconds to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Access:
    """The API's gate: authenticates, authorizes, rate-limits and audits each request."""

    def __init__(
        self,
        lake: Any,
        audit: AuditLog,
        *,
        insecure_dev: bool = False,
        rate: float = 100.0,
        burst: int = 200,
        reload_seconds: float = 2.0,
    ) -> None:
        self.lake, self.audit, self.insecure_dev = lake, audit, insecure_dev
        self.rate, self.burst, self.reload_seconds = rate, burst, reload_seconds
        self._keys: dict[str, ApiKey] = {}
        self._loaded = -math.inf
        self._reload = threading.Lock()
        self._verified: dict[bytes, str] = {}  # sha256 of a presented key → its id, once scrypt agreed
        self._buckets: dict[str, TokenBucket] = {}
        self._user = os_user()

    async def caller(
        self,
        request: Request,
        action: str,
        *,
        writes: str | None = None,
        reads: str | None = None,
        role: str | None = None,
    ) -> Caller | JSONResponse:
        """The caller if it may do `action`, else the problem response to send (401, 403 or 429),
        audited. `writes`: a key that may write that source; `reads`: one that may write it or an
        engineer's; `role`: a key of that role."""
        presented = _presented(request)
        source = writes or reads
        datasets = (f"bronze.{source}",) if source else ()
        if presented is None:
            if self.insecure_dev:
                return Caller(None, DEV_ROLE)
            return self._refuse(request, action, datasets, 401, "Unauthorized", "an API key is required", None)
        key, problem = await self._authenticate(presented)
        if key is None:
            return self._refuse(request, action, datasets, 401, "Unauthorized", problem, None)
        wait = self._bucket(key.key_id).take()
        if wait > 0:
            detail = f"over the key's rate limit ({self.rate:g}/s, burst {self.burst}); retry after {math.ceil(wait)} s"
            return self._refuse(request, action, datasets, 429, "Too many requests", detail, key, math.ceil(wait))
        if not _allowed(key, writes, reads, role):
            what = "this source" if source else f"this endpoint (it needs the {role} role)"
            return self._refuse(request, action, datasets, 403, "Forbidden", f"the key may not use {what}", key)
        return Caller(key.key_id, key.role, key)

    def done(self, request: Request, caller: Caller, action: str, status: int, **extra: Any) -> None:
        """Audit a call that was let through, with its outcome."""
        result = "ok" if status < 400 else "error"
        self.audit.record(self._entry(request, caller.key_id, caller.role, action, result, status, **extra))

    async def _authenticate(self, presented: str) -> tuple[ApiKey | None, str]:
        parsed = parse_key(presented)
        if parsed is None:
            return None, "the API key is malformed (expected lsk_<id>_<secret>)"
        key_id, secret = parsed
        await self._refresh()
        key = self._keys.get(key_id)
        if key is None or not key.active:
            return None, "the API key is unknown or revoked"
        fingerprint = hashlib.sha256(presented.encode()).digest()
        if self._verified.get(fingerprint) == key_id:
            return key, ""
        if self._bucket(key_id).take() > 0:  # guessing a key's secret costs its rate too
            return None, "the API key is wrong"
        if not await asyncio.to_thread(verify, key, secret):
            return None, "the API key is wrong"
        self._verified[fingerprint] = key_id
        return key, ""

    async def _refresh(self) -> None:
        if time.monotonic() - self._loaded < self.reload_seconds:
            return
        if not self._reload.acquire(blocking=False):  # another request is re-reading them
            return
        try:
            self._keys = await asyncio.to_thread(read_keys, self.lake.warehouse)
            self._loaded = time.monotonic()
        finally:
            self._reload.release()

    def load(self) -> dict[str, ApiKey]:
        """Read the keys now (at start: `lakestack serve` refuses to start without any)."""
        self._keys = read_keys(self.lake.warehouse)
        self._loaded = time.monotonic()
        return self._keys

    def _bucket(self, key_id: str) -> TokenBucket:
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(self.rate, self.burst)
        return bucket

    def _refuse(
        self,
        request: Request,
        action: str,
        datasets: tuple[str, ...],
        status: int,
        title: str,
        detail: str,
        key: ApiKey | None,
        retry_after: int | None = None,
    ) -> JSONResponse:
        from lakestack.serve.api import problem

        entry = self._entry(
            request, key.key_id if key else None, key.role if key else None, action, "denied", status,
            datasets=datasets, detail=detail,
        )  # fmt: skip
        self.audit.record(entry)
        response = problem(status, title, detail, retry_after=retry_after)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="lakestack"'
        return response

    def _entry(
        self,
        request: Request,
        key_id: str | None,
        role: str | None,
        action: str,
        result: str,
        status: int,
        **extra: Any,
    ) -> AuditEntry:
        client = request.client.host if request.client else None
        query = f"{request.method} {request.url.path}"
        return AuditEntry(
            action, result, "api", key_id, role, self._user, query=query, status=status, client=client, **extra
        )


def _allowed(key: ApiKey, writes: str | None, reads: str | None, role: str | None) -> bool:
    if writes is not None and not key.may_write(writes):
        return False
    if reads is not None and not (key.may_write(reads) or key.role == DEV_ROLE):
        return False
    return role is None or key.role == role


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else header.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None

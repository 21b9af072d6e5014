"""An HTTP client for pulling from REST APIs (httpx): auth from secrets, a token bucket, a request
budget, retries with backoff and jitter, and errors that never show a credential.

Shared by the REST source (`ingest/rest.py`) and enrichment lookups (`pipeline/enrich.py`).

- 401/403: one refresh of an OAuth2 token, then :class:`RestAuthError` (exit 3, one line, no retry).
- 429: waits the `Retry-After` (more than `max_retry_after` ends the run) with the whole source
  paused; up to MAX_THROTTLED in a row, which are not counted as failed retries.
- 5xx, timeouts, refused connections: retried `retries` times, exponential backoff with full jitter;
  then :class:`RestUnavailable`.
- Every request sent (retries too) takes one unit of the run's :class:`Budget`; a spent budget
  returns None from :meth:`RestClient.get`, and the caller stops cleanly.
- An answer is read as a stream and refused (:class:`RestError`, nothing of it kept) once its body,
  decompressed, passes `max_response_bytes`: an API (or a compression bomb) cannot make a pull hold
  an unbounded page in memory. A `Content-Length` above the bound is refused before reading.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lakestack.config import reveal
from lakestack.errors import MissingExtraError, RunError, Transient
from lakestack.ingest.ratelimit import Budget, TokenBucket, backoff, retry_after

if TYPE_CHECKING:
    from lakestack.config import RestAuthConfig

log = logging.getLogger(__name__)

MAX_THROTTLED = 50  # 429s in a row for one request before the run gives up


class RestError(RunError):
    """A REST API answered in a way a pull cannot go on from."""


class RestAuthError(RestError):
    """The API refused the credentials (401/403): never retried."""


class RestUnavailable(RestError, Transient):
    """The API kept failing (5xx, timeouts) after every retry; the next run resumes."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What the client needs of a `rest:` block or a `lookup:` block."""

    rate_limit: float
    burst: int
    retries: int
    timeout: float
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    max_response_bytes: int = 64 * 1024 * 1024  # a larger answer (after decompression) ends the run


@dataclass(slots=True)
class Answer:
    """One response the client accepted (2xx, or a 4xx the caller judges), with its timing."""

    status: int
    content: bytes
    headers: dict[str, str]
    url: str  # as displayed: without an API key sent in the query
    latency_ms: float
    attempts: int


class RestClient:
    """GET requests to one API, within a rate limit and a budget."""

    def __init__(
        self,
        name: str,
        base_url: str,
        settings: Settings,
        auth: RestAuthConfig | None,
        headers: dict[str, Any] | None = None,
        budget: Budget | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise MissingExtraError("a REST source", "rest") from None
        from lakestack._secrets import install_log_redaction

        install_log_redaction()  # httpx logs each request's URL, an API key sent in the query with it
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.origin = _origin(base_url)
        self.settings = settings
        self.auth = auth
        self.bucket = TokenBucket(settings.rate_limit, settings.burst)
        self.budget = budget or Budget(None)
        self.requests = 0  # sent, retries included
        fixed = {k: str(reveal(v)) for k, v in (headers or {}).items()}
        self._http = httpx.Client(timeout=settings.timeout, headers=fixed, follow_redirects=False)
        self._token: str | None = None
        self._token_expires = 0.0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        """An absolute URL for a path under the base URL (or a next-page URL the API gave); a URL
        on another host is refused: the credentials must not follow it there."""
        if "://" not in path_or_url:
            return self.base_url + "/" + path_or_url.lstrip("/")
        if _origin(path_or_url) != self.origin:
            raise RestError(
                f"source '{self.name}': the API pointed to a page on another host ({_origin(path_or_url)}); "
                f"only {self.origin} is called with the source's credentials"
            )
        return path_or_url

    def get(self, path_or_url: str, params: dict[str, Any] | None = None, *, ok: tuple[int, ...] = ()) -> Answer | None:
        """The answer to `GET url?params`: a 2xx, or a status listed in `ok`. None when the run's
        budget is spent (nothing was sent)."""
        import httpx

        url = self.url(path_or_url)
        shown = display_url(url, params)
        refreshed = False
        failures = throttled = 0
        while True:
            if not self.budget.take():
                return None
            self.bucket.acquire()
            request_params, headers = self._authorize(dict(params or {}))
            started = time.perf_counter()
            self.requests += 1
            try:
                target = httpx.URL(url).copy_merge_params(request_params) if request_params else url
                response, content = self._fetch(target, headers, shown)  # a next-page URL keeps its own query
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failures = self._retry(failures, shown, f"{type(exc).__name__}")
                continue
            latency = (time.perf_counter() - started) * 1000
            status = response.status_code
            if status in (401, 403) and status not in ok:
                if self.auth is not None and self.auth.type == "oauth2" and not refreshed:
                    refreshed, self._token = True, None  # the token may have been revoked: one fresh one
                    continue
                raise RestAuthError(
                    f"source '{self.name}': the API refused the credentials ({status}) at GET {shown}; "
                    f"check {self._credential_names()}"
                )
            if status == 429:
                wait = retry_after(response.headers.get("retry-after"))
                wait = self.settings.backoff_s if wait is None else wait
                if wait > self.settings.max_retry_after_s:
                    raise RestUnavailable(
                        f"source '{self.name}': the API asks to wait {wait:.0f} s (429 Retry-After) at GET {shown}, "
                        f"more than max_retry_after_seconds ({self.settings.max_retry_after_s:.0f}); "
                        "the next run resumes"
                    )
                log.info("%s: 429 at %s; waiting %.1f s", self.name, shown, wait)
                self.bucket.pause(wait)
                throttled += 1  # waited out, not a failure; but an API that never lets a request through is
                if throttled > MAX_THROTTLED:
                    raise RestUnavailable(
                        f"source '{self.name}': GET {shown} was answered 429 {throttled} times in a row; "
                        "the next run resumes"
                    )
                continue
            if status >= 500:
                failures = self._retry(failures, shown, f"{status} {response.reason_phrase}")
                continue
            if status >= 300 and status not in ok:
                raise RestError(
                    f"source '{self.name}': GET {shown} answered {status} {response.reason_phrase}: {_snippet(content)}"
                )
            return Answer(status, content, dict(response.headers), shown, latency, failures + 1)

    def _fetch(self, target: Any, headers: dict[str, str], shown: str) -> tuple[Any, bytes]:
        """The response and its body, read in chunks up to `max_response_bytes` (decompressed)."""
        limit = self.settings.max_response_bytes
        with self._http.stream("GET", target, headers=headers) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
                raise self._too_large(shown, f"it declares {int(declared):,} bytes")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise self._too_large(shown, f"more than {limit:,} bytes were read")
                chunks.append(chunk)
        return response, b"".join(chunks)

    def _too_large(self, shown: str, why: str) -> RestError:
        return RestError(
            f"source '{self.name}': the answer to GET {shown} is larger than max_response_mb "
            f"({self.settings.max_response_bytes / 2**20:g} MiB; {why}); ask for smaller pages "
            "(the resource's page size) or raise max_response_mb"
        )

    def _retry(self, failures: int, shown: str, what: str) -> int:
        if failures >= self.settings.retries:
            raise RestUnavailable(
                f"source '{self.name}': GET {shown} failed {failures + 1} times (last: {what}); the next run resumes"
            )
        failures += 1
        delay = backoff(failures - 1, self.settings.backoff_s, self.settings.max_backoff_s)
        log.info("%s: %s at %s; retry %d in %.2f s", self.name, what, shown, failures, delay)
        time.sleep(delay)
        return failures

    # -- auth ----------------------------------------------------------------------------------
    def _authorize(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        auth = self.auth
        if auth is None:
            return params, {}
        if auth.type == "api_key":
            key = reveal(auth.key) or ""
            if auth.location == "query":
                return {**params, auth.name: key}, {}
            return params, {auth.name: key}
        if auth.type == "bearer":
            return params, {"Authorization": f"Bearer {reveal(auth.token)}"}
        return params, {"Authorization": f"Bearer {self._oauth_token()}"}

    def _oauth_token(self) -> str:
        """A client-credentials access token, fetched again a little before it expires."""
        import httpx

        auth = self.auth
        assert auth is not None and auth.token_url is not None
        if self._token is not None and time.monotonic() < self._token_expires:
            return self._token
        form = {
            "grant_type": "client_credentials",
            "client_id": str(reveal(auth.client_id)),
            "client_secret": str(reveal(auth.client_secret)),
        }
        if auth.scope:
            form["scope"] = auth.scope
        try:
            response = self._http.post(auth.token_url, data=form)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise RestUnavailable(
                f"source '{self.name}': the token endpoint did not answer ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise RestAuthError(
                f"source '{self.name}': the token endpoint refused the client credentials "
                f"({response.status_code}); check {self._credential_names()}"
            )
        try:
            body = response.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise RestAuthError(f"source '{self.name}': the token endpoint's answer has no access_token") from None
        from lakestack._secrets import remember

        remember(token)  # a token is a credential too: redacted from every message from now on
        self._token = token
        expires = float(body["expires_in"]) if isinstance(body.get("expires_in"), int | float) else 3600.0
        self._token_expires = time.monotonic() + max(expires - 30, expires / 2)
        return token

    def _credential_names(self) -> str:
        auth = self.auth
        if auth is None:
            return "whether the API needs auth (the source has no 'auth:' block)"
        refs = [getattr(auth, f) for f in ("key", "token", "client_id", "client_secret")]
        names = [r.secret for r in refs if r is not None and hasattr(r, "secret")]
        return "secret " + ", ".join(names) if names else "the source's auth block"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


def display_url(url: str, params: dict[str, Any] | None = None) -> str:
    """A URL as shown in reports, errors and `_source_position`: its query parameters (never the
    credentials: they are added only when the request is sent)."""
    if not params:
        return url
    from urllib.parse import urlencode

    return url + ("&" if "?" in url else "?") + urlencode({k: v for k, v in params.items() if v is not None})


def _snippet(content: bytes) -> str:
    text = content[:200].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("…" if len(content) > 200 else "") if text else "(empty body)"

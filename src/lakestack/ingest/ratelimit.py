"""A token bucket per source, a request budget per run, and backoff with jitter (REST pulls, lookups)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


class TokenBucket:
    """`rate` requests per second on average, bursts of up to `burst`; `pause` holds every request
    back until a moment the server named (a 429's Retry-After)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time spent waiting, for reports

    def acquire(self) -> None:
        """Wait until a request may go out, and take its token."""
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                wait = max(self._paused_until - now, 0.0)
                if wait <= 0 and self._tokens >= 1:
                    self._tokens -= 1
                    return
                if wait <= 0:
                    wait = (1 - self._tokens) / self.rate
            self.waited_s += wait
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """No request goes out for `seconds` (the server asked so); the bucket starts empty after."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tokens = 0.0


class Budget:
    """At most `limit` requests in a run (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    @property
    def spent(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    def take(self) -> bool:
        """Count one request; False (and nothing counted) when the budget is spent."""
        if self.spent:
            return False
        self.used += 1
        return True


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry `attempt` (0-based): exponential, capped, with full jitter (AWS's
    "Exponential Backoff And Jitter"), so clients that failed together do not retry together."""
    return random.uniform(0, min(cap, base * 2**attempt))


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)

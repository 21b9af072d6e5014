"""The pure parts of REST pulls: the token bucket, Retry-After, backoff, Link headers, paging."""

from __future__ import annotations

from datetime import UTC, datetime

from lakestack.config import RestPaginatorConfig, RestResourceConfig
from lakestack.ingest.ratelimit import Budget, TokenBucket, backoff, retry_after
from lakestack.ingest.rest import _next_link, first_request, get_path, newest, next_request
from lakestack.ingest.restclient import Answer, display_url


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
    assert clock.now == 0.0  # the burst goes out at once
    for _ in range(4):
        bucket.acquire()
    assert abs(clock.now - 2.0) < 1e-9  # then 2 a second


def test_a_pause_holds_every_request_back() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=100.0, burst=100, clock=clock, sleep=clock.sleep)
    bucket.pause(5.0)
    bucket.acquire()
    assert clock.now >= 5.0


def test_budget() -> None:
    budget = Budget(2)
    assert budget.take() and budget.take() and not budget.take()
    assert budget.spent and budget.used == 2
    assert Budget(None).take()


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    now = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    assert retry_after("Thu, 03 Dec 2026 10:00:30 GMT", now=now) == 30.0
    assert retry_after("Thu, 03 Dec 2026 09:00:00 GMT", now=now) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_backoff_is_capped_and_jittered() -> None:
    waits = [backoff(10, 0.5, 4.0) for _ in range(200)]
    assert max(waits) <= 4.0 and min(waits) >= 0.0 and len(set(waits)) > 100


def test_link_header() -> None:
    header = '<https://api.x/items?page=3>; rel="next", <https://api.x/items?page=1>; rel="first"'
    assert _next_link(header) == "https://api.x/items?page=3"
    assert _next_link('<https://api.x/items?page=1>; rel="prev"') is None
    assert _next_link("") is None


def _answer(headers: dict[str, str] | None = None) -> Answer:
    return Answer(200, b"{}", headers or {}, "u", 1.0, 1)


def test_paging_rules() -> None:
    offset = RestResourceConfig(
        path="/x", paginator=RestPaginatorConfig(type="offset", limit=10, total_path="meta.total")
    )
    first = first_request(offset, None)
    assert first["params"] == {"offset": 0, "limit": 10}
    second = next_request(offset.paginator, first, _answer(), {"meta": {"total": 15}}, 10)
    assert second is not None and second["params"]["offset"] == 10
    assert next_request(offset.paginator, second, _answer(), {"meta": {"total": 15}}, 5) is None
    pages = RestPaginatorConfig(type="page_number", base_page=0)
    assert next_request(pages, {"url": "/x", "params": {"page": 0}}, _answer(), [], 0) is None  # empty: done
    cursor = RestPaginatorConfig(type="cursor", cursor_path="paging.next.after", cursor_param="after")
    body = {"paging": {"next": {"after": "abc"}}}
    assert next_request(cursor, {"url": "/x", "params": {}}, _answer(), body, 3) == {
        "url": "/x",
        "params": {"after": "abc"},
    }
    assert next_request(cursor, {"url": "/x", "params": {}}, _answer(), {"paging": {}}, 3) is None


def test_paths_cursors_and_urls() -> None:
    assert get_path({"a": [{"b": 1}]}, "a.0.b") == 1 and get_path({"a": 1}, "a.b") is None
    assert newest(None, ["2026-01-02", "2026-01-10", "2026-01-03"]) == "2026-01-10"
    assert newest(5, [3, 9, 7]) == 9
    assert display_url("http://h/x", {"a": 1, "b": None}) == "http://h/x?a=1"

"""The HTTP collector over a real uvicorn server on loopback, committing to a real SQLite catalog."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakestack.failpoints import armed
from lakestack.ingest.http import COMMIT_TRIES_BEFORE_PENDING, Collector, Overloaded, json_depth
from lakestack.pipeline.lake import Lake
from lakestack.storage.warehouse import history
from serve_support import running_server
from stream_support import bronze_ids, event, payload, quarantine_rows, stream_project


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return stream_project(tmp_path / "p", "http", None, max_seconds=0.2)


@pytest.mark.parametrize("ack", ["durable", "committed"])
def test_records_answer_per_record_and_land_in_bronze_or_quarantine(root: Path, ack: str) -> None:
    config = root / "lakestack.yaml"
    config.write_text(config.read_text().replace("kind: http", f"kind: http\n    http: {{ack: {ack}}}"))
    body = [event(1), event(2, amount=-5), event(3), {"event_id": "e4", "ts": "2026-11-22T10:00:00Z", "extra": 1}]
    with running_server(root) as url:
        answer = httpx.post(f"{url}/v1/streams/events/records", json=body, timeout=30)
        if ack == "committed":  # answered after the Iceberg commit: readable now, from another process too
            assert sorted(bronze_ids(root)) == ["e1", "e3"]
        counters = httpx.get(f"{url}/v1/streams/events", timeout=10).json()
        assert counters["received"] == 4  # counted once acknowledged, committed or not
    assert answer.status_code == 200
    result = answer.json()
    assert (result["snapshot_id"] is not None) == (ack == "committed")
    assert (result["records"], result["accepted"], result["rejected"]) == (4, 2, 2)
    statuses = [r["status"] for r in result["results"]]
    assert statuses == ["accepted", "rejected", "accepted", "rejected"]
    rules = {e["rule"] for e in result["results"][3]["errors"]}
    assert {"required", "unknown_field"} <= rules, rules  # every error of the record, not only the first
    assert sorted(bronze_ids(root)) == ["e1", "e3"]
    bad = quarantine_rows(root)
    assert len(bad) == 2
    assert all(r["_source_position"].startswith("http:") for r in bad)
    assert {r["_source_position"].rsplit("@", 1)[1] for r in bad} == {"1", "3"}


def test_ndjson_keeps_going_past_malformed_lines(root: Path) -> None:
    lines = [payload(1), b"not json", b'{"event_id": "e\xff", "ts": "x", "amount": 1}', payload(2), b'{"a": 1, "a": 2}']
    with running_server(root) as url:
        answer = httpx.post(
            f"{url}/v1/streams/events/records",
            content=b"\n".join(lines),
            headers={"content-type": "application/x-ndjson"},
            timeout=30,
        )
    result = answer.json()
    assert [r["status"] for r in result["results"]] == ["accepted", "rejected", "rejected", "accepted", "rejected"]
    assert result["results"][1]["errors"][0]["rule"] == "json"
    assert result["results"][2]["errors"][0]["rule"] == "encoding"
    assert sorted(bronze_ids(root)) == ["e1", "e2"]
    reasons = sorted(r["_reason"] for r in quarantine_rows(root))
    assert len(reasons) == 3
    assert any("UTF-8" in r for r in reasons)


def test_a_retried_batch_lands_once_even_across_a_restart(root: Path) -> None:
    body = [event(i) for i in range(10)] + [event(99, amount="x")]
    headers = {"Lakestack-Batch-Id": "batch-0001"}
    with running_server(root) as url:
        first = httpx.post(f"{url}/v1/streams/events/records", json=body, headers=headers, timeout=30).json()
        again = httpx.post(f"{url}/v1/streams/events/records", json=body, headers=headers, timeout=30).json()
    with running_server(root) as url:  # a new process remembers the batch from the commit's checkpoint
        later = httpx.post(
            f"{url}/v1/streams/events/records", json=body, headers={"Idempotency-Key": "batch-0001"}, timeout=30
        ).json()
        other = httpx.post(
            f"{url}/v1/streams/events/records", json=[event(50)], headers={"Idempotency-Key": "batch-0002"}, timeout=30
        ).json()
    assert (first["duplicate"], again["duplicate"], later["duplicate"], other["duplicate"]) == (
        False,
        True,
        True,
        False,
    )
    assert again["results"] == first["results"] == later["results"]
    assert sorted(bronze_ids(root)) == sorted([f"e{i}" for i in range(10)] + ["e50"])
    assert len(quarantine_rows(root)) == 1


def test_concurrent_requests_share_commits_and_each_record_lands_once(root: Path) -> None:
    errors: list[BaseException] = []

    def client(url: str, c: int) -> None:
        try:
            with httpx.Client(timeout=60) as http:
                for r in range(10):
                    body = [event(c * 10_000 + r * 100 + i) for i in range(50)]
                    assert http.post(f"{url}/v1/streams/events/records", json=body).status_code == 200
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with running_server(root) as url:
        threads = [threading.Thread(target=client, args=(url, c)) for c in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status = httpx.get(f"{url}/v1/streams/events").json()
    assert not errors, errors
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 8 * 10 * 50
    assert status["source"] == "events"
    commits = [c for c in history(Lake.open(root).warehouse.load("bronze.events")) if c.added_records]
    assert len(commits) < 80, "concurrent requests should be group-committed"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "limit"),
    [
        (b"[" + b",".join([payload(1)] * 11) + b"]", "application/json", 413, "max_records"),
        (json.dumps([{"event_id": "x" * 3000}]).encode(), "application/json", 413, "max_record_bytes"),
        (
            json.dumps([{"event_id": "e1", "deep": [[[[[[[[[[1]]]]]]]]]]}]).encode(),
            "application/json",
            400,
            "max_depth",
        ),
        (b"x" * 70_000, "application/x-ndjson", 413, "max_request_bytes"),
    ],
)
def test_limits_answer_a_problem_naming_the_limit(
    tmp_path: Path, body: bytes, content_type: str, status: int, limit: str
) -> None:
    root = stream_project(tmp_path / "p", "http", None)
    config = (
        (root / "lakestack.yaml")
        .read_text()
        .replace(
            "kind: http",
            "kind: http\n    http: {max_records: 10, max_record_bytes: 2000, max_depth: 6, max_request_bytes: 65536}",
        )
    )
    (root / "lakestack.yaml").write_text(config)
    with running_server(root) as url:
        answer = httpx.post(
            f"{url}/v1/streams/events/records", content=body, headers={"content-type": content_type}, timeout=30
        )
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["limit"] == limit
    assert limit in problem["detail"]
    assert bronze_ids(root) == []


def test_malformed_array_unknown_source_and_openapi(root: Path) -> None:
    with running_server(root) as url:
        broken = httpx.post(f"{url}/v1/streams/events/records", content=b"[{]", timeout=30)
        unknown = httpx.post(f"{url}/v1/streams/nope/records", json=[], timeout=30)
        spec = httpx.get(f"{url}/openapi.json").json()
        empty = httpx.post(f"{url}/v1/streams/events/records", json=[], timeout=30).json()
    assert broken.status_code == 400
    assert "NDJSON" in broken.json()["detail"]
    assert unknown.status_code == 404
    assert "events" in unknown.json()["detail"]
    assert "/v1/streams/{source}/records" in spec["paths"]
    assert empty["records"] == 0


def test_backpressure_refuses_when_commits_fall_behind(root: Path) -> None:
    lake = Lake.open(root)
    source = lake.project.config.sources["events"]
    stream = source.stream.model_copy(update={"max_pending": 5, "max_seconds": 60})  # no commit comes soon
    config = source.model_copy(update={"stream": stream})
    collector = Collector(
        lake.warehouse, "events", lake.project.contract("events"), config, "run-bp", root / ".lakestack" / "wal"
    )
    collector.start()
    ndjson = "application/x-ndjson"
    first = collector.submit(b"\n".join(payload(i) for i in range(10)), ndjson)
    assert first.result(timeout=30).accepted == 10  # durable in the log, not yet in Iceberg
    with pytest.raises(Overloaded, match="max_pending"):
        collector.submit(b"\n".join(payload(i) for i in range(10, 20)), ndjson)
    collector.stop()  # the final commit
    assert len(bronze_ids(root)) == 10


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, {"c": 2}]}') == 3
    assert json_depth(b'"\\"[["') == 0


# -- resource faults: a full log disk, a full warehouse disk ------------------------------------------
def _post(url: str, body: Any, batch_id: str | None = None) -> httpx.Response:
    headers = {"Lakestack-Batch-Id": batch_id} if batch_id else {}
    return httpx.post(f"{url}/v1/streams/events/records", json=body, headers=headers, timeout=60)


def _assert_unavailable(answer: httpx.Response, title: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["title"] == title


def test_a_full_log_disk_answers_503_with_retry_after_and_loses_nothing(root: Path) -> None:
    body = [event(1), event(2, amount=-1), event(3)]
    with running_server(root) as url, armed("wal.append.before_fsync=3*enospc"):
        for _ in range(3):  # the disk is full three times: nothing is acknowledged
            answer = _post(url, body, "batch-full")
            _assert_unavailable(answer, "Log unavailable")
            assert "No space left" in answer.json()["detail"] or "no space left" in answer.json()["detail"]
        landed = _post(url, body, "batch-full")  # space is back: the retry lands
        other = _post(url, [event(4)])
    assert landed.status_code == other.status_code == 200
    assert (landed.json()["duplicate"], landed.json()["accepted"], landed.json()["rejected"]) == (False, 2, 1)
    assert sorted(bronze_ids(root)) == ["e1", "e3", "e4"]
    assert len(quarantine_rows(root)) == 1


def test_a_full_warehouse_disk_keeps_records_in_the_log_and_never_says_committed(root: Path) -> None:
    config = root / "lakestack.yaml"
    config.write_text(config.read_text().replace("kind: http", "kind: http\n    http: {ack: committed}"))
    body = [event(1), event(2, amount=-1), event(3)]
    # every commit attempt fails after writing its data files, until the fifth: the waiting client
    # is told the commit is pending (not that it landed); the collector keeps retrying from the log
    with running_server(root) as url, armed(f"storage.append.after_write={COMMIT_TRIES_BEFORE_PENDING}*enospc"):
        pending = _post(url, body, "batch-wh")
        _assert_unavailable(pending, "Commit pending")
        deadline = time.monotonic() + 60
        while (again := _post(url, body, "batch-wh")).status_code != 200 and time.monotonic() < deadline:
            _assert_unavailable(again, "Commit pending")  # a retry learns the result only once it landed
            time.sleep(0.2)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["results"][1]["status"] == "rejected"
    assert sorted(bronze_ids(root)) == ["e1", "e3"]
    assert len(quarantine_rows(root)) == 1


def test_a_real_full_filesystem_under_the_log(root: Path, tmp_path: Path) -> None:
    """The log on a 1 MiB tmpfs: filled up, the collector answers 503; freed, it lands everything."""
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        config = root / "lakestack.yaml"
        config.write_text(config.read_text().replace("kind: http", f"kind: http\n    http: {{wal_dir: '{disk}'}}"))
        with running_server(root) as url:
            assert _post(url, [event(0)], "b-0").status_code == 200
            filler = disk / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:  # fill the disk to the last page
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
            refused = _post(url, [event(i) for i in range(1, 200)], "b-1")
            _assert_unavailable(refused, "Log unavailable")
            filler.unlink()
            landed = _post(url, [event(i) for i in range(1, 200)], "b-1")
            assert landed.status_code == 200, landed.text
        ids = bronze_ids(root)
        assert len(ids) == len(set(ids)) == 200
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# -- a retried batch is answered from what was recorded ---------------------------------------------------
def test_a_large_retried_batch_is_answered_as_before_without_blocking_others(root: Path) -> None:
    config = root / "lakestack.yaml"
    limits = "{max_records: 60000, max_request_bytes: 33554432, workers: 0}"
    config.write_text(config.read_text().replace("kind: http", f"kind: http\n    http: {limits}"))
    big = [event(i, amount=-1 if i % 97 == 0 else i) for i in range(60_000)]
    lines = b"\n".join(json.dumps(r).encode() for r in big)
    ndjson = {"content-type": "application/x-ndjson", "Lakestack-Batch-Id": "big-1"}
    with running_server(root) as url:
        started = time.monotonic()
        first = httpx.post(f"{url}/v1/streams/events/records", content=lines, headers=ndjson, timeout=120).json()
        first_seconds = time.monotonic() - started
        retries: list[dict[str, Any]] = []
        small: list[float] = []

        def retry() -> None:
            with httpx.Client(timeout=120) as http:
                for _ in range(3):
                    retries.append(http.post(f"{url}/v1/streams/events/records", content=lines, headers=ndjson).json())

        thread = threading.Thread(target=retry)
        thread.start()
        with httpx.Client(timeout=60) as http:
            while thread.is_alive():
                t = time.monotonic()
                assert http.post(f"{url}/v1/streams/events/records", json=[event(100_000 + len(small))]).is_success
                small.append(time.monotonic() - t)
        thread.join()
    assert len(retries) == 3
    assert all(r["duplicate"] and r["results"] == first["results"] for r in retries)
    assert first["rejected"] == len([i for i in range(60_000) if i % 97 == 0])
    # generous: the first request validated 60,000 records; a small one beside a retry (which is answered
    # from the recorded results, not validated again on the event loop) waits far less than that
    assert small, "no small request ran beside the retries"
    assert max(small) < first_seconds, (small, first_seconds)  # measured 0.21 s against 0.89 s
    assert len(bronze_ids(root)) == 60_000 - first["rejected"] + len(small)

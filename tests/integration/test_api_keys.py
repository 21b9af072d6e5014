"""API keys and the audit log against a real `lakestack serve` on 127.0.0.1: 401, 403, 429, revocation,
every decision in `_lakestack.audit`; keys create/list/revoke; CLI reads audited."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lake_support import cli
from serve_support import free_port, start_serve, stop_serve, wait_healthy
from stream_support import event, stream_project


@pytest.fixture
def root(tmp_path: Path) -> Path:
    import yaml

    root = stream_project(tmp_path / "p", "http", None, max_seconds=0.2)
    config = yaml.safe_load((root / "lakestack.yaml").read_text())
    config["environments"]["dev"]["serve"] = {"rate_limit": 1, "burst": 4}  # reach 429 quickly
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _create(root: Path, *args: str) -> dict[str, Any]:
    made = cli(root, "keys", "create", *args, "--json")
    assert made.returncode == 0, made.stderr
    return dict(json.loads(made.stdout))


def _audit(root: Path, *args: str) -> list[dict[str, Any]]:
    out = cli(root, "audit", "--json", "-n", "0", *args)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def test_serve_refuses_to_start_without_keys_unless_insecure_dev(root: Path) -> None:
    refused = cli(root, "serve", "--port", str(free_port()), timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "no API keys: create one with 'lakestack keys create" in refused.stderr
    assert "Traceback" not in refused.stderr
    wide = cli(root, "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--insecure-dev", timeout=120)
    assert wide.returncode == 2 and "loopback only" in wide.stderr
    port = free_port()
    proc = start_serve(root, port, insecure_dev=True)
    assert wait_healthy(port, proc)
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/streams/events/records", json=[event(1)], timeout=30)
    err = stop_serve(proc)
    assert answer.status_code == 200
    assert "WARNING: --insecure-dev" in err


def test_keys_create_list_revoke_never_show_the_secret_again(root: Path) -> None:
    writer = _create(root, "--role", "engineer", "--source", "events", "--name", "collector")
    assert writer["key"].startswith(f"lsk_{writer['key_id']}_") and writer["sources"] == ["events"]
    listed = cli(root, "keys", "list", "--json")
    assert listed.returncode == 0 and writer["key"].split("_")[-1] not in listed.stdout
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [writer["key_id"]]
    bad_role = cli(root, "keys", "create", "--role", "admin")
    assert bad_role.returncode == 2 and "unknown role 'admin' (roles: analyst, business, engineer" in bad_role.stderr
    bad_source = cli(root, "keys", "create", "--role", "analyst", "--source", "nope")
    assert bad_source.returncode == 2 and "unknown stream source 'nope'" in bad_source.stderr
    revoked = cli(root, "keys", "revoke", writer["key_id"], "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["active"] is False
    assert json.loads(cli(root, "keys", "list", "--json").stdout) == []
    assert [k["key_id"] for k in json.loads(cli(root, "keys", "list", "--all", "--json").stdout)] == [writer["key_id"]]
    actions = sorted(r["action"] for r in _audit(root, "--action", "keys"))
    assert actions == ["keys.create", "keys.revoke"]
    table = cli(root, "audit")
    assert table.returncode == 0 and "keys.create" in table.stdout


def test_401_403_429_and_revocation_against_a_real_server_each_audited(root: Path) -> None:
    writer = _create(root, "--role", "analyst", "--source", "events")
    reader = _create(root, "--role", "business")
    port = free_port()
    proc = start_serve(root, port, insecure_dev=False)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(port, proc)  # /health needs no key
        assert httpx.get(f"{url}/openapi.json", timeout=10).status_code == 200
        records = f"{url}/v1/streams/events/records"
        missing = httpx.post(records, json=[event(1)], timeout=30)
        wrong = httpx.post(records, json=[event(1)], headers={"Authorization": f"Bearer {writer['key'][:-3]}xyz"})
        assert (missing.status_code, wrong.status_code) == (401, 401)
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        bearer = {"Authorization": f"Bearer {writer['key']}"}
        ok = httpx.post(records, json=[event(1)], headers=bearer, timeout=30)
        assert ok.status_code == 200, ok.text
        other = {"X-API-Key": reader["key"]}
        known = httpx.post(records, json=[event(2)], headers=other, timeout=30)
        unknown = httpx.post(f"{url}/v1/streams/no_such/records", json=[event(2)], headers=other, timeout=30)
        assert known.status_code == unknown.status_code == 403
        assert known.json()["detail"] == unknown.json()["detail"]  # never tells whether a source exists
        assert httpx.get(f"{url}/metrics", headers=other, timeout=30).status_code == 403  # engineers only
        statuses = [httpx.get(f"{url}/v1/streams/events", headers=bearer, timeout=30).status_code for _ in range(8)]
        assert statuses[0] == 200 and 429 in statuses
        limited = httpx.get(f"{url}/v1/streams/events", headers=bearer, timeout=30)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert cli(root, "keys", "revoke", writer["key_id"]).returncode == 0
        time.sleep(3.5)  # the server re-reads the keys every 2 s; the bucket refills too
        after = httpx.post(records, json=[event(3)], headers=bearer, timeout=30)
        assert after.status_code == 401 and "revoked" in after.json()["detail"]
    finally:
        stop_serve(proc)
    rows = _audit(root, "--action", "api.stream.write")
    by_status = sorted((r["status"], r["result"], r["key_id"]) for r in rows)
    assert by_status == [
        (200, "ok", writer["key_id"]),
        (401, "denied", None),
        (401, "denied", None),
        (401, "denied", None),
        (403, "denied", reader["key_id"]),
        (403, "denied", reader["key_id"]),
    ]
    assert {r["query"] for r in rows if r["status"] == 403} == {
        "POST /v1/streams/events/records",
        "POST /v1/streams/no_such/records",
    }
    assert any(r["status"] == 429 for r in _audit(root, "--action", "api.stream.status", "--result", "denied"))
    assert [r["status"] for r in _audit(root, "--action", "api.metrics")] == [403]
    everything = json.dumps(_audit(root))
    assert writer["key"].split("_")[-1] not in everything and reader["key"].split("_")[-1] not in everything


def test_cli_query_and_show_are_audited_with_datasets_columns_and_rows(root: Path) -> None:
    port = free_port()
    proc = start_serve(root, port)
    assert wait_healthy(port, proc)
    body = [event(i) for i in range(5)]
    assert httpx.post(f"http://127.0.0.1:{port}/v1/streams/events/records", json=body, timeout=30).status_code == 200
    stop_serve(proc)
    sql = "SELECT event_id, amount FROM bronze.events WHERE amount > 1"
    assert cli(root, "query", sql, "--json").returncode == 0
    assert cli(root, "show", "bronze.events", "-n", "2").returncode == 0
    assert cli(root, "query", "SELECT nope FROM bronze.events").returncode != 0
    query_rows = _audit(root, "--action", "query")
    ok = next(r for r in query_rows if r["result"] == "ok")
    assert ok["query"] == sql and ok["rows"] == 3 and ok["channel"] == "cli" and ok["os_user"]
    assert ok["datasets"] == ["bronze.events"]
    assert ok["columns"] == ["bronze.events.amount", "bronze.events.event_id"]
    failed = next(r for r in query_rows if r["result"] != "ok")
    assert failed["result"] == "error" and failed["detail"]
    show = _audit(root, "--action", "show")
    assert len(show) == 1 and show[0]["rows"] == 2 and show[0]["datasets"] == ["bronze.events"]
    assert "bronze.events.event_id" in show[0]["columns"]
    denied = cli(root, "show", "bronze.events", "--role", "business")  # Bronze is for engineers only
    assert denied.returncode != 0
    refused = _audit(root, "--action", "show", "--result", "denied")
    assert [(r["role"], r["datasets"]) for r in refused] == [("business", ["bronze.events"])]
    who = _audit(root, "--who", ok["os_user"], "--since", "1h")
    assert {r["action"] for r in who} >= {"query", "show"}

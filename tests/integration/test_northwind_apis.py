"""The Northwind example with its APIs (`lakestack example northwind --apis URL`): the CRM contacts
API and the vehicle-valuation API served over real HTTP on 127.0.0.1 by
`lakestack.examples.northwind_apis` (started here), the whole flow through the CLI in child
processes: contacts land with counts that reconcile, the server's 429s and 500s are retried, each
vehicle is valued once and a second run asks nothing again, the API key is written nowhere, and a
wrong key is refused with exit 3 and one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake_support import child_env
from lakestack.examples.northwind_apis import (
    CONTACTS_PATH,
    SECRET,
    VMV_PATH,
    ApiSettings,
    NorthwindApis,
    contacts,
    valuation,
)

SEED = 11
KEY = "nw-key-7Hq2-SECRET-91xZ"
CONTACTS = 240


def _cli(*args: str, key: str = KEY, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakestack", *args],
        env=child_env(**{SECRET: key}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _rows(project: Path, identifier: str) -> list[dict[str, Any]]:
    from lakestack import Lake

    warehouse = Lake.open(project).warehouse
    if not warehouse.exists(identifier):
        return []
    rows: list[dict[str, Any]] = warehouse.load(identifier).scan().to_arrow().to_pylist()
    return rows


@pytest.fixture(scope="module")
def apis() -> Iterator[NorthwindApis]:
    with NorthwindApis(ApiSettings(seed=SEED, key=KEY, contacts=CONTACTS)) as server:
        yield server


@pytest.fixture(scope="module")
def project(apis: NorthwindApis, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example generated with --apis and run once, then a second time; what each run printed."""
    root = tmp_path_factory.mktemp("nwapis") / "northwind"
    made = _cli("example", "northwind", str(root), "--orders", "2000", "--days", "4", "--seed", str(SEED),
                "--apis", apis.url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    first = _cli("-p", str(root), "run")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    after_first = dict(apis.state.answers)
    calls_after_first = len(_rows(root, "_lakestack.lookup_calls"))
    second = _cli("-p", str(root), "run")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    return {
        "root": root,
        "outputs": [made, first, second],
        "after_first": after_first,
        "calls_after_first": calls_after_first,
    }


def test_contacts_land_with_counts_that_reconcile(project: dict[str, Any]) -> None:
    root = project["root"]
    served = contacts(SEED, CONTACTS)
    broken = {c["contact_id"] for c in served if "@" not in c["email"]}
    assert broken  # the API serves some contacts the contract refuses
    bronze = _rows(root, "bronze.crm_contacts")
    quarantined = _rows(root, "quarantine.crm_contacts")
    assert len(bronze) + len(quarantined) == CONTACTS  # in = landed + quarantined, after two runs
    assert {r["contact_id"] for r in bronze} == {c["contact_id"] for c in served} - broken
    assert len(quarantined) == len(broken)
    silver = _rows(root, "silver.crm_contacts")
    assert len(silver) == CONTACTS - len(broken)


def test_the_servers_429s_and_500s_are_retried(project: dict[str, Any], apis: NorthwindApis) -> None:
    first: dict[tuple[str, int], int] = project["after_first"]
    assert sum(n for (_, s), n in first.items() if s == 429) >= 1
    assert sum(n for (_, s), n in first.items() if s == 500) >= 1
    pages = -(-CONTACTS // 100)
    assert first[(CONTACTS_PATH, 200)] == pages  # every page once, its failed attempts retried
    assert (CONTACTS_PATH, 401) not in first


def test_each_vehicle_is_valued_once_and_the_second_run_asks_nothing(
    project: dict[str, Any], apis: NorthwindApis
) -> None:
    root = project["root"]
    assets = _rows(root, "silver.assets")
    keys = {(a["license_plate"], a["state_code"]) for a in assets if a["license_plate"]}
    assert len(keys) == len(assets) - 1  # one van is not registered yet: nothing to look up
    assert project["after_first"][(VMV_PATH, 200)] == len(keys)
    assert apis.state.answers[(VMV_PATH, 200)] == len(keys)  # the second run: cache hits only
    calls = _rows(root, "_lakestack.lookup_calls")
    assert len(calls) == project["calls_after_first"] == len(keys)
    assert {c["outcome"] for c in calls} == {"cached"}
    assert sum(c["attempts"] for c in calls) >= len(keys)
    cache = _rows(root, "_lakestack.lookup_vmv")
    assert {(r["license_plate"], r["state_code"]) for r in cache} == keys
    import yaml

    config = yaml.safe_load((root / "lakestack.yaml").read_text(encoding="utf-8"))
    assert "gold.fleet_values" in config["publish"]["analytics"]["datasets"]  # published with the marts
    fleet = {r["asset_id"]: r for r in _rows(root, "gold.fleet_values")}
    assert len(fleet) == len(assets)
    for asset in assets:
        value = fleet[asset["asset_id"]]["value_usd"]
        if asset["license_plate"]:
            assert value == valuation(SEED, asset["license_plate"], asset["state_code"])
        else:
            assert value is None


def test_the_api_key_is_written_nowhere(project: dict[str, Any]) -> None:
    root: Path = project["root"]
    for proc in project["outputs"]:
        assert KEY not in proc.stdout + proc.stderr
    assert "NORTHWIND_API_KEY" in (root / "lakestack.yaml").read_text(encoding="utf-8")  # named, not given
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    from lakestack import Lake

    warehouse = Lake.open(root).warehouse
    for identifier in warehouse.tables():  # Parquet pages are compressed: read the values too
        table = warehouse.load(identifier).scan().to_arrow()
        assert KEY not in json.dumps(table.to_pylist(), default=str), identifier


def test_a_wrong_key_is_refused_with_exit_3_and_one_line(project: dict[str, Any], apis: NorthwindApis) -> None:
    before = apis.state.count(401)
    proc = _cli("-p", str(project["root"]), "ingest", "crm_contacts", key="wrong-key-0000")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    error = proc.stderr.strip()
    assert len(error.splitlines()) == 1 and "401" in error and "Traceback" not in error, error
    assert "wrong-key-0000" not in proc.stdout + proc.stderr
    assert apis.state.count(401) == before + 1  # no retry storm


def test_without_apis_the_example_is_unchanged(tmp_path: Path) -> None:
    """Opt-in: the generator's other files are byte-identical with or without the fleet."""
    from lakestack.examples.northwind import generate_northwind

    plain = generate_northwind(tmp_path / "plain", orders=300, seed=3, days=8)
    fleet = generate_northwind(tmp_path / "fleet", orders=300, seed=3, days=8, fleet=True)
    assert [f for f in fleet.files if not f.startswith("landing/assets/")] == list(plain.files)
    assert [f for f in fleet.files if f.startswith("landing/assets/")] == [
        "landing/assets/fleet_20260101.csv",
        "landing/assets/fleet_20260108.csv",
    ]
    for name in plain.files:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "fleet" / name).read_bytes(), name
    assert "assets" not in plain.rows and fleet.rows["assets"] == 24
    made = _cli("example", "northwind", str(tmp_path / "nw"), "--orders", "100", "--days", "2")
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "nw" / "lakestack.yaml").read_text(encoding="utf-8")
    assert "crm_contacts" not in text and not (tmp_path / "nw" / "apis").exists()


def test_the_apis_command_serves_until_stopped(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    server = subprocess.Popen(
        [sys.executable, "-m", "lakestack", "example", "apis", "--seed", "5", "--url-file", str(url_file)],
        env=child_env(**{SECRET: KEY}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not url_file.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.05)
        url = url_file.read_text(encoding="utf-8").strip()
        assert url.startswith("http://127.0.0.1:")
        import httpx

        answer = httpx.get(f"{url}{VMV_PATH}", params={"license_plate": "7ABC123", "state_code": "CA"},
                           headers={"X-API-Key": KEY})  # fmt: skip
        assert answer.status_code == 200
        assert answer.json()["valuation"]["amount"] == valuation(5, "7ABC123", "CA")
        assert httpx.get(f"{url}{VMV_PATH}", params={"license_plate": "7ABC123", "state_code": "CA"}).status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "2 requests" in out and KEY not in out + err
    refused = _cli("example", "apis", key="")
    assert refused.returncode == 2 and SECRET in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = _cli("example", "apis", "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1:" in busy.stderr, busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1


def test_make_runs_script_stops_the_apis_when_the_run_fails(tmp_path: Path) -> None:
    """scripts/run-northwind.sh (`make run`): a run that fails (a Gold gate, --break-gold) exits
    non-zero, and the APIs it started no longer listen."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(__file__).resolve().parents[2] / "scripts" / "run-northwind.sh"
    lakestack = Path(sys.executable).parent / "lakestack"
    proc = subprocess.run(
        [str(script), str(lakestack), str(tmp_path / "nw"), "200", "3", "--break-gold"],
        env=child_env(NORTHWIND_API_PORT=str(port), NORTHWIND_API_KEY=KEY),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr  # the gate's exit code
    assert f"http://127.0.0.1:{port}" in (tmp_path / "nw" / "lakestack.yaml").read_text(encoding="utf-8")
    assert "Northwind APIs stopped" in proc.stdout and KEY not in proc.stdout + proc.stderr
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))

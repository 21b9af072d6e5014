"""Row filters over the API: an API key carries the user attributes its role's row filters read
(`lakestack keys create --attr region=...`), and every read through the key is filtered by them,
as `lakestack query --role R --user-attr` is. Keys made before attributes existed still work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, small_northwind
from lakestack import Lake

pytestmark = pytest.mark.integration

POLICIES = """\
roles:
  regional:
    grants: [{datasets: [silver.customers]}]
    unmasked: ["*"]
    row_filters:
      silver.customers: "country = :user.region"
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = small_northwind(tmp_path_factory.mktemp("rowfilters") / "nw", orders=200, days=2)
    with Lake.open(root) as lake:
        lake.ingest(["customers"])
        lake.promote(["customers"])
    (root / "policies.yaml").write_text(POLICIES, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def countries(root: Path) -> dict[str, int]:
    with Lake.open(root) as lake:
        rows = lake.query("SELECT country, count(*) AS n FROM silver.customers GROUP BY country").to_pylist()
    return {r["country"]: r["n"] for r in rows}


def _create(root: Path, *args: str) -> Any:
    return cli(root, "keys", "create", "--role", "regional", "--json", *args)


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from lakestack.serve.api import create_app

    lake = Lake.open(root)
    with TestClient(create_app(lake, schedules=[])) as c:
        yield c
    lake.close()


def test_a_key_of_a_filtered_role_needs_its_attributes(root: Path) -> None:
    out = _create(root)
    said = out.stdout + out.stderr  # --json: the error as JSON
    assert out.returncode == 2 and "filters on :user.region: pass --attr region=VALUE" in said
    assert "Traceback" not in said
    bad = _create(root, "--attr", "re-gion=x")
    assert bad.returncode == 2 and "an attribute name is letters, digits and _" in bad.stdout + bad.stderr
    assert _create(root, "--attr", "novalue").returncode == 2


def test_reads_through_a_key_are_filtered_by_its_attributes(root: Path, client: Any, countries: dict[str, int]) -> None:
    country = max(countries, key=lambda c: countries[c])
    assert 0 < countries[country] < sum(countries.values())
    made = _create(root, "--attr", f"region={country}", "--name", "emea")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["attributes"] == {"region": country}
    headers = {"Authorization": f"Bearer {key['key']}"}

    page = client.get("/v1/datasets/silver.customers/rows", params={"limit": 1000}, headers=headers)
    assert page.status_code == 200, page.text
    body = page.json()
    at = [c["name"] for c in body["columns"]].index("country")
    assert body["total"] == countries[country] == len(body["rows"])
    assert {r[at] for r in body["rows"]} == {country}

    sql = "SELECT country, count(*) AS n FROM silver.customers GROUP BY country"
    answer = client.post("/v1/query", json={"sql": sql}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [[country, countries[country]]]

    listed = cli(root, "keys", "list")
    assert listed.returncode == 0 and f"region={country}" in listed.stdout
    audit = cli(root, "audit", "--json")
    assert audit.returncode == 0 and country not in audit.stdout  # attribute names only in the audit log


def test_a_hostile_attribute_value_is_a_bound_parameter(root: Path, client: Any) -> None:
    made = _create(root, "--attr", "region=x' OR '1'='1")
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}
    page = client.get("/v1/datasets/silver.customers/rows", headers=headers)
    assert page.status_code == 200 and page.json()["rows"] == [] and page.json()["total"] == 0


def test_keys_made_before_attributes_existed_still_read(tmp_path: Path) -> None:
    """A keys table without the attributes column (an older lakestack): old keys fold, a new key
    evolves the table."""
    import pyarrow as pa

    from lakestack.pipeline.apikeys import API_KEYS, create_key, keys_schema, read_keys
    from lakestack.storage.warehouse import append

    root = small_northwind(tmp_path / "nw", orders=50, days=1)
    old = pa.schema([f for f in keys_schema() if f.name != "attributes"])
    with Lake.open(root) as lake:
        table = lake.warehouse.system_table(API_KEYS, old)
        at = pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py()
        row = {"key_id": "0123456789ab", "event": "create", "name": "old", "role": "analyst", "sources": [],
               "hash_scheme": "scrypt", "salt": b"s", "hash": b"h", "at": at, "by": "t"}  # fmt: skip
        append(table, pa.Table.from_pylist([row], schema=old), run_id="old", batch_id="old")
        assert read_keys(lake.warehouse)["0123456789ab"].attributes == ()
        key, _ = create_key(lake, "analyst", [], "new", "t", {"team": "a"})
        keys = read_keys(lake.warehouse)
        assert keys[key.key_id].user == {"team": "a"} and keys["0123456789ab"].user == {}

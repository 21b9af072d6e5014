"""Contract evolution end to end: Northwind ingests with orders v1, a v2 adds a column and widens a
type, Bronze and Silver evolve in place (field ids kept), old rows read the new column as null, and
queries and Gold builds go on; an incompatible version is refused with its changes and writes nothing;
a rename by `renamed_from` keeps the old rows' values under the new name."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lake_support import cli, small_northwind
from lakestack import Lake


def write_version(root: Path, version: int, *edits: tuple[str, str], extra: str = "") -> None:
    text = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    text = text.replace("version: 1", f"version: {version}")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    (root / "contracts" / f"orders.v{version}.yaml").write_text(text + extra, encoding="utf-8")


def land_with_coupons(root: Path, name: str, prefix: str) -> int:
    """A v2 orders file: a day's lines under new order ids, with a coupon column; returns its rows."""
    first = sorted((root / "landing" / "orders").glob("orders_*.csv"))[0]
    rows = list(csv.reader(first.open(encoding="utf-8")))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*rows[0], "coupon"])
    lines = rows[1:21]
    for i, row in enumerate(lines):
        row[0] = f"ORD-{prefix}{row[0][-7:]}"
        writer.writerow([*row, f"SAVE{i}"])
    (root / "landing" / "orders" / name).write_text(out.getvalue(), encoding="utf-8")
    return len(lines)


def query(root: Path, sql: str) -> list[dict[str, Any]]:
    result = cli(root, "query", sql, "--json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)["rows"]
    return found


def columns(root: Path, identifier: str) -> dict[str, tuple[int, str, bool]]:
    table = Lake.open(root).warehouse.load(identifier)
    return {f.name: (f.field_id, str(f.field_type), f.required) for f in table.schema().fields}


def snapshots(root: Path) -> dict[str, int | None]:
    warehouse = Lake.open(root).warehouse
    out = {}
    for identifier in warehouse.tables():
        snap = warehouse.load(identifier).current_snapshot()
        out[identifier] = snap.snapshot_id if snap else None
    return out


WIDEN = ('{name: unit_price, type: "decimal(12,2)"', '{name: unit_price, type: "decimal(14,2)"')
COUPON = "  - {name: coupon, type: string, max_length: 20}\n"


@pytest.fixture(scope="module")
def evolved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], int]:
    """Northwind run with v1, then orders v2 written, a v2 file landed and everything run again."""
    root = small_northwind(tmp_path_factory.mktemp("evolution") / "nw", orders=300, days=2)
    first = cli(root, "run")
    assert first.returncode in (0, 4), first.stderr  # 4: the example's gate may block a Gold mart
    before = {"bronze": columns(root, "bronze.orders"), "silver": columns(root, "silver.orders")}
    write_version(root, 2, WIDEN, extra=COUPON)
    landed = land_with_coupons(root, "orders_20300101.csv", "8")
    second = cli(root, "run")
    assert second.returncode in (0, 4), second.stderr
    return root, before, landed


def test_bronze_and_silver_evolve_in_place(evolved: tuple[Path, dict[str, Any], int]) -> None:
    root, before, _ = evolved
    for layer in ("bronze", "silver"):
        now = columns(root, f"{layer}.orders")
        assert now["coupon"][1:] == ("string", False)  # added optional: the old rows have no value
        assert now["unit_price"] == (before[layer]["unit_price"][0], "decimal(14, 2)", True)  # widened, same id
        for name, (field_id, _, _) in before[layer].items():
            assert now[name][0] == field_id, name
        names = list(now)
        assert names.index("coupon") == names.index("ship_country") + 1  # beside the contract's columns
        props = Lake.open(root).warehouse.load(f"{layer}.orders").metadata.properties
        assert props["lakestack.contract"] == "orders.v2"


def test_old_rows_read_the_new_column_as_null(evolved: tuple[Path, dict[str, Any], int]) -> None:
    root, _, landed = evolved
    rows = query(
        root,
        "SELECT _contract_version AS v, count(*) AS n, count(coupon) AS coupons, max(unit_price) AS top "
        "FROM bronze.orders GROUP BY 1 ORDER BY 1",
    )
    assert [(r["v"], r["coupons"]) for r in rows] == [(1, 0), (2, landed)]
    assert rows[0]["n"] > landed
    assert float(rows[1]["top"]) > 0
    table = Lake.open(root).warehouse.load("bronze.orders").scan().to_arrow()  # pyiceberg agrees
    import pyarrow.compute as pc

    old_rows = table.filter(pc.equal(table["_contract_version"], 1))
    assert old_rows.num_rows == rows[0]["n"] and old_rows["coupon"].null_count == rows[0]["n"]


def test_silver_and_gold_carry_the_new_version_on(evolved: tuple[Path, dict[str, Any], int]) -> None:
    root, _, landed = evolved
    [silver] = query(
        root, "SELECT count(*) FILTER (WHERE coupon IS NOT NULL) AS coupons, count(*) AS n FROM silver.orders"
    )
    assert silver["coupons"] == landed and silver["n"] > landed
    [gold] = query(root, "SELECT count(*) AS n FROM gold.fact_sales WHERE order_id LIKE 'ORD-8%'")
    assert gold["n"] == landed


def test_an_incompatible_version_is_refused_with_its_changes(evolved: tuple[Path, dict[str, Any], int]) -> None:
    root, _, _ = evolved
    write_version(
        root,
        3,
        ('{name: unit_price, type: "decimal(12,2)"', '{name: unit_price, type: "decimal(14,3)"'),
        ("cancelled, returned]", "cancelled]"),
        extra=COUPON,
    )
    landed = land_with_coupons(root, "orders_20300102.csv", "7")
    held = snapshots(root)
    schema = columns(root, "bronze.orders")
    try:
        result = cli(root, "ingest", "orders")
        assert result.returncode == 2, result.stderr
        message = result.stderr
        assert "contracts/orders.v3.yaml: orders.v3 is not backward-compatible with what bronze.orders holds" in message
        assert "v2→v3 unit_price: type_changed (decimal(14,2) → decimal(14,3))" in message
        assert "v2→v3 status: enum_values_removed (returned → -)" in message
        assert "Traceback" not in message
        assert snapshots(root) == held  # nothing written, not even a run record
        assert columns(root, "bronze.orders") == schema
        assert cli(root, "contracts", "check", "orders").returncode == 4
    finally:
        (root / "contracts" / "orders.v3.yaml").unlink()
    again = cli(root, "ingest", "orders")  # back on v2: the file the refusal left lands now
    assert again.returncode == 0, again.stderr
    [row] = query(root, "SELECT count(*) AS n FROM bronze.orders WHERE order_id LIKE 'ORD-7%'")
    assert row["n"] == landed


def test_promote_waits_for_ingest_to_evolve_bronze(evolved: tuple[Path, dict[str, Any], int]) -> None:
    root, _, _ = evolved
    write_version(root, 3, WIDEN, extra=COUPON + "  - {name: gift, type: boolean}\n")
    held = snapshots(root)
    try:
        result = cli(root, "promote", "orders")
        assert result.returncode == 2, result.stderr
        assert "bronze.orders still follows orders.v2: run 'lakestack ingest orders' first" in result.stderr
        assert snapshots(root) == held
    finally:
        (root / "contracts" / "orders.v3.yaml").unlink()


def test_a_rename_keeps_old_values_under_the_new_name(project: Path, land: Any) -> None:
    land(
        "orders",
        "orders_20260101.csv",
        "order_id,qty,price,currency,order_ts,email\n"
        "ORD-0001,1,1.50,USD,2026-01-01T10:00:00Z,a@x.io\nORD-0002,2,2.50,EUR,2026-01-01T11:00:00Z,b@x.io\n",
    )
    assert cli(project, "ingest", "orders").returncode == 0
    old = columns(project, "bronze.orders")
    v1 = (project / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    v2 = v1.replace("version: 1", "version: 2").replace(
        "{name: email, type: string, pii: email, max_length: 30}",
        "{name: contact_email, type: string, pii: email, max_length: 30, renamed_from: email}",
    )
    (project / "contracts" / "orders.v2.yaml").write_text(v2, encoding="utf-8")
    land(
        "orders",
        "orders_20260102.csv",
        "order_id,qty,price,currency,order_ts,contact_email\nORD-0003,3,3.50,USD,2026-01-02T10:00:00Z,c@x.io\n",
    )
    result = cli(project, "ingest", "orders")
    assert result.returncode == 0, result.stderr
    now = columns(project, "bronze.orders")
    assert "email" not in now and now["contact_email"][0] == old["email"][0]  # the same field id
    rows = query(project, "SELECT order_id, contact_email FROM bronze.orders ORDER BY order_id")
    assert [(r["order_id"], r["contact_email"]) for r in rows] == [
        ("ORD-0001", "a@x.io"),
        ("ORD-0002", "b@x.io"),
        ("ORD-0003", "c@x.io"),
    ]
    props = Lake.open(project).warehouse.load("bronze.orders").metadata.properties
    assert props["lakestack.pii.contact_email"] == "email" and "lakestack.pii.email" not in props


def _orders_v2(project: Path, until: str) -> None:
    """orders v2 adds a required channel (forward-compatible) and accepts v1 until `until`."""
    v1 = (project / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    v2 = v1.replace("version: 1", f"version: 2\ncompatibility: forward\naccept_previous_until: {until}")
    v2 += "  - {name: channel, type: string, nullable: false, enum: [web, store]}\n"
    (project / "contracts" / "orders.v2.yaml").write_text(v2, encoding="utf-8")


def test_a_transition_window_accepts_files_of_the_previous_version(project: Path, land: Any) -> None:
    header = "order_id,qty,price,currency,order_ts,email\n"
    land("orders", "orders_20260101.csv", header + "ORD-0001,1,1.50,USD,2026-01-01T10:00:00Z,a@x.io\n")
    assert cli(project, "ingest", "orders").returncode == 0
    _orders_v2(project, "2999-12-31")
    land(
        "orders",
        "orders_20260102.csv",
        header.replace("\n", ",channel\n") + "ORD-0002,2,2.5,EUR,2026-01-02T10:00:00Z,,web\n",
    )
    land("orders", "orders_20260103.csv", header + "ORD-0003,3,3.50,USD,2026-01-03T10:00:00Z,c@x.io\n")
    result = cli(project, "ingest", "orders")
    assert result.returncode == 0, result.stderr
    rows = query(project, "SELECT order_id, channel, _contract_version AS v FROM bronze.orders ORDER BY 1")
    assert [(r["order_id"], r["channel"], r["v"]) for r in rows] == [
        ("ORD-0001", None, 1),
        ("ORD-0002", "web", 2),
        ("ORD-0003", None, 1),  # a v1 file, in v2's transition window
    ]
    _orders_v2(project, "2020-01-01")  # the window has closed: a v1 file is refused as a whole
    land("orders", "orders_20260104.csv", header + "ORD-0004,4,4.50,USD,2026-01-04T10:00:00Z,d@x.io\n")
    late = cli(project, "ingest", "orders", "--json")
    assert late.returncode == 0, late.stderr
    [outcome] = [f for f in json.loads(late.stdout)["sources"][0]["files"] if f["name"] == "orders_20260104.csv"]
    assert outcome["status"] == "rejected" and "channel" in outcome["reason"]


def test_a_transition_window_accepts_records_of_the_previous_version(project: Path, land: Any) -> None:
    from conftest import CLICKS_CONTRACT

    v1 = '{"event_id": "e01", "ts": "2026-01-01T10:00:00Z", "kind": "view"}\n'
    land("clicks", "clicks_20260101.ndjson", v1)
    assert cli(project, "ingest", "clicks").returncode == 0
    v2 = {
        **CLICKS_CONTRACT,
        "x-lakestack-compatibility": "forward",
        "x-lakestack-accept-previous-until": "2999-12-31",
        "required": [*CLICKS_CONTRACT["required"], "session"],
        "properties": {**CLICKS_CONTRACT["properties"], "session": {"type": "string"}},
    }
    (project / "contracts" / "clicks.v2.json").write_text(json.dumps(v2), encoding="utf-8")
    land(
        "clicks",
        "clicks_20260102.ndjson",
        '{"event_id": "e02", "ts": "2026-01-02T10:00:00Z", "kind": "buy", "session": "s1"}\n'
        '{"event_id": "e03", "ts": "2026-01-02T11:00:00Z", "kind": "view"}\n'
        '{"event_id": "e04", "ts": "2026-01-02T12:00:00Z", "kind": "nope"}\n',
    )
    result = cli(project, "ingest", "clicks")
    assert result.returncode == 0, result.stderr
    rows = query(project, "SELECT event_id, session, _contract_version AS v FROM bronze.clicks ORDER BY 1")
    assert [(r["event_id"], r["session"], r["v"]) for r in rows] == [
        ("e01", None, 1),
        ("e02", "s1", 2),
        ("e03", None, 1),  # no session: a v1 record, in v2's transition window
    ]
    [bad] = query(project, "SELECT _source_line AS line, _reason, _contract_version AS v FROM quarantine.clicks")
    assert (bad["line"], bad["v"]) == (3, 2) and "kind" in bad["_reason"]  # refused by both; v2's issues


def test_serve_evolves_its_collector_table_or_refuses_to_start(tmp_path: Path) -> None:
    import httpx

    from serve_support import free_port, running_server
    from stream_support import EVENTS_CONTRACT, event, stream_project

    root = stream_project(tmp_path / "p", "http", None, max_seconds=0.2)
    with running_server(root) as url:
        assert httpx.post(f"{url}/v1/streams/events/records", json=[event(1)], timeout=30).status_code == 200
    v2 = {**EVENTS_CONTRACT, "properties": {**EVENTS_CONTRACT["properties"], "note": {"type": "string"}}}
    (root / "contracts" / "events.v2.json").write_text(json.dumps(v2), encoding="utf-8")
    with running_server(root) as url:
        answer = httpx.post(f"{url}/v1/streams/events/records", json=[event(2, note="v2")], timeout=30)
        assert answer.status_code == 200, answer.text
    rows = query(root, "SELECT event_id, note, _contract_version AS v FROM bronze.events ORDER BY 1")
    assert [(r["event_id"], r["note"], r["v"]) for r in rows] == [("e1", None, 1), ("e2", "v2", 2)]
    amount = {"type": "string"}  # integer → string: no Iceberg promotion, breaks every mode but none
    v3 = {**v2, "properties": {**v2["properties"], "amount": amount}}
    (root / "contracts" / "events.v3.json").write_text(json.dumps(v3), encoding="utf-8")
    held = snapshots(root)
    refused = cli(root, "serve", "--port", str(free_port()), timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "v2→v3 amount: type_changed (integer → string)" in refused.stderr
    assert snapshots(root) == held


def test_the_http_collector_accepts_the_previous_version_in_its_window(tmp_path: Path) -> None:
    import httpx

    from serve_support import running_server
    from stream_support import EVENTS_CONTRACT, event, stream_project

    root = stream_project(tmp_path / "p", "http", None, max_seconds=0.2)
    with running_server(root) as url:
        assert httpx.post(f"{url}/v1/streams/events/records", json=[event(1)], timeout=30).status_code == 200
    v2 = {
        **EVENTS_CONTRACT,
        "x-lakestack-compatibility": "forward",  # a required field added: old data lacks it
        "x-lakestack-accept-previous-until": "2999-12-31",
        "required": [*EVENTS_CONTRACT["required"], "session"],
        "properties": {**EVENTS_CONTRACT["properties"], "session": {"type": "string"}},
    }
    (root / "contracts" / "events.v2.json").write_text(json.dumps(v2), encoding="utf-8")
    body = [event(2, session="s2"), event(3), event(4, amount=-1)]  # v2, v1, neither (amount < 0)
    with running_server(root) as url:
        answer = httpx.post(f"{url}/v1/streams/events/records", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "accepted", "rejected"]
    rows = query(root, "SELECT event_id, session, _contract_version AS v FROM bronze.events ORDER BY 1")
    assert [(r["event_id"], r["session"], r["v"]) for r in rows] == [("e1", None, 1), ("e2", "s2", 2), ("e3", None, 1)]
    [bad] = query(root, "SELECT _raw, _contract_version AS v FROM quarantine.events")
    assert '"e4"' in bad["_raw"] and bad["v"] == 2


def test_a_renamed_column_keeps_its_values_through_silver_merges_and_a_full_backfill(tmp_path: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = small_northwind(tmp_path / "nw", orders=100, days=1)
    assert cli(root, "run").returncode in (0, 4)
    [before] = query(root, "SELECT count(*) AS n, count(weight_kg) AS w, sum(weight_kg) AS s FROM silver.products")
    assert before["w"] > 0
    v1 = (root / "contracts" / "products.v1.yaml").read_text(encoding="utf-8")
    v2 = v1.replace("version: 1", "version: 2").replace(
        "{name: weight_kg, type: double, min: 0}", "{name: weight, type: double, min: 0, renamed_from: weight_kg}"
    )
    assert v2 != v1.replace("version: 1", "version: 2")
    (root / "contracts" / "products.v2.yaml").write_text(v2, encoding="utf-8")
    first = sorted((root / "landing" / "products").glob("catalog_*.parquet"))[0]
    table = pq.read_table(first).slice(0, 3)  # three products again, one day later, under the new name
    table = table.rename_columns(["weight" if n == "weight_kg" else n for n in table.column_names])
    later = pc.add(table["updated_at"], pa.scalar(86_400_000_000, pa.duration("us")))
    table = table.set_column(table.column_names.index("updated_at"), "updated_at", later)
    pq.write_table(table, root / "landing" / "products" / "catalog_20300101.parquet")
    assert cli(root, "run").returncode in (0, 4)
    [merged] = query(root, "SELECT count(*) AS n, count(weight) AS w, sum(weight) AS s FROM silver.products")
    assert (merged["n"], merged["w"]) == (before["n"], before["w"])  # old rows kept their values
    assert abs(merged["s"] - before["s"]) < 1e-6
    result = cli(root, "backfill", "products", "--all")
    assert result.returncode == 0, result.stderr
    [rebuilt] = query(root, "SELECT count(*) AS n, count(weight) AS w, sum(weight) AS s FROM silver.products")
    assert (rebuilt["n"], rebuilt["w"]) == (before["n"], before["w"])  # re-derived from Bronze's old files
    assert abs(rebuilt["s"] - before["s"]) < 1e-6

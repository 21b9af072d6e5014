"""Quality checks and gates on real tables: every check type, severities, blocked gates, history, masking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lakestack import Lake
from lakestack.errors import ProjectError
from lakestack.pipeline.quality import Evaluation, mask_value
from lakestack.quality.model import CheckFile

CONTRACTS = {
    "orders.v1.yaml": """\
source: orders
version: 1
key: [order_id]
event_time: order_ts
file: {pattern: "orders_*.csv", format: csv}
columns:
  - {name: order_id, type: string, nullable: false}
  - {name: customer_id, type: string}
  - {name: qty, type: integer}
  - {name: status, type: string}
  - {name: email, type: string, pii: email}
  - {name: order_ts, type: timestamp, nullable: false}
""",
    "customers.v1.yaml": """\
source: customers
version: 1
key: [customer_id]
event_time: updated_at
file: {pattern: "customers_*.csv", format: csv}
columns:
  - {name: customer_id, type: string, nullable: false}
  - {name: updated_at, type: timestamp, nullable: false}
""",
}
PROJECT = """\
name: q
sources:
  orders: {contract: orders}
  customers: {contract: customers}
datasets:
  orders: {layer: silver}
  customers: {layer: silver, partition_by: none}
"""
ORDERS = """\
order_id,customer_id,qty,status,email,order_ts
O1,C1,1,paid,ada@x.io,2026-01-01T10:00:00Z
O2,C2,5,paid,bob@x.io,2026-01-01T11:00:00Z
O3,C9,50,lost,,2026-01-02T10:00:00Z
O4,,2,paid,eve@x.io,2026-01-02T11:00:00Z
"""
CUSTOMERS = "customer_id,updated_at\nC1,2026-01-01T00:00:00Z\nC2,2026-01-01T00:00:00Z\n"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    root = tmp_path / "q"
    (root / "contracts").mkdir(parents=True)
    for name, text in CONTRACTS.items():
        (root / "contracts" / name).write_text(text)
    (root / "lakestack.yaml").write_text(PROJECT)
    for source, text in (("orders", ORDERS), ("customers", CUSTOMERS)):
        (root / "landing" / source).mkdir(parents=True)
        (root / "landing" / source / f"{source}_1.csv").write_text(text)
    lake = Lake.open(root)
    lake.ingest()
    lake.promote()
    return lake


def evaluate(lake: Lake, *checks: dict[str, Any], dataset: str = "silver.orders") -> dict[str, Any]:
    spec = CheckFile.model_validate({"dataset": dataset, "checks": list(checks)})
    results = Evaluation(lake.warehouse, "test-run").run(dataset, spec.checks, contract=lake._contract_of(dataset))
    return {r.check_type: r for r in results}


@pytest.mark.parametrize(
    ("check", "observed", "status"),
    [
        ({"type": "not_null", "columns": ["customer_id"]}, 1, "fail"),
        ({"type": "not_null", "columns": ["order_id"]}, 0, "pass"),
        ({"type": "unique", "columns": ["customer_id", "status"]}, 0, "pass"),
        ({"type": "unique", "columns": ["status"]}, 3, "fail"),
        ({"type": "accepted_values", "column": "status", "values": ["paid"]}, 1, "fail"),
        ({"type": "accepted_values", "column": "status", "values": ["paid", "lost"]}, 0, "pass"),
        ({"type": "range", "column": "qty", "min": 1, "max": 10}, 1, "fail"),
        ({"type": "range", "column": "qty", "min": 1}, 0, "pass"),
        ({"type": "regex", "column": "order_id", "pattern": "^O[1-3]$"}, 1, "fail"),
        ({"type": "row_count", "min": 5}, 4, "fail"),
        ({"type": "row_count", "min": 1, "max": 4}, 4, "pass"),
        ({"type": "null_pct", "column": "email", "max": 20}, 25.0, "fail"),
        ({"type": "null_pct", "column": "email", "max": 25}, 25.0, "pass"),
        (
            {"type": "referential_integrity", "column": "customer_id", "references": "silver.customers.customer_id"},
            1,
            "fail",
        ),
        ({"type": "referential_integrity", "column": "order_id", "references": "silver.orders.order_id"}, 0, "pass"),
        ({"type": "custom_sql", "sql": "SELECT * FROM silver.orders WHERE qty > 4"}, 2, "fail"),
        ({"type": "custom_sql", "sql": "SELECT * FROM silver.orders WHERE qty > 50"}, 0, "pass"),
        ({"type": "regex", "column": "order_id", "pattern": "^O[0-9]$"}, 0, "pass"),
        ({"type": "schema"}, 0, "pass"),
    ],
)
def test_each_check_type_observes_exactly(lake: Lake, check: dict[str, Any], observed: float, status: str) -> None:
    result = evaluate(lake, check)[check["type"]]
    assert (result.observed, result.status) == (observed, status)


def test_schema_check_fails_when_the_table_drifts_from_the_contract(lake: Lake) -> None:
    contract = lake.project.root / "contracts" / "orders.v1.yaml"
    contract.write_text(contract.read_text().replace("{name: qty, type: integer}", "{name: qty, type: double}"))
    result = evaluate(Lake.open(lake.project.root), {"type": "schema"})["schema"]
    assert (result.observed, result.status) == (1, "fail")
    assert result.message == "qty is long, the contract says double"


def test_freshness_and_severities(lake: Lake) -> None:
    results = evaluate(
        lake,
        {"type": "freshness", "column": "_ingested_at", "max_age": "1h"},
        {"type": "not_null", "columns": ["customer_id"], "severity": "warn"},
    )
    assert results["freshness"].status == "pass" and results["freshness"].observed < 3600
    assert results["not_null"].status == "warn" and not results["not_null"].blocks
    stale = evaluate(lake, {"type": "freshness", "column": "order_ts", "max_age": "1d"})["freshness"]
    assert stale.status == "fail" and stale.observed > 86_400


def test_volume_anomaly_needs_history_then_flags_a_spike(lake: Lake) -> None:
    check = {"type": "volume_anomaly", "method": "pct", "threshold": 50, "min_history": 2, "severity": "warn"}
    first = evaluate(lake, check)["volume_anomaly"]
    assert first.status == "pass" and first.observed == 4 and "needs 2" in first.threshold
    root = lake.project.root
    for i in range(2):
        (root / "landing" / "orders" / f"orders_{i + 2}.csv").write_text(
            f"order_id,customer_id,qty,status,email,order_ts\nN{i}a,C1,1,paid,,2026-01-03T10:00:00Z\n"
            f"N{i}b,C1,1,paid,,2026-01-03T10:00:00Z\nN{i}c,C1,1,paid,,2026-01-03T10:00:00Z\n"
            f"N{i}d,C1,1,paid,,2026-01-03T10:00:00Z\n"
        )
        lake.ingest()
        lake.promote()
        assert evaluate(lake, check)["volume_anomaly"].observed == 4
    rows = "\n".join(f"S{i},C1,1,paid,,2026-01-04T10:00:00Z" for i in range(40))
    (root / "landing" / "orders" / "orders_9.csv").write_text(
        "order_id,customer_id,qty,status,email,order_ts\n" + rows + "\n"
    )
    lake.ingest()
    lake.promote()
    spike = evaluate(lake, check)["volume_anomaly"]
    assert spike.observed == 40 and spike.status == "warn"


def test_history_and_masked_failing_rows(lake: Lake) -> None:
    evaluate(lake, {"type": "range", "column": "qty", "max": 4})
    results = lake.check_results("test-run")
    assert [(r["check"], r["status"], r["observed"], r["failing_rows"]) for r in results] == [
        ("range(qty)", "fail", 2.0, 2)
    ]
    assert results[0]["snapshot_id"] == lake.warehouse.load("silver.orders").current_snapshot().snapshot_id
    rows = [json.loads(r["row"]) for r in lake.check_failures("test-run")]
    assert sorted(r["order_id"] for r in rows) == ["O2", "O3"]
    by_id = {r["order_id"]: r for r in rows}
    assert by_id["O2"]["email"] == mask_value("bob@x.io") and "bob" not in json.dumps(rows)
    assert by_id["O3"]["email"] is None
    queried = lake.query("SELECT count(*) AS n FROM _lakestack.check_results").to_pylist()[0]["n"]
    assert queried == 1


def test_a_failed_gate_leaves_gold_unchanged_and_unrelated_models_build(lake: Lake) -> None:
    root = lake.project.root
    (root / "models" / "gold").mkdir(parents=True)
    (root / "models" / "gold" / "order_counts.sql").write_text(
        "SELECT status, count(*) AS n FROM silver.orders GROUP BY status"
    )
    (root / "models" / "gold" / "customer_list.sql").write_text("SELECT customer_id FROM silver.customers")
    first = Lake.open(root).run()
    assert first.failed_checks == [] and {b.mode for b in first.built} == {"full"}
    before = lake.warehouse.load("gold.order_counts").current_snapshot().snapshot_id
    (root / "checks").mkdir()
    (root / "checks" / "orders.yaml").write_text(
        "dataset: silver.orders\nchecks:\n  - {type: range, column: qty, max: 10}\n"
    )
    (root / "landing" / "orders" / "orders_2.csv").write_text(
        "order_id,customer_id,qty,status,email,order_ts\nO5,C1,99,paid,,2026-01-03T10:00:00Z\n"
    )
    (root / "landing" / "customers" / "customers_2.csv").write_text("customer_id,updated_at\nC3,2026-01-02T00:00:00Z\n")
    report = Lake.open(root).run()
    assert [c.check for c in report.failed_checks] == ["range(qty)"]
    assert len(lake.check_results(report.run_id)) == len(report.checks) > 1  # every evaluation is recorded
    modes = {b.dataset: b.mode for b in report.built}
    assert modes == {"gold.order_counts": "blocked upstream", "gold.customer_list": "full"}
    assert lake.warehouse.load("gold.order_counts").current_snapshot().snapshot_id == before
    assert sorted(r["customer_id"] for r in lake.read("gold.customer_list").to_pylist()) == ["C1", "C2", "C3"]
    cli = subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(root), "run"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
        timeout=120,
    )
    assert cli.returncode == 4 and "quality gate failed" in cli.stdout


def test_gold_checks_audit_before_publishing(lake: Lake) -> None:
    root = lake.project.root
    (root / "models" / "gold").mkdir(parents=True)
    (root / "models" / "gold" / "big_orders.sql").write_text("SELECT order_id, qty FROM silver.orders")
    (root / "checks").mkdir()
    (root / "checks" / "gold.yaml").write_text(
        "dataset: gold.big_orders\nchecks:\n  - {type: range, column: qty, max: 100}\n"
    )
    [ok] = Lake.open(root).build()
    assert ok.mode == "full"
    published = lake.warehouse.load("gold.big_orders").current_snapshot().snapshot_id
    (root / "checks" / "gold.yaml").write_text(
        "dataset: gold.big_orders\nchecks:\n  - {type: range, column: qty, max: 10}\n"
    )
    [blocked] = Lake.open(root).build(full_refresh=True)
    assert blocked.mode == "blocked" and blocked.snapshot_id is None
    assert lake.warehouse.load("gold.big_orders").current_snapshot().snapshot_id == published


def test_check_files_are_validated(lake: Lake) -> None:
    root = lake.project.root
    (root / "checks").mkdir()
    (root / "checks" / "bad.yaml").write_text("dataset: silver.orders\nchecks:\n  - {type: not_nul, columns: [a]}\n")
    with pytest.raises(ProjectError, match=r"checks/bad.yaml:3"):
        Lake.open(root).dataset_checks()
    (root / "checks" / "bad.yaml").write_text("dataset: silver.nope\nchecks: []\n")
    with pytest.raises(ProjectError, match=r"checks for silver\.nope, which is not a dataset"):
        Lake.open(root).dataset_checks()


def test_drop_moves_failing_rows_to_quarantine_and_goes_on(lake: Lake) -> None:
    root = lake.project.root
    (root / "checks").mkdir()
    (root / "checks" / "orders.yaml").write_text(
        "dataset: silver.orders\nchecks:\n  - {type: accepted_values, column: status, values: [paid], "
        "severity: drop}\n  - {type: range, column: qty, max: 10, severity: drop}\n"
    )
    (root / "landing" / "orders" / "orders_2.csv").write_text(
        "order_id,customer_id,qty,status,email,order_ts\nO6,C1,1,paid,,2026-01-03T10:00:00Z\n"
    )
    report = Lake.open(root).run()
    assert report.failed_checks == []
    assert {c.check: c.status for c in report.checks if c.severity == "drop"} == {
        "accepted_values(status)": "warn",
        "range(qty)": "warn",
    }
    assert sorted(r["order_id"] for r in lake.read("silver.orders").to_pylist()) == ["O1", "O2", "O4", "O6"]
    moved = [r for r in lake.read("quarantine.orders").to_pylist() if r["_errors"][0]["rule"].startswith("check:")]
    assert [(json.loads(r["_raw"])["order_id"], [e["rule"] for e in r["_errors"]]) for r in moved] == [
        ("O3", ["check:accepted_values(status)", "check:range(qty)"])
    ]  # fails both checks; moved once
    assert moved[0]["_source_file"] == "orders_1.csv" and moved[0]["_source_line"] == 4


def test_a_custom_sql_drop_check_reads_the_tables_it_names(lake: Lake) -> None:
    """A drop check's failing rows are computed in the sandbox, which registers what its SQL names."""
    root = lake.project.root
    (root / "checks").mkdir()
    (root / "checks" / "orders.yaml").write_text(
        "dataset: silver.orders\nchecks:\n  - name: known customer\n    type: custom_sql\n    severity: drop\n"
        "    sql: SELECT * FROM silver.orders WHERE customer_id NOT IN (SELECT customer_id FROM silver.customers)\n"
    )
    report = Lake.open(root).run()
    assert {c.check: (c.status, c.failing_rows) for c in report.checks if c.severity == "drop"} == {
        "known customer": ("warn", 1)
    }
    silver = {r["order_id"]: r["customer_id"] for r in lake.read("silver.orders").to_pylist()}
    assert len(silver) == 3 and all(c in ("C1", "C2", None) for c in silver.values())  # NULL is not NOT IN
    moved = [r for r in lake.read("quarantine.orders").to_pylist() if r["_reason"].startswith("dropped by check")]
    assert len(moved) == 1 and json.loads(moved[0]["_raw"])["customer_id"] not in ("C1", "C2")


def test_a_refused_custom_sql_check_records_nothing(lake: Lake) -> None:
    from lakestack.pipeline.quality import RESULTS

    before = lake.warehouse.exists(RESULTS) and lake.table_info(RESULTS).rows
    with pytest.raises(ProjectError, match=r"check custom_sql on silver.orders reads outside the lake: read_csv"):
        evaluate(
            lake,
            {"type": "not_null", "columns": ["order_id"]},
            {"type": "custom_sql", "sql": "SELECT * FROM read_csv('/etc/passwd')"},
        )
    assert (lake.warehouse.exists(RESULTS) and lake.table_info(RESULTS).rows) == before


def test_a_check_over_its_time_limit_is_an_error_that_blocks(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    import lakestack.engine.base as base

    monkeypatch.setattr(base, "CHECK_LIMITS", base.SqlLimits(timeout_s=1.0))
    slow = "SELECT o.* FROM silver.orders o, range(1000000000000) r WHERE r.range < 0"
    result = evaluate(lake, {"type": "custom_sql", "sql": slow})["custom_sql"]
    assert result.status == "error" and result.blocks
    assert result.message == "check custom_sql on silver.orders ran longer than 1 s and was stopped"

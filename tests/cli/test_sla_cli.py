"""`lakestack sla` as a user runs it: the Northwind example's SLAs right after a run, exit codes,
JSON, history, and slas.yaml mistakes named by file, line and key (exit 2)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lake_support import cli

SLAS = """\
evaluate_every: 5m
slas:
  orders_fresh:
    kind: freshness
    dataset: bronze.orders
    max_age: 15m
  orders_in_time:
    kind: deadline
    dataset: bronze.orders
    by: "03:00"
"""


@pytest.fixture(scope="module")
def northwind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make run` does: the example, one run."""
    root = tmp_path_factory.mktemp("sla") / "nw"
    assert cli(Path("."), "example", "northwind", str(root), "--orders", "2000").returncode == 0
    ran = cli(root, "run")
    assert ran.returncode == 0, ran.stderr
    return root


def test_the_northwind_slas_are_met_right_after_a_run(northwind: Path) -> None:
    shown = cli(northwind, "sla")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for name in ("silver_orders_fresh", "daily_metrics_by_3am", "orders_complete", "runs_succeed"):
        assert name in shown.stdout
    assert "breach" not in shown.stdout and "unknown" not in shown.stdout
    found = json.loads(cli(northwind, "sla", "--json").stdout)
    assert {r["status"] for r in found} == {"ok"}
    fresh = next(r for r in found if r["name"] == "silver_orders_fresh")
    assert fresh["dataset"] == "silver.orders" and 0 < fresh["time_left_s"] <= 3600
    assert fresh["budget_7d"] == 0 and fresh["objective"] == 0.99
    complete = next(r for r in found if r["name"] == "orders_complete")
    assert complete["observed"].startswith("14/14 days")
    one = json.loads(cli(northwind, "sla", "runs_succeed", "--json").stdout)
    assert [r["name"] for r in one] == ["runs_succeed"]

    history = json.loads(cli(northwind, "sla", "history", "silver_orders_fresh", "--json").stdout)
    assert [r["status"] for r in history] == ["ok", "ok"]  # the table, then the JSON evaluation
    assert "silver_orders_fresh" in cli(northwind, "sla", "history", "silver_orders_fresh").stdout


def test_a_breach_exits_4_and_an_unknown_name_exits_2(project: Path) -> None:
    (project / "landing" / "orders" / "orders_20260101.csv").write_text(
        "order_id,qty,price,currency,order_ts,email\nORD-0001,1,1.00,USD,2026-01-01T08:00:00+00:00,a@b.co\n"
    )
    assert cli(project, "sla").returncode == 0  # no slas.yaml: nothing promised, nothing breached
    (project / "slas.yaml").write_text(SLAS.replace("max_age: 15m", "max_age: 15m\n    column: order_ts"))
    assert cli(project, "ingest").returncode == 0
    breached = cli(project, "sla")
    assert breached.returncode == 4, breached.stdout + breached.stderr
    assert re.search(r"orders_fresh .* breach", breached.stdout)
    wrong = cli(project, "sla", "nope")
    assert wrong.returncode == 2 and "no SLA named nope" in wrong.stderr


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (("max_age: 15m", "max_age: 15 minutes"), "slas.yaml:6 (slas.orders_fresh.max_age)", "is not a duration"),
        (("max_age: 15m", "max_age: 0m"), "slas.yaml:6 (slas.orders_fresh.max_age)", "is not a duration"),
        (
            ("bronze.orders\n    max_age", "silver.nope\n    max_age"),
            "slas.yaml:5 (slas.orders_fresh.dataset)",
            "unknown dataset 'silver.nope'",
        ),
        (
            ("max_age: 15m", "max_age: 15m\n    colour: red"),
            "slas.yaml:7 (slas.orders_fresh.colour)",
            "unknown key 'colour' (expected one of: description",
        ),
        (("evaluate_every: 5m", "evaluate_every: 5m\nalerts: {}"), "slas.yaml:2 (alerts)", "unknown key 'alerts'"),
        (("kind: deadline", "kind: deadlines"), "slas.yaml:8 (slas.orders_in_time.kind)", "unknown kind 'deadlines'"),
        (('by: "03:00"', 'by: "25:00"'), "slas.yaml:10 (slas.orders_in_time.by)", "not a time of day"),
        (("evaluate_every: 5m", "evaluate_every: often"), "slas.yaml:1 (evaluate_every)", "is not a duration"),
    ],
)
def test_a_malformed_slas_yaml_names_file_line_and_key(
    project: Path, change: tuple[str, str], where: str, message: str
) -> None:
    (project / "slas.yaml").write_text(SLAS.replace(*change))
    result = cli(project, "sla")
    assert result.returncode == 2, result.stdout + result.stderr
    assert where in result.stderr and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    as_json = cli(project, "sla", "--json")
    assert as_json.returncode == 2 and where in json.loads(as_json.stdout or as_json.stderr)["message"]


def test_availability_names_a_known_job(project: Path) -> None:
    (project / "slas.yaml").write_text(
        "slas:\n  a:\n    kind: availability\n    job: build.nope\n    min_success: 99%\n"
    )
    result = cli(project, "sla")
    assert result.returncode == 2 and "slas.yaml:4 (slas.a.job)" in result.stderr and "unknown job" in result.stderr
    (project / "slas.yaml").write_text(
        "slas:\n  a:\n    kind: availability\n    job: ingest.orders\n    min_success: 99%\n"
    )
    assert cli(project, "sla").returncode == 0


def test_the_example_slas_yaml_is_packaged_with_the_example(tmp_path: Path) -> None:
    from lakestack.pipeline.scaffold import copy_example

    copy_example("northwind", tmp_path / "nw")
    assert (tmp_path / "nw" / "slas.yaml").read_text() == (
        Path(__file__).resolve().parents[2] / "examples" / "northwind" / "slas.yaml"
    ).read_text()
    shutil.rmtree(tmp_path / "nw")


def test_lakestack_serve_refuses_a_malformed_slas_yaml(project: Path) -> None:
    from serve_support import free_port

    (project / "slas.yaml").write_text(SLAS.replace("evaluate_every: 5m", "evaluate_every: 0s"))
    result = cli(project, "serve", "--port", str(free_port()), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "slas.yaml:1 (evaluate_every)" in result.stderr and "is not a duration" in result.stderr

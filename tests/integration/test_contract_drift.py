"""A contract version edited in place (its type changed, a column added) no longer matches the
tables that follow it: ingest, promote and backfill refuse with the file and what differs (exit 2),
instead of an engine error later. Edits the tables still hold (a regex, a column made nullable)
go through."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_support import cli, small_northwind

pytestmark = pytest.mark.integration

QUANTITY = "{name: quantity, type: integer, nullable: false, min: 1, max: 1000}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root: Path = small_northwind(tmp_path / "nw", orders=200, days=2)
    assert cli(root, "ingest", "orders").returncode == 0
    assert cli(root, "promote", "orders").returncode == 0
    return root


def _edit(project: Path, old: str, new: str) -> None:
    path = project / "contracts" / "orders.v1.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("new", "said"),
    [
        ("{name: quantity, type: string, nullable: false}", "'quantity' is long in the table and string"),
        (QUANTITY + "\n  - {name: coupon, type: string}", "coupon: add"),
    ],
)
def test_a_version_edited_in_place_is_refused_with_what_differs(project: Path, new: str, said: str) -> None:
    _edit(project, QUANTITY, new)
    for args in (("ingest", "orders"), ("promote", "orders"), ("backfill", "orders", "--all")):
        out = cli(project, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "contracts/orders.v1.yaml" in out.stderr and "no longer matches it" in out.stderr, out.stderr
        assert said in out.stderr and "put the change in orders.v2" in out.stderr
        assert "internal error" not in out.stderr and "Traceback" not in out.stderr


def test_edits_the_tables_still_hold_go_through(project: Path) -> None:
    _edit(project, QUANTITY, "{name: quantity, type: integer, nullable: true, min: 1, max: 2000}")
    for args in (("ingest", "orders"), ("promote", "orders"), ("backfill", "orders", "--all")):
        out = cli(project, *args)
        assert out.returncode == 0, (args, out.stderr)

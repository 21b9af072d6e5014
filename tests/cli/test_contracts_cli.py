"""`lakestack contracts check` and `contracts diff` on a real Northwind project with a second
version of its orders contract: tables, JSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lake_support import cli, small_northwind


def write_version(root: Path, version: int, *edits: tuple[str, str], extra: str = "") -> Path:
    """orders.v<version>.yaml: v1's text with `edits` (old, new) applied and `extra` column lines added."""
    text = (root / "contracts" / "orders.v1.yaml").read_text(encoding="utf-8")
    text = text.replace("version: 1", f"version: {version}")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = root / "contracts" / f"orders.v{version}.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


WIDEN = ('{name: unit_price, type: "decimal(12,2)"', '{name: unit_price, type: "decimal(14,2)"')
COUPON = "  - {name: coupon, type: string, max_length: 20}\n"
DROP_RETURNED = ("cancelled, returned]", "cancelled]")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_northwind(tmp_path_factory.mktemp("contracts") / "nw", orders=50, days=1)


def test_check_passes_a_compatible_version_and_lists_its_changes(root: Path) -> None:
    path = write_version(root, 2, WIDEN, extra=COUPON)
    try:
        result = cli(root, "contracts", "check", "--json")
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        assert found["compatible"] is True
        [comparison] = found["sources"]["orders"]["comparisons"]
        assert (comparison["from"], comparison["to"], comparison["mode"]) == (1, 2, "backward")
        kinds = {(c["path"], c["kind"], c["breaking"]) for c in comparison["changes"]}
        assert kinds == {("unit_price", "type_widened", False), ("coupon", "field_added", False)}
        assert found["sources"]["customers"]["comparisons"] == []  # one version: nothing to compare
        table = cli(root, "contracts", "check", "orders")
        assert table.returncode == 0
        assert "orders v1 → v2 (backward): compatible, 2 change(s)" in table.stdout
        assert "type_widened" in table.stdout and "decimal(14,2)" in table.stdout
    finally:
        path.unlink()


def test_check_refuses_an_incompatible_version_with_exit_4(root: Path) -> None:
    path = write_version(root, 2, DROP_RETURNED, ("key: [order_id, order_line]", "key: [order_id]"))
    try:
        result = cli(root, "contracts", "check", "--json")
        assert result.returncode == 4, result.stderr
        [comparison] = json.loads(result.stdout)["sources"]["orders"]["comparisons"]
        breaking = {(c["path"], c["kind"]) for c in comparison["changes"] if c["breaking"]}
        assert breaking == {("status", "enum_values_removed"), ("(contract)", "key_changed")}
        table = cli(root, "contracts", "check")
        assert table.returncode == 4
        assert "INCOMPATIBLE, 2 breaking change(s)" in table.stdout
        assert "incompatible: orders" in table.stdout
        # judged under another mode, the same diff is fine or not
        assert json.loads(cli(root, "contracts", "diff", "orders", "--mode", "none", "--json").stdout)["compatible"]
    finally:
        path.unlink()


def test_check_of_an_unknown_source_names_the_sources_that_exist(root: Path) -> None:
    result = cli(root, "contracts", "check", "nope")
    assert result.returncode == 2
    assert "no contract for source 'nope' (sources with contracts: customers, fx_rates, orders, products)" in (
        result.stderr
    )


def test_diff_between_chosen_versions(root: Path) -> None:
    paths = [write_version(root, 2, WIDEN), write_version(root, 3, WIDEN, DROP_RETURNED, extra=COUPON)]
    try:
        newest = json.loads(cli(root, "contracts", "diff", "orders", "--json").stdout)
        assert (newest["from"], newest["to"]) == (2, 3)
        assert {c["kind"] for c in newest["changes"]} == {"enum_values_removed", "field_added"}
        whole = json.loads(cli(root, "contracts", "diff", "orders", "--from", "1", "--json").stdout)
        assert (whole["from"], whole["to"], whole["compatible"]) == (1, 3, False)
        assert {c["kind"] for c in whole["changes"]} == {"type_widened", "enum_values_removed", "field_added"}
        first = cli(root, "contracts", "diff", "orders", "--to", "2")
        assert first.returncode == 0 and "v1 → v2" in first.stdout and "compatible, 1 change(s)" in first.stdout
        missing = cli(root, "contracts", "diff", "orders", "--from", "7")
        assert missing.returncode == 2 and "orders: no version v7 to compare (versions: v1, v2, v3)" in missing.stderr
        only = cli(root, "contracts", "diff", "customers")
        assert (
            only.returncode == 2 and "customers: no version before v1 to compare it with (versions: v1)" in only.stderr
        )
    finally:
        for path in paths:
            path.unlink()

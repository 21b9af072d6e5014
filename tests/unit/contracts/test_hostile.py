"""Hostile contracts: deep nesting and huge enums are refused at load with where and why (exit 2
through the CLI), never a RecursionError or minutes spent compiling a validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakestack.contracts import ContractRegistry
from lakestack.contracts.model import MAX_ENUM, MAX_NESTING
from lakestack.errors import ContractError


def _load(tmp_path: Path, name: str, text: str) -> ContractRegistry:
    folder = tmp_path / "contracts"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return ContractRegistry.load(folder, tmp_path)


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for i in range(levels):
        schema = {"type": "object", "properties": {"a": schema}} if i % 2 else {"type": "array", "items": schema}
    return schema


def test_nesting_up_to_the_limit_loads_and_deeper_is_refused_with_its_pointer(tmp_path: Path) -> None:
    ok = {"type": "object", "properties": {"deep": _nested(MAX_NESTING - 1)}}
    _load(tmp_path, "ok.v1.json", json.dumps(ok))
    deep = {"type": "object", "properties": {"deep": _nested(400)}}
    with pytest.raises(ContractError, match=f"nest deeper than {MAX_NESTING} levels") as caught:
        _load(tmp_path, "deep.v1.json", json.dumps(deep))
    assert "deep.v1.json" in str(caught.value) and "/properties/deep" in str(caught.value)


def test_a_huge_enum_is_refused_in_event_and_batch_contracts(tmp_path: Path) -> None:
    values = [f"v{i}" for i in range(MAX_ENUM + 1)]
    event = {"type": "object", "properties": {"kind": {"type": "string", "enum": values}}}
    with pytest.raises(ContractError, match=f"an enum of {MAX_ENUM + 1:,} values; at most {MAX_ENUM:,}") as caught:
        _load(tmp_path, "ev.v1.json", json.dumps(event))
    assert "/properties/kind/enum" in str(caught.value)
    batch = (
        "source: orders\nversion: 1\nfile: {pattern: 'orders_*.csv', format: csv}\ncolumns:\n"
        f"  - {{name: kind, type: string, enum: {json.dumps(values)}}}\n"
    )
    (tmp_path / "contracts" / "ev.v1.json").unlink()
    with pytest.raises(ContractError, match="at most 10,000") as caught:
        _load(tmp_path, "orders.v1.yaml", batch)
    assert "orders.v1.yaml:5" in str(caught.value)
    _load(tmp_path, "orders.v1.yaml", batch.replace(json.dumps(values), json.dumps(values[:MAX_ENUM])))

"""Planning a Bronze table's schema evolution (storage/evolution.py) from the Iceberg schema of one
contract version to the next: what Iceberg can change in place, and what is refused with reasons."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from lakestack.contracts import ContractRegistry
from lakestack.errors import ContractError, StorageError
from lakestack.storage.evolution import conform, plan_evolution, promotable
from lakestack.storage.schema import bronze_schema

V1 = {
    "source": "t",
    "version": 1,
    "key": ["id"],
    "file": {"pattern": "t_*.csv", "format": "csv"},
    "columns": [
        {"name": "id", "type": "string", "nullable": False},
        {"name": "qty", "type": "integer", "nullable": False},
        {"name": "price", "type": "decimal(10,2)"},
        {"name": "note", "type": "string"},
    ],
}


def _versions(tmp_path: Path, columns: list[dict[str, object]]) -> ContractRegistry:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "t.v1.yaml").write_text(yaml.safe_dump(V1))
    (folder / "t.v2.yaml").write_text(yaml.safe_dump({**V1, "version": 2, "columns": columns}))
    return ContractRegistry.load(folder, tmp_path)


def _plan(tmp_path: Path, columns: list[dict[str, object]]) -> list[tuple[str, str, str]]:
    registry = _versions(tmp_path, columns)
    steps = plan_evolution(bronze_schema(registry.get("t.v1")), registry.get("t.v2"))
    return [(s.action, s.column, s.detail) for s in steps]


ID, QTY, PRICE, NOTE = (dict(c) for c in V1["columns"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ([ID, QTY, PRICE, NOTE], []),
        ([ID, QTY, PRICE, NOTE, {"name": "c", "type": "string"}], [("add", "c", "string")]),
        (
            [ID, QTY, PRICE, NOTE, {"name": "c", "type": "string", "nullable": False}],
            [("add", "c", "string")],  # required in the contract, optional in the table: old rows have none
        ),
        ([ID, QTY, {**PRICE, "type": "decimal(14,2)"}, NOTE], [("widen", "price", "decimal(10, 2) → decimal(14, 2)")]),
        ([ID, QTY, {**PRICE, "type": "decimal(8,2)"}, NOTE], []),  # narrower: the table's type holds it
        ([ID, {**QTY, "nullable": True}, PRICE, NOTE], [("optional", "qty", "now optional")]),
        ([ID, PRICE, NOTE], [("optional", "qty", "no longer in the contract")]),
        ([ID, QTY, PRICE], []),  # an optional column dropped: nothing to change
        ([ID, QTY, PRICE, {**NOTE, "name": "memo", "renamed_from": "note"}], [("rename", "memo", "from note")]),
        ([ID, QTY, PRICE, {**NOTE, "nullable": False}], []),  # now required: the table stays optional
    ],
)
def test_what_iceberg_changes_in_place(
    tmp_path: Path, columns: list[dict[str, object]], expected: list[tuple[str, str, str]]
) -> None:
    assert _plan(tmp_path, columns) == expected


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([ID, {**QTY, "type": "double"}, PRICE, NOTE], "'qty' is long in the table and double in the contract"),
        ([ID, QTY, {**PRICE, "type": "decimal(10,3)"}, NOTE], "'price' is decimal(10, 2) in the table"),
        ([ID, QTY, PRICE, {**NOTE, "type": "date"}], "'note' is string in the table and date in the contract"),
    ],
)
def test_other_type_changes_are_refused_with_every_problem(
    tmp_path: Path, columns: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ContractError, match=r"t\.v2 cannot evolve the table in place") as info:
        _plan(tmp_path, columns)
    assert message in str(info.value)
    assert "contracts/t.v2.yaml" in str(info.value)


def test_iceberg_promotions() -> None:
    from pyiceberg.types import DecimalType, DoubleType, FloatType, IntegerType, LongType, StringType

    assert promotable(IntegerType(), LongType()) and promotable(FloatType(), DoubleType())
    assert promotable(DecimalType(10, 2), DecimalType(12, 2))
    assert not promotable(LongType(), DoubleType())
    assert not promotable(DecimalType(10, 2), DecimalType(12, 3))
    assert not promotable(LongType(), IntegerType()) and not promotable(StringType(), LongType())


def test_conform_orders_columns_and_fills_the_missing_with_nulls() -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.decimal128(12, 2))])
    data = pa.table({"c": pa.array([1], pa.decimal128(10, 2)), "a": [7]})
    out = conform(data, schema)
    assert out.schema == schema and out.to_pylist() == [{"a": 7, "b": None, "c": out["c"][0].as_py()}]
    with pytest.raises(StorageError, match="columns not in the table: z"):
        conform(pa.table({"a": [1], "z": [2]}), schema)

"""Contract files: what loads, what maps to Arrow/Iceberg, and what is refused with a location."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack.contracts import ContractRegistry
from lakestack.contracts.arrow import arrow_schema
from lakestack.errors import ContractError
from lakestack.storage.schema import bronze_schema


def _event(tmp_path: Path, doc: dict[str, Any], name: str = "ev.v1.json") -> ContractRegistry:
    folder = tmp_path / "contracts"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(doc))
    return ContractRegistry.load(folder, tmp_path)


BASE: dict[str, Any] = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"properties": {"id": {"oneOf": [{"type": "string"}]}}}, "each property needs one 'type'"),
        ({"properties": {"id": {"type": "string", "oneOf": []}}}, "keyword 'oneOf' is not supported"),
        ({"properties": {"id": {"type": "string", "$ref": "#/x"}}}, "keyword '$ref' is not supported"),
        ({"patternProperties": {}}, "keyword 'patternProperties' is not supported"),
        ({"properties": {"id": {"type": "string", "minimum": 1}}}, "'minimum' does not apply to type 'string'"),
        ({"properties": {"id": {"type": "string", "format": "hostname"}}}, "format 'hostname' is not supported"),
        ({"properties": {"id": {"type": ["string", "integer"]}}}, "each property needs one 'type'"),
        ({"additionalProperties": {"type": "string"}}, "additionalProperties must be true or false"),
        ({"required": ["nope"]}, "'nope' is required but not among the properties"),
        ({"x-lakestack-key": ["nope"]}, "key column 'nope' is not a column"),
        ({"x-lakestack-event-time": "id"}, "must be a timestamp or date column"),
        ({"x-lakestack-keys": ["id"]}, "unknown lakestack keyword 'x-lakestack-keys'"),
        ({"properties": {"id": {"type": "string", "x-lakestack-pii": "secretsauce"}}}, "unknown PII class"),
        ({"properties": {"id": {"type": "string", "pattern": "("}}}, "invalid regular expression"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "only JSON Schema 2020-12"),
        ({"properties": {"_id": {"type": "string"}}, "required": []}, "reserved for lakestack"),
    ],
)
def test_unsupported_or_wrong_event_contracts_fail_at_load(tmp_path: Path, patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError, match=None) as info:
        _event(tmp_path, {**BASE, **patch})
    assert message in str(info.value)
    assert "contracts/ev.v1.json" in str(info.value)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "ev.v1.json").write_text('{\n  "type": "object",\n  "properties": {,}\n}')
    with pytest.raises(ContractError, match=r"contracts/ev.v1.json:3:\d+: invalid JSON"):
        ContractRegistry.load(tmp_path / "contracts", tmp_path)


def test_nested_objects_become_structs_and_arrays_lists(tmp_path: Path) -> None:
    doc = {
        "type": "object",
        "x-lakestack-event-time": "ts",
        "required": ["ts"],
        "properties": {
            "ts": {"type": "string", "format": "date-time"},
            "amount": {"type": "number", "x-lakestack-type": "decimal(12,3)"},
            "page": {"type": "object", "properties": {"url": {"type": "string"}, "n": {"type": "integer"}}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "free": {"type": "object"},
            "email": {"type": "string", "x-lakestack-pii": "email"},
        },
    }
    contract = _event(tmp_path, doc).get("ev")
    schema = arrow_schema(contract)
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert not schema.field("ts").nullable
    assert schema.field("amount").type == pa.decimal128(12, 3)
    assert schema.field("page").type == pa.struct([("url", pa.string()), ("n", pa.int64())])
    assert schema.field("tags").type == pa.list_(pa.field("item", pa.string(), nullable=False))
    assert schema.field("free").type == pa.string()
    assert schema.field("email").metadata == {b"pii": b"email"}
    iceberg = bronze_schema(contract)
    assert str(iceberg.find_field("ts").field_type) == "timestamptz"
    assert iceberg.find_field("ts").required
    assert str(iceberg.find_field("amount").field_type) == "decimal(12, 3)"
    assert str(iceberg.find_field("page").field_type).startswith("struct<")
    assert str(iceberg.find_field("tags").field_type).startswith("list<")
    assert [f.name for f in iceberg.fields][-9:] == [
        "_raw",
        "_ingested_at",
        "_source",
        "_source_file",
        "_source_line",
        "_file_date",
        "_source_position",
        "_run_id",
        "_contract_version",
    ]


BATCH = """\
source: orders
version: 1
file: {pattern: "orders_{date:%Y%m%d}.csv", format: csv, csv: {delimiter: ";"}}
key: [order_id]
columns:
  - {name: order_id, type: string, nullable: false}
  - {name: amount, type: "decimal(10,2)"}
"""


def _batch(tmp_path: Path, text: str, name: str = "orders.v1.yaml") -> ContractRegistry:
    folder = tmp_path / "contracts"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return ContractRegistry.load(folder, tmp_path)


def test_batch_contract_loads(tmp_path: Path) -> None:
    contract = _batch(tmp_path, BATCH).get("orders")
    assert contract.kind == "batch" and contract.ref == "orders.v1"
    assert contract.file is not None and contract.file.csv.delimiter == ";"
    assert arrow_schema(contract).field("amount").type == pa.decimal128(10, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BATCH.replace("key: [order_id]", "key: [order_id]\nkeyz: 1"),
            r"orders.v1.yaml:5 \(keyz\): unknown key 'keyz'",
        ),
        (BATCH.replace('"decimal(10,2)"', "money"), r"orders.v1.yaml:7 \(columns.1.type\): .*unknown type 'money'"),
        (BATCH.replace('"decimal(10,2)"', '"decimal(40,2)"'), r"precision ≤ 38"),
        (BATCH.replace("format: csv", "format: xlsx"), r"orders.v1.yaml:3 \(file.format\)"),
        (BATCH.replace('delimiter: ";"', 'delimiter: ";;"'), r"must be exactly one character"),
        (BATCH + "  - {name: order_id, type: string}\n", r"column 'order_id' is declared twice"),
        (BATCH.replace("version: 1", "version: 2"), r"the file name says orders.v1 but the file says orders.v2"),
        (BATCH.replace("columns:", "columns: [\n"), r"orders.v1.yaml:\d+:\d+: invalid YAML"),
        (BATCH.replace("{date:%Y%m%d}", "{date:%Q}"), r"unsupported date directive"),
        (BATCH.replace("nullable: false}", "nullable: false, pii: passport}"), r"unknown PII class 'passport'"),
    ],
)
def test_batch_contract_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        _batch(tmp_path, text)


def test_file_names_versions_and_lookup(tmp_path: Path) -> None:
    registry = _batch(tmp_path, BATCH)
    _batch(tmp_path, BATCH.replace("version: 1", "version: 2"), "orders.v2.yaml")
    registry = ContractRegistry.load(tmp_path / "contracts", tmp_path)
    assert registry.get("orders").version == 2
    assert registry.get("orders.v1").version == 1
    assert registry.versions("orders") == [1, 2]
    assert not registry.has("orders.v3") and not registry.has("customers")
    (tmp_path / "contracts" / "orders.yaml").write_text(BATCH)
    with pytest.raises(ContractError, match=r"named <source>\.v<N>"):
        ContractRegistry.load(tmp_path / "contracts", tmp_path)

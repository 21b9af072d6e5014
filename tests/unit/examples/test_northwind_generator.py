"""The Northwind landing-data generator: deterministic, laid out as the contracts expect, and its
report tells the truth about every row and every deliberate defect.

The rows are checked by a small checker written here from the contract files (not by lakestack's
own validator), so a generator that drifts from its contracts fails even if the validator has a bug.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from lakestack.examples.northwind import NorthwindReport, generate_northwind

CONTRACTS = Path(__file__).resolve().parents[3] / "examples" / "northwind" / "contracts"
SOURCES = ("customers", "products", "orders", "fx_rates", "clickstream")
ORDERS = 2_000
DAYS = 14
START = date(2026, 1, 1)
# where an order can go next, and (through versions that were broken on purpose) later on
NEXT = {
    "placed": {"paid", "cancelled"},
    "paid": {"shipped", "cancelled"},
    "shipped": {"delivered"},
    "delivered": {"returned"},
}


def _reachable(status: str) -> set[str]:
    out: set[str] = set()
    todo = set(NEXT.get(status, ()))
    while todo:
        nxt = todo.pop()
        out.add(nxt)
        todo |= NEXT.get(nxt, set()) - out
    return out


# -- the contracts, read independently ------------------------------------------------------------
def _batch_contract(source: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((CONTRACTS / f"{source}.v1.yaml").read_text(encoding="utf-8"))
    return doc


def _event_contract() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CONTRACTS / "clickstream.v1.json").read_text(encoding="utf-8"))
    return doc


def _file_spec(source: str) -> dict[str, Any]:
    if source == "clickstream":
        spec: dict[str, Any] = _event_contract()["x-lakestack-file"]
        return spec
    file: dict[str, Any] = _batch_contract(source)["file"]
    return file


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """`orders_{date:%Y%m%d}.csv` -> a regex with a `date` group; `*` is a wildcard; `.gz` is accepted too."""
    out = ""
    for part in re.split(r"(\{date:[^}]*\}|\*)", pattern):
        if part == "*":
            out += ".*"
        elif part.startswith("{date:"):
            out += r"(?P<date>\d{8})"
        else:
            out += re.escape(part)
    return re.compile(out + r"(\.gz)?")


# the brief's rules, pinned here so a contract and the generator cannot drift together
EXPECTED_RULES: dict[str, dict[str, dict[str, Any]]] = {
    "orders": {
        "order_id": {"type": "string", "nullable": False, "regex": "^ORD-[0-9]{8}$"},
        "order_line": {"type": "integer", "nullable": False, "min": 1},
        "customer_id": {"type": "string", "nullable": False, "regex": "^C[0-9]{6}$"},
        "product_id": {"type": "string", "nullable": False, "regex": "^P[0-9]{5}$"},
        "quantity": {"type": "integer", "nullable": False, "min": 1, "max": 1000},
        "unit_price": {"type": "decimal(12,2)", "nullable": False, "min": 0},
        "currency": {"type": "string", "nullable": False, "enum": ["USD", "EUR", "GBP", "JPY"]},
        "status": {"enum": ["placed", "paid", "shipped", "delivered", "cancelled", "returned"]},
        "order_ts": {"type": "timestamp", "nullable": False},
        "updated_at": {"type": "timestamp", "nullable": False},
        "channel": {"enum": ["web", "mobile", "store", "partner"]},
        "ship_country": {"max_length": 2, "regex": "^[A-Z]{2}$"},
    },
    "customers": {
        "customer_id": {"nullable": False, "regex": "^C[0-9]{6}$"},
        "email": {"pii": "email", "max_length": 254},
        "phone": {"pii": "phone"},
        "country": {"regex": "^[A-Z]{2}$"},
        "segment": {"enum": ["consumer", "small_business", "enterprise"]},
        "marketing_opt_in": {"type": "boolean"},
        "created_at": {"type": "timestamp", "nullable": False},
    },
    "fx_rates": {
        "rate_date": {"type": "date", "nullable": False},
        "rate": {"type": "decimal(18,8)", "nullable": False, "min": 0},
    },
    "products": {"list_price": {"type": "decimal(12,2)", "min": 0}, "weight_kg": {"type": "double", "min": 0}},
}


@pytest.mark.parametrize("source", sorted(EXPECTED_RULES))
def test_contracts_declare_the_rules_the_generator_is_built_for(source: str) -> None:
    columns = {c["name"]: c for c in _batch_contract(source)["columns"]}
    for name, rules in EXPECTED_RULES[source].items():
        for rule, value in rules.items():
            assert columns[name].get(rule, True if rule == "nullable" else None) == value, (source, name, rule)


def test_the_event_contract_declares_the_rules_the_generator_is_built_for() -> None:
    clicks = _event_contract()
    assert clicks["x-lakestack-key"] == ["event_id"] and clicks["x-lakestack-event-time"] == "event_ts"
    assert clicks["additionalProperties"] is False
    assert set(clicks["required"]) == {"event_id", "event_ts", "session_id", "event_type", "page"}
    assert clicks["properties"]["product_ids"]["maxItems"] == 50
    assert _batch_contract("fx_rates")["file"]["csv"]["delimiter"] == ";"


# -- an independent checker of the contract rules ---------------------------------------------------
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


def _timestamp_ok(text: str, *, offset: bool) -> bool:
    if not (_RFC3339 if offset else _TIMESTAMP).match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _parse_text(kind: str, raw: str) -> Any:
    """The typed value of a CSV field, or raise ValueError."""
    if kind == "string":
        return raw
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", raw):
            raise ValueError(raw)
        return int(raw)
    if kind == "double":
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise ValueError(raw)
        return raw == "true"
    if kind == "date":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    if kind == "timestamp":
        if not _timestamp_ok(raw, offset=False):
            raise ValueError(raw)
        return raw
    if _DECIMAL.match(kind):
        if not re.fullmatch(r"-?\d+(\.\d+)?", raw):
            raise ValueError(raw)
        return Decimal(raw)
    raise AssertionError(f"unknown type {kind}")


def _decimal_fits(kind: str, value: Decimal) -> bool:
    m = _DECIMAL.match(kind)
    assert m is not None
    precision, scale = int(m.group(1)), int(m.group(2))
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    places = max(0, -exponent)
    return places <= scale and len(value.as_tuple().digits) - places <= precision - scale


def _column_ok(column: dict[str, Any], value: Any) -> bool:
    """`value` typed already (or None): does it satisfy the column's rules?"""
    if value is None:
        return bool(column.get("nullable", True))
    kind = column["type"]
    if _DECIMAL.match(kind) and not _decimal_fits(kind, value):
        return False
    if "enum" in column and value not in column["enum"]:
        return False
    if "min" in column and value < column["min"]:
        return False
    if "max" in column and value > column["max"]:
        return False
    if "regex" in column and not re.search(column["regex"], value):
        return False
    if "max_length" in column and len(value) > column["max_length"]:
        return False
    return not ("min_length" in column and len(value) < column["min_length"])


def _csv_row_ok(columns: list[dict[str, Any]], row: dict[str, str]) -> bool:
    for column in columns:
        raw = row[column["name"]]
        try:
            value = None if raw == "" else _parse_text(column["type"], raw)
        except (ValueError, InvalidOperation):
            return False
        if not _column_ok(column, value):
            return False
    return True


def _json_ok(schema: dict[str, Any], value: Any) -> bool:
    """The JSON Schema keywords the clickstream contract uses."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    checks = {
        "string": lambda v: isinstance(v, str),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "null": lambda v: v is None,
    }
    if types and not any(checks[t](value) for t in types):
        return False
    if value is None:
        return True
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, str):
        return _json_string_ok(schema, value)
    if isinstance(value, list):
        return len(value) <= schema.get("maxItems", len(value)) and all(_json_ok(schema["items"], v) for v in value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        if any(r not in value for r in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(props):
            return False
        return all(_json_ok(props[k], v) for k, v in value.items() if k in props)
    return True


def _json_string_ok(schema: dict[str, Any], value: str) -> bool:
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        return False
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return False
    fmt = schema.get("format")
    if fmt == "uuid":
        return bool(_UUID.match(value))
    if fmt == "date-time":
        return _timestamp_ok(value, offset=True)
    if fmt == "uri":
        return bool(re.match(r"^[a-z][a-z0-9+.-]*://\S+$", value))
    return True


# -- reading what was written ----------------------------------------------------------------------
def _try_json(line: str) -> Any:
    """The parsed line, or None when it is not JSON (a truncated line)."""
    try:
        return json.loads(line)
    except ValueError:
        return None


def _events(root: Path, report: NorthwindReport, path: Path | None = None) -> list[dict[str, Any]]:
    """The valid events of one clickstream file, or of all of them."""
    schema = _event_contract()
    paths = [path] if path else list(_readable(root, report, "clickstream"))
    parsed = [_try_json(line) for p in paths for line in p.read_text(encoding="utf-8").splitlines()]
    return [e for e in parsed if _json_ok(schema, e)]


def _csv_dicts(path: Path, delimiter: str) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def _readable(root: Path, report: NorthwindReport, source: str) -> Iterator[Path]:
    """The source's files that are not deliberately malformed."""
    for rel in report.files:
        path = root / rel
        if rel.startswith(f"landing/{source}/") and not _malformed(path):
            yield path


def _malformed(path: Path) -> bool:
    if path.suffix == ".gz":
        return True
    if path.name.startswith("fx_"):
        return path.read_text(encoding="utf-8").splitlines()[0].count(";") == 0
    return False


def _valid_flags(root: Path, report: NorthwindReport, source: str) -> list[bool]:
    """Per row of the source's readable files: does it satisfy the contract?"""
    if source == "clickstream":
        schema = _event_contract()
        return [
            _json_ok(schema, _try_json(line))
            for path in _readable(root, report, source)
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
    contract = _batch_contract(source)
    if source == "products":
        return [
            all(_column_ok(c, row[c["name"]]) for c in contract["columns"])
            for path in _readable(root, report, source)
            for row in pq.read_table(path).to_pylist()
        ]
    delimiter = contract["file"]["csv"]["delimiter"]
    return [
        _csv_row_ok(contract["columns"], row)
        for path in _readable(root, report, source)
        for row in _csv_dicts(path, delimiter)
    ]


def _orders(root: Path, report: NorthwindReport) -> list[tuple[str, dict[str, str]]]:
    """(file date, row) for every valid order row, in file order."""
    columns = _batch_contract("orders")["columns"]
    out = []
    for path in _readable(root, report, "orders"):
        day = path.name.split("_")[1][:8]
        out += [(day, r) for r in _csv_dicts(path, ",") if _csv_row_ok(columns, r)]
    return out


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NorthwindReport]:
    root = tmp_path_factory.mktemp("northwind")
    return root, generate_northwind(root, orders=ORDERS, seed=42, days=DAYS, start=START)


@pytest.fixture(scope="module")
def broken_gold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NorthwindReport]:
    root = tmp_path_factory.mktemp("northwind_break_gold")
    return root, generate_northwind(root, orders=ORDERS, seed=42, days=DAYS, start=START, break_gold=True)


# -- tests -----------------------------------------------------------------------------------------
def test_same_arguments_write_identical_bytes_and_another_seed_does_not(
    tmp_path: Path, generated: tuple[Path, NorthwindReport]
) -> None:
    root, report = generated
    again = generate_northwind(tmp_path / "again", orders=ORDERS, seed=42, days=DAYS, start=START)
    other = generate_northwind(tmp_path / "other", orders=ORDERS, seed=43, days=DAYS, start=START)
    assert _digest(tmp_path / "again") == _digest(root)
    assert again == report
    assert set(_digest(tmp_path / "other")) == set(_digest(root))  # the same files ...
    assert all(_digest(tmp_path / "other")[f] != h for f, h in _digest(root).items())  # ... not the same bytes
    assert other != report


def test_the_report_is_frozen_and_lists_exactly_the_files_on_disk(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    with pytest.raises(FrozenInstanceError):
        report.customers = 0  # type: ignore[misc]
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert sorted(report.files) == on_disk
    assert len(set(report.files)) == len(report.files)
    assert not (root / "lakestack.yaml").exists() and not (root / "contracts").exists()
    assert set(report.rows) == set(report.defects) == set(report.problems) == set(SOURCES)
    kinds = {"invalid_rows", "duplicate_rows", "late_rows", "orphan_rows", "malformed_files", "malformed_rows"}
    assert all(set(d) == kinds for d in report.defects.values())


def test_file_names_match_the_contract_patterns(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    by_source: dict[str, list[str]] = {s: [] for s in SOURCES}
    for rel in report.files:
        landing, source, name = rel.split("/")
        assert landing == "landing"
        match = _pattern_regex(_file_spec(source)["pattern"]).fullmatch(name)
        assert match is not None, rel
        datetime.strptime(match.group("date"), "%Y%m%d")
        by_source[source].append(name)
    dates = [(START + timedelta(days=d)).strftime("%Y%m%d") for d in range(DAYS)]
    assert by_source["orders"] == [f"orders_{d}.csv" for d in dates] + [
        f"orders_{(START + timedelta(days=DAYS)):%Y%m%d}.csv.gz"
    ]
    assert by_source["fx_rates"] == [f"fx_{d}.csv" for d in dates]
    assert by_source["customers"] == [f"crm_contacts_{d}.csv" for d in dates[::7]]
    assert by_source["products"] == [f"catalog_{dates[0]}.parquet", f"catalog_{dates[DAYS // 2]}.parquet"]
    clicks = Counter(name[7:15] for name in by_source["clickstream"])
    assert set(clicks) == set(dates) and set(clicks.values()) == {1, 2}  # one file at weekends, else two
    assert {p.name for p in (root / "landing" / "clickstream").iterdir()} >= {f"clicks_{dates[0]}_01.ndjson"}


def test_row_counts_equal_the_report(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    for source in SOURCES:
        assert len(_valid_flags(root, report, source)) == report.rows[source], source
    assert report.rows["fx_rates"] == 12 * (DAYS - 1)  # every ordered pair of 4 currencies; one file malformed
    assert report.rows["products"] == 2 * report.products
    assert report.customers == max(200, ORDERS // 20)
    first_crm = _csv_dicts(root / "landing/customers/crm_contacts_20260101.csv", ",")
    assert len(first_crm) == report.customers  # a full snapshot, then weekly deltas


@pytest.mark.parametrize("source", SOURCES)
def test_exactly_the_reported_rows_break_the_contract(generated: tuple[Path, NorthwindReport], source: str) -> None:
    root, report = generated
    flags = _valid_flags(root, report, source)
    assert flags.count(False) == report.defects[source]["invalid_rows"], source
    problems = sum(report.problems[source].values())
    assert report.defects[source]["invalid_rows"] <= problems <= 2 * report.defects[source]["invalid_rows"]


@pytest.mark.parametrize(("source", "low", "high"), [("orders", 0.008, 0.012), ("clickstream", 0.008, 0.012)])
def test_about_one_percent_of_rows_are_invalid(
    generated: tuple[Path, NorthwindReport], source: str, low: float, high: float
) -> None:
    _, report = generated
    assert low <= report.defects[source]["invalid_rows"] / report.rows[source] <= high


def test_invalid_rows_cover_every_kind_of_problem_and_some_have_two(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    assert set(report.problems["orders"]) == {
        "bad_currency",
        "bad_order_id",
        "bad_quantity",
        "bad_status",
        "bad_timestamp",
        "long_country",
        "missing_customer_id",
        "missing_product_id",
        "negative_price",
    }
    assert set(report.problems["clickstream"]) == {
        "bad_event_type",
        "missing_session_id",
        "too_many_product_ids",
        "truncated_json",
        "ts_as_number",
        "unknown_field",
    }
    assert 0 < report.defects["customers"]["invalid_rows"] <= 0.03 * report.rows["customers"]
    assert sum(report.problems["orders"].values()) > report.defects["orders"]["invalid_rows"]  # some carry two
    text = "".join(p.read_text(encoding="utf-8") for p in _readable(root, report, "orders"))
    for defect in ("ORD-12AB", "2026-13-45T99:00:00", ",two,", ",XXX,", ",lost,", ",GBR"):
        assert defect in text, defect
    assert re.search(r",-\d+\.\d\d,", text)
    assert report.defects["products"]["invalid_rows"] == report.defects["fx_rates"]["invalid_rows"] == 0


def test_the_truncated_gzip_resend_does_not_decompress(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    [gz] = [root / f for f in report.files if f.endswith(".gz")]
    data = gz.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    with pytest.raises((EOFError, gzip.BadGzipFile, zlib.error)):
        gzip.decompress(data)
    partial = zlib.decompressobj(wbits=31).decompress(data)  # what is there is a real orders file, cut off
    assert partial.startswith(b"order_id,order_line,customer_id,")
    assert report.defects["orders"]["malformed_files"] == 1
    assert report.defects["orders"]["malformed_rows"] > partial.count(b"\n") - 1


def test_one_fx_file_is_delimited_by_commas(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    headers = {f: (root / f).read_text(encoding="utf-8").splitlines()[0] for f in report.files if "/fx_rates/" in f}
    wrong = [f for f, h in headers.items() if h == "rate_date,base_currency,quote_currency,rate,published_at"]
    assert len(wrong) == 1
    assert all(
        h == "rate_date;base_currency;quote_currency;rate;published_at" for f, h in headers.items() if f != wrong[0]
    )
    assert report.defects["fx_rates"]["malformed_files"] == 1
    assert report.defects["fx_rates"]["malformed_rows"] == 12


def test_order_redeliveries_move_the_status_forward_with_a_newer_updated_at(
    generated: tuple[Path, NorthwindReport],
) -> None:
    root, report = generated
    versions: dict[tuple[str, str], list[dict[str, str]]] = {}
    for _, row in _orders(root, report):
        versions.setdefault((row["order_id"], row["order_line"]), []).append(row)
    moved = 0
    for rows in versions.values():
        distinct = list({tuple(r.values()): r for r in rows}.values())  # exact re-sends collapse
        for before, after in itertools.pairwise(distinct):
            assert after["updated_at"] > before["updated_at"]
            assert after["status"] in _reachable(before["status"]), (before, after)
            assert {k: v for k, v in after.items() if k not in ("status", "updated_at")} == {
                k: v for k, v in before.items() if k not in ("status", "updated_at")
            }
            moved += 1
    assert moved > 0
    valid = sum(len(rows) for rows in versions.values())
    duplicates = valid - len(versions)
    invalid = report.defects["orders"]["invalid_rows"]
    assert (
        report.defects["orders"]["duplicate_rows"] - invalid <= duplicates <= report.defects["orders"]["duplicate_rows"]
    )


def test_exact_duplicate_lines_are_sent_within_a_file(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    for path in _readable(root, report, "orders"):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert any(n > 1 for n in Counter(lines).values()), path.name


def test_late_rows_arrive_two_to_five_days_after_their_order(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    late: set[tuple[str, str]] = set()
    for day, row in _orders(root, report):
        if row["updated_at"] != row["order_ts"]:
            continue  # a status change, not the first delivery
        lag = (datetime.strptime(day, "%Y%m%d").date() - date.fromisoformat(row["order_ts"][:10])).days
        assert lag == 0 or 2 <= lag <= 5, row
        if lag:
            late.add((row["order_id"], row["order_line"]))
    expected, invalid = report.defects["orders"]["late_rows"], report.defects["orders"]["invalid_rows"]
    assert expected > 0
    assert expected - invalid <= len(late) <= expected


def test_orphan_orders_name_well_formed_customers_the_crm_does_not_know(
    generated: tuple[Path, NorthwindReport],
) -> None:
    root, report = generated
    columns = _batch_contract("customers")["columns"]
    known = {
        r["customer_id"]
        for path in _readable(root, report, "customers")
        for r in _csv_dicts(path, ",")
        if _csv_row_ok(columns, r)
    }
    orphans = {(r["order_id"], r["order_line"]) for _, r in _orders(root, report) if r["customer_id"] not in known}
    orphan_ids = {r["customer_id"] for _, r in _orders(root, report) if r["customer_id"] not in known}
    assert all(re.fullmatch(r"C9[0-9]{5}", c) for c in orphan_ids)
    expected, invalid = report.defects["orders"]["orphan_rows"], report.defects["orders"]["invalid_rows"]
    assert expected > 0
    assert expected - invalid <= len(orphans) <= expected
    order_ids = {r["order_id"] for _, r in _orders(root, report)}
    assert 0.001 < len({o for o, _ in orphans}) / len(order_ids) < 0.02  # about 0.5% of orders


def test_customers_carry_pii_quoted_fields_and_weekly_changes(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    snapshot, delta = (root / f for f in report.files if "/customers/" in f)
    raw = snapshot.read_text(encoding="utf-8")
    assert '"' in raw  # quoted fields: commas and quotes inside names
    rows = _csv_dicts(snapshot, ",")
    assert all(len(r) == 10 and None not in r for r in rows)
    assert any("," in r["last_name"] or '"' in r["first_name"] for r in rows)
    assert sum("@" in r["email"] for r in rows) >= len(rows) - report.defects["customers"]["invalid_rows"]
    before = {r["customer_id"]: r for r in rows}
    changed = [r for r in _csv_dicts(delta, ",") if r["customer_id"] in before]
    assert changed
    columns = _batch_contract("customers")["columns"]
    for row in changed:
        old = before[row["customer_id"]]
        if _csv_row_ok(columns, row) and _csv_row_ok(columns, old):
            assert row["updated_at"] > old["updated_at"]
            assert row["created_at"] == old["created_at"]


def test_products_are_parquet_typed_as_the_contract_says(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    first, second = (pq.read_table(p) for p in _readable(root, report, "products"))
    assert first.schema.field("list_price").type == pa.decimal128(12, 2)
    assert first.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert first.schema.field("weight_kg").type == pa.float64()
    assert first.schema.field("active").type == pa.bool_()
    assert first.num_rows == second.num_rows == report.products
    a, b = first.to_pylist(), second.to_pylist()
    assert any(x["list_price"] != y["list_price"] for x, y in zip(a, b, strict=True))  # price changes
    assert all(x["active"] for x in a) and not all(y["active"] for y in b)  # some products retired
    assert len({x["category"] for x in a}) == 8


def test_fx_files_hold_every_ordered_pair_with_eight_decimals(generated: tuple[Path, NorthwindReport]) -> None:
    root, report = generated
    for path in _readable(root, report, "fx_rates"):
        rows = _csv_dicts(path, ";")
        assert {(r["base_currency"], r["quote_currency"]) for r in rows} == {
            (b, q) for b in ("USD", "EUR", "GBP", "JPY") for q in ("USD", "EUR", "GBP", "JPY") if b != q
        }
        assert all(re.fullmatch(r"\d+\.\d{8}", r["rate"]) for r in rows)
        rate = {(r["base_currency"], r["quote_currency"]): Decimal(r["rate"]) for r in rows}
        assert abs(rate["USD", "EUR"] * rate["EUR", "USD"] - 1) < Decimal("0.0001")
        assert {r["rate_date"] for r in rows} == {f"{path.name[3:7]}-{path.name[7:9]}-{path.name[9:11]}"}


def test_clickstream_is_nested_ndjson_with_about_three_events_per_order(
    generated: tuple[Path, NorthwindReport],
) -> None:
    root, report = generated
    events = _events(root, report)
    assert all(e["event_ts"].endswith("Z") for e in events)
    assert all(set(e["page"]) == {"url", "referrer"} for e in events)
    assert {e["event_type"] for e in events} == {"page_view", "product_view", "add_to_cart", "checkout", "purchase"}
    assert any(e["customer_id"] is None for e in events) and any(e["customer_id"] for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    orders = len({r["order_id"] for _, r in _orders(root, report)})
    assert 2.5 <= report.rows["clickstream"] / orders <= 3.6
    for path in _readable(root, report, "clickstream"):
        stamps = [e["event_ts"] for e in _events(root, report, path)]
        assert stamps == sorted(stamps)
        assert {s[:10] for s in stamps} == {f"{path.name[7:11]}-{path.name[11:13]}-{path.name[13:15]}"}


def test_break_gold_makes_the_last_day_eur_at_zero_and_keeps_it_valid(
    generated: tuple[Path, NorthwindReport], broken_gold: tuple[Path, NorthwindReport]
) -> None:
    root, report = broken_gold
    last = f"{START + timedelta(days=DAYS - 1):%Y%m%d}"
    rows = _orders(root, report)
    last_day = [r for day, r in rows if day == last]
    assert last_day and all(r["currency"] == "EUR" and r["unit_price"] == "0.00" for r in last_day)
    assert all(Decimal(r["unit_price"]) > 0 for day, r in rows if day != last)
    for source in SOURCES:  # still exactly the reported invalid rows (a "-0.00" price would be valid)
        assert _valid_flags(root, report, source).count(False) == report.defects[source]["invalid_rows"]
    normal_root, normal = generated
    assert report.rows == normal.rows
    assert _digest(root / "landing" / "clickstream") == _digest(normal_root / "landing" / "clickstream")


def test_a_one_day_request_still_writes_two_days(tmp_path: Path) -> None:
    report = generate_northwind(tmp_path / "tiny", orders=50, days=1)
    assert report.customers == 200 and report.products == 50
    assert report.rows["orders"] >= 50
    gz = [f for f in report.files if f.endswith(".gz")]
    assert gz == ["landing/orders/orders_20260103.csv.gz"]  # a one-day request still writes two days
    with io.BytesIO((tmp_path / "tiny" / gz[0]).read_bytes()) as raw, pytest.raises(EOFError):
        gzip.GzipFile(fileobj=raw).read()


def test_every_kind_of_defect_breaks_any_valid_row_alone_and_in_pairs(
    generated: tuple[Path, NorthwindReport], tmp_path: Path
) -> None:
    """Not left to chance: e.g. a negative price on a `--break-gold` 0.00 row must not be "-0.00"."""
    import random

    from lakestack.examples import northwind as nw

    root, report = generated
    gold = dict(_orders(root, report)[0][1], currency="EUR", unit_price="0.00", ship_country="")
    rows = {
        "orders": [r for _, r in _orders(root, report)[:200]] + [gold],
        "customers": [r for r in _csv_dicts(root / "landing/customers/crm_contacts_20260101.csv", ",")][:200],
    }
    for source, defects in (("orders", nw._ORDER_DEFECTS), ("customers", nw._CUSTOMER_DEFECTS)):
        columns = _batch_contract(source)["columns"]
        valid = [r for r in rows[source] if _csv_row_ok(columns, r)]
        assert len(valid) > 100
        for kinds in [(k,) for k in defects] + list(itertools.combinations(defects, 2)):
            for row in valid:
                broken = dict(row)
                for kind in kinds:
                    column, spoil = defects[kind]
                    broken[column] = spoil(row[column] or None) or ""
                assert not _csv_row_ok(columns, broken), (source, kinds, broken)
    out, rnd, schema = nw._Out(tmp_path), random.Random(0), _event_contract()
    for event in _events(root, report)[:300]:
        assert not _json_ok(schema, _try_json(nw._click_line(rnd, out, event, broken=True)))
    assert set(out.problems["clickstream"]) == set(nw._CLICK_DEFECTS)

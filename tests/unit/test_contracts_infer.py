"""contracts/infer.py on plain values: types, null markers, enums with defects, shapes, patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.contracts.infer import file_pattern, infer_column
from lakestack.pipeline.drafting import check_draft, infer_contract


def test_an_integer_column_with_na_markers_reads_them_as_missing() -> None:
    values = [str(i) for i in range(300)] + ["NA"] * 30 + ["NULL"] * 5 + [""] * 5
    column, markers = infer_column("qty", values)
    assert column.type == "integer" and column.nullable and markers == {"NA", "NULL"}
    assert any("'NA', 'NULL'" in n and "null_values" in n for n in column.notes)


def test_a_string_column_keeps_na_as_text_and_says_so() -> None:
    values = [f"name {i}" for i in range(200)] + ["NA"] * 3
    column, markers = infer_column("label", values)
    assert column.type == "string" and markers == set()
    assert any("'NA' appears 3 times: kept as text" in n for n in column.notes)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "22", "-3"], "integer"),
        (["007", "012", "123"], "string"),  # leading zeros: an identifier
        (["12.50", "3.99", "100.00"], "decimal(12,2)"),
        (["0.91849488", "148.50000000"], "decimal(18,8)"),
        (["1e3", "2.5", "0.125", "3.14159"], "double"),
        (["true", "false", "TRUE"], "boolean"),
        (["0", "1", "1"], "integer"),  # only 0 and 1: a number, not a flag
        (["2026-01-01", "2026-02-28"], "date"),
        (["2026-01-01T10:00:00Z", "2026-01-01 10:00:00"], "timestamp"),
        (["hello", "world"], "string"),
    ],
)
def test_types(values: list[str], expected: str) -> None:
    assert infer_column("c", values * 10)[0].type == expected


def test_a_rare_value_is_a_defect_not_an_enum_member() -> None:
    values = ["EUR"] * 500 + ["USD"] * 300 + ["JPY"] * 60 + ["XXX"] * 2
    column, _ = infer_column("currency", values)
    assert column.enum == ("EUR", "JPY", "USD")
    assert any("2 of 862" in n and "'XXX'" in n for n in column.notes)


def test_ids_get_their_shape_and_timestamps_their_zone() -> None:
    ids = [f"ORD-{i:08d}" for i in range(1000)] + ["ORD-12AB"]
    column, _ = infer_column("order_id", ids)
    assert column.regex == "^ORD-[0-9]{8}$" and not column.nullable
    naive, _ = infer_column("ts", ["2026-01-01 10:00:00"] * 20)
    assert any("without a zone" in n for n in naive.notes)


@pytest.mark.parametrize(
    ("names", "pattern"),
    [
        (["orders_20260101.csv", "orders_20260102.csv", "orders_20260103.csv.gz"], "orders_{date:%Y%m%d}.csv"),
        (["clicks_20260101_01.ndjson", "clicks_20260101_02.ndjson"], "clicks_{date:%Y%m%d}*.ndjson"),
        (["sales-2026-01-01.parquet", "sales-2026-01-02.parquet"], "sales-{date:%Y-%m-%d}.parquet"),
        (["dump_a.csv", "dump_b.csv"], "dump_*.csv"),
        (["only.csv"], "only.csv"),
    ],
)
def test_file_patterns(names: list[str], pattern: str) -> None:
    assert file_pattern(names)[0] == pattern


def test_a_csv_with_na_drafts_a_contract_lakestack_loads(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'NA' if i % 10 == 0 else i * 2},2026-01-{1 + i % 28:02d}\n" for i in range(100))
    (tmp_path / "visits_20260101.csv").write_text("visit_id,pages,day\n" + rows)
    draft = infer_contract(tmp_path / "visits_20260101.csv")
    check_draft(draft, draft.file_name)  # raises if lakestack cannot load what it drafted
    assert draft.source == "visits" and draft.null_values == ("NA",)
    assert [c.type for c in draft.columns] == ["integer", "integer", "date"]
    assert draft.key == ("visit_id",) and draft.event_time == "day"


def test_a_sample_reads_whole_lines_from_the_start_of_a_big_file(tmp_path: Path) -> None:
    from lakestack.ingest import sampling

    line = "".join(f"{i},{'x' * 90}\n" for i in range(120_000))  # ~11 MB, over the per-file cap
    (tmp_path / "big_20260101.csv").write_text("id,text\n" + line)
    draft = infer_contract(tmp_path, "big", limit=10**9)
    assert 0 < draft.rows_sampled < 120_000
    assert draft.rows_sampled * 92 <= sampling.MAX_BYTES and not any("number of fields" in n for n in draft.guessed)
    assert infer_contract(tmp_path, "big", limit=500).rows_sampled == 500

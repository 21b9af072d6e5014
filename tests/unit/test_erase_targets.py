"""Erasure's row matching, without a lake: raw records (JSON, delimited lines), samples, case."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakestack.errors import UsageError
from lakestack.pipeline.erase_targets import Subject, column_match, json_match


@pytest.mark.parametrize(
    ("raw", "fields", "expected"),
    [
        ('{"customer_id": "C1", "email": "a@b.example"}', {"email"}, True),
        ('{"customer_id": "C1", "note": "a@b.example"}', {"email"}, False),  # another field: not the subject's
        ('{"contact": {"email": "a@b.example"}}', {"email"}, True),  # nested
        ('{"emails": ["a@b.example"]}', None, True),  # any field (a check sample)
        ('{"email": "xa@b.example"}', {"email"}, False),  # a substring is not the value
        ("C1,Ann,a@b.example,GB", {"email"}, True),  # a delimited line: any field
        ("C1;Ann;a@b.example;GB", {"email"}, True),
        ("C1,Ann,xa@b.example,GB", {"email"}, False),
        ("not json {", {"email"}, False),
        (None, {"email"}, False),
    ],
)
def test_a_raw_record_holds_the_value_only_in_a_field(raw: str | None, fields: set[str] | None, expected: bool) -> None:
    data = pa.table({"_raw": pa.array([raw], pa.string())})
    assert json_match("_raw", fields, {"a@b.example"})(data).to_pylist() == [expected]


def test_emails_fold_case_in_columns_and_raw_records() -> None:
    data = pa.table({"email": ["A@B.Example", "c@d.example"], "_raw": ['{"email": "A@B.EXAMPLE"}', "{}"]})
    assert column_match(["email"], "a@b.example", [], [], fold=True)(data).to_pylist() == [True, False]
    assert column_match(["email"], "a@b.example", [], [])(data).to_pylist() == [False, False]
    assert json_match("_raw", {"email"}, {"a@b.example"}, fold=True)(data).to_pylist() == [True, False]


def test_non_text_columns_compare_as_text() -> None:
    data = pa.table({"customer_id": pa.array([42, 7, None], pa.int64())})
    assert column_match(["customer_id"], "42", [], [])(data).to_pylist() == [True, False, False]


def test_subject_parses_column_and_value_and_keeps_only_a_digest() -> None:
    subject = Subject.parse("email=a=b@c.example")  # the value may hold '='
    assert (subject.column, subject.value) == ("email", "a=b@c.example")
    assert subject.digest.startswith("sha256:") and "a=b" not in subject.digest
    for bad in ("email", "=x", "email="):
        with pytest.raises(UsageError, match="COLUMN=VALUE"):
            Subject.parse(bad)

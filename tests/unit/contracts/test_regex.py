"""Contract regexes on RE2: what compiles, where it differs from Python's `re`, and that the fast path
(a column at a time) and the explaining walk agree on which records match."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from lakestack.contracts import regex
from lakestack.contracts.model import Constraints, Contract, Field
from lakestack.contracts.validate import RecordValidator


def _contract(*fields: Field) -> Contract:
    return Contract(source="t", version=1, kind="event", fields=fields)


@pytest.mark.parametrize("pattern", ["^ORD-[0-9]{4}$", "(?i)^abc", "\\p{L}+", "^(a+)+$", "(?P<year>\\d{4})", "\\z"])
def test_patterns_re2_runs(pattern: str) -> None:
    assert regex.problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        ("(a)\\1", "backreferences"),
        ("(?=a)", "lookahead"),
        ("(?<=a)b", "lookahead"),
        ("a*+", "possessive"),
        ("a\\Z", "\\z"),
        ("[", "missing ]"),
    ],
)
def test_patterns_re2_refuses_say_why(pattern: str, hint: str) -> None:
    why = regex.problem(pattern)
    assert why is not None and "RE2" in why and hint in why


def test_differences_from_python_re_are_the_documented_ones() -> None:
    # \d is ASCII only; $ does not match before a final newline (Python's re does both)
    assert regex.misses(["\u0663", "7", "abc\n", "abc"], "^\\d$") == [0, 2, 3]
    assert regex.misses(["abc\n", "abc"], "^abc$") == [0]


def test_none_is_not_checked_and_a_lone_surrogate_never_matches() -> None:
    assert regex.misses([None, "x", "\ud800x", "y"], "x") == [2, 3]


def test_fast_path_and_explanation_agree_on_patterns_and_formats() -> None:
    fields = (
        Field("id", "string", required=True, nullable=False, constraints=Constraints(pattern="^e[0-9]+$")),
        Field("kind", "string", constraints=Constraints(enum=("e1", "x"), pattern="^e")),
        Field("mail", "string", constraints=Constraints(format="email")),
        Field("tags", "list", items=Field("item", "string", constraints=Constraints(pattern="^[a-z]+$"))),
    )
    validator = RecordValidator(_contract(*fields))
    docs = [
        {"id": "e1"},
        {"id": "x1"},
        {"id": "e1", "kind": "x"},
        {"id": "e2", "mail": "a@b.c"},
        {"id": "e3", "mail": "a@" + "b" * 20000},
        {"id": "e4", "tags": ["ok", "NO"]},
        {"id": "e5", "tags": ["ok"], "kind": "e1"},
    ]
    outcome = validator.validate_json([json.dumps(d).encode() for d in docs])
    assert outcome.valid_positions == [0, 3, 6]
    rules = {i: [(x.path, x.rule) for x in issues] for i, issues in outcome.invalid}
    assert rules == {
        1: [("$.id", "pattern")],
        2: [("$.kind", "pattern")],
        4: [("$.mail", "format")],
        5: [("$.tags[1]", "pattern")],
    }


def test_pathological_pattern_on_long_values_is_linear() -> None:
    # In a child with a timeout, so a regression fails instead of hanging the test run.
    code = textwrap.dedent(
        """
        import time
        from lakestack.contracts.model import Constraints, Contract, Field
        from lakestack.contracts.validate import RecordValidator
        pats = ["^(a+)+$", "(a|aa)+$", "(.*a){20}"]
        fields = tuple(Field(f"f{i}", "string", constraints=Constraints(pattern=p)) for i, p in enumerate(pats))
        v = RecordValidator(Contract(source="t", version=1, kind="batch", fields=fields))
        rows = [["a" * n + "!", "a" * n + "!", "a" * 19 + "b" * n] for n in (40, 1000, 100000)]
        t = time.perf_counter()
        out = v.validate_rows(rows)
        print(len(out.valid), len(out.invalid), time.perf_counter() - t)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    valid, invalid, seconds = proc.stdout.split()
    assert (int(valid), int(invalid)) == (0, 3)
    assert float(seconds) < 10


def test_file_name_patterns_are_linear_on_hostile_names() -> None:
    # Landing file names come from whoever drops files: `*_*_*_*_*.csv` against 200 underscores ran
    # past 60 s on Python's re. In a child with a timeout, so a regression fails instead of hanging.
    code = textwrap.dedent(
        """
        import time
        from lakestack.contracts.patterns import FilePattern
        pattern = FilePattern("*_*_*_*_*_*_*_*.csv")
        names = ["_" * 240 + "x", "_" * 240 + ".csv", "a_b_c_d_e_f_g_h.csv.gz"]
        t = time.perf_counter()
        found = pattern.match_all(names)
        print([m.compression if m else "-" for m in found], time.perf_counter() - t)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    found, seconds = proc.stdout.rsplit(" ", 1)
    assert found == "['-', None, '.gz']"
    assert float(seconds) < 5


def test_file_names_not_valid_utf8_match_no_pattern() -> None:
    from lakestack.contracts.patterns import FilePattern

    pattern = FilePattern("orders_*.csv")
    assert [m is not None for m in pattern.match_all(["orders_\udcff.csv", "orders_1.csv"])] == [False, True]
    assert pattern.match("orders_\udcff.csv") is None

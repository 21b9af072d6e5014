"""Check regexes are held to RE2, the engine DuckDB runs them on, when the checks file loads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lakestack.quality.model import CheckFile


def test_a_regex_check_that_re2_runs_loads() -> None:
    checks = CheckFile.model_validate(
        {"dataset": "silver.orders", "checks": [{"type": "regex", "column": "id", "pattern": "^(a+)+$"}]}
    )
    assert checks.checks[0].pattern == "^(a+)+$"  # type: ignore[union-attr]


@pytest.mark.parametrize(("pattern", "why"), [("(?=a)b", "lookahead"), (r"(a)\1", "backreferences")])
def test_a_regex_check_re2_cannot_run_is_refused_at_load(pattern: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        CheckFile.model_validate(
            {"dataset": "silver.orders", "checks": [{"type": "regex", "column": "id", "pattern": pattern}]}
        )

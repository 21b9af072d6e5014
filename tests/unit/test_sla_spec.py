"""slas.yaml values and the error-budget arithmetic, without a lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lakestack.config import ProjectConfig
from lakestack.errors import ProjectError
from lakestack.monitor.sla_history import budget_used
from lakestack.monitor.sla_spec import DeadlineSla, load_slas, parse_duration, parse_percent

CONFIG = ProjectConfig.model_validate(
    {
        "name": "shop",
        "environments": {"dev": {"warehouse": "./w"}},
        "sources": {"orders": {"kind": "files", "landing": "landing/orders", "contract": "orders"}},
    }
)


def test_durations_and_percentages() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration(" 2w ") == timedelta(weeks=2)
    for bad in ("0m", "15", "m", "1.5h", "-1d", "15 minutes"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
    assert parse_percent("99.5%") == pytest.approx(0.995)
    assert parse_percent(50) == 0.5
    for bad in ("0%", "101%", "lots", True):
        with pytest.raises(ValueError, match="not a percentage"):
            parse_percent(bad)


def test_an_unquoted_time_of_day_is_read_as_one(tmp_path: Path) -> None:
    # YAML 1.1 reads 03:00 as the sexagesimal integer 180; the deadline takes it as 03:00
    (tmp_path / "slas.yaml").write_text("slas:\n  d:\n    kind: deadline\n    dataset: bronze.orders\n    by: 03:00\n")
    spec = load_slas(tmp_path, CONFIG)
    assert spec is not None
    sla = spec.slas["d"]
    assert isinstance(sla, DeadlineSla) and sla.by == "03:00"
    assert spec.every_s == 300 and spec.objective_of(sla) == 0.99


def test_no_file_is_no_slas_and_an_empty_file_is_none_promised(tmp_path: Path) -> None:
    assert load_slas(tmp_path, CONFIG) is None
    (tmp_path / "slas.yaml").write_text("# nothing yet\n")
    spec = load_slas(tmp_path, CONFIG)
    assert spec is not None and spec.slas == {}


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "slas:\n  history:\n    kind: freshness\n    dataset: bronze.orders\n    max_age: 1h\n",
            ":3 (slas.history)",
            "reserved",
        ),
        (
            "slas:\n  a:\n    kind: completeness\n    dataset: bronze.orders\n    column: ts\n",
            ":3 (slas.a)",
            "needs days",
        ),
        ("objective: 100%\n", ":1 (objective)", "below 100%"),
        ("slas:\n  - a\n", ":2 (slas)", "dictionary"),
        ("slas:\n  a:\n    dataset: bronze.orders\n", ":3 (slas.a)", "missing required key 'kind'"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, where: str, message: str) -> None:
    (tmp_path / "slas.yaml").write_text(text)
    with pytest.raises(ProjectError) as info:
        load_slas(tmp_path, CONFIG)
    assert f"slas.yaml{where}" in str(info.value) and message in str(info.value), str(info.value)


def test_budget_is_time_in_breach_over_time_allowed() -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)
    hour = timedelta(hours=1)
    week = timedelta(days=7)
    steps = [(now - 5 * hour, "ok"), (now - 4 * hour, "breach"), (now - 3 * hour, "unknown"), (now - hour, "breach")]
    # breach 4 h → 3 h ago and 1 h ago → now: 2 h of 1.68 h allowed at 99 %
    assert budget_used([*steps, (now, "breach")], now, week, 0.99) == pytest.approx(2 / 1.68)
    # a breach that began before the window counts from the window's start
    old = [(now - 8 * 24 * hour, "breach"), (now - 7 * 24 * hour + hour, "ok"), (now, "ok")]
    assert budget_used(old, now, week, 0.99) == pytest.approx(1 / 1.68)
    assert budget_used([(now, "breach")], now, week, 0.99) == 0

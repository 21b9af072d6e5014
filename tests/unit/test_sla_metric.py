"""`sla_breach`: the gauge SLA evaluations set, which the SLA alarms of `lakestack deploy aws` watch."""

from __future__ import annotations

from datetime import UTC, datetime

from lakestack.deploy.resources import SLA_METRIC
from lakestack.monitor.metrics import DIMENSIONS, SLA_BREACH, MetricsListener
from lakestack.monitor.sla import SlaResult


def _result(name: str, status: str) -> SlaResult:
    return SlaResult(name, "freshness", "silver.orders", status, "", "", "", datetime.now(UTC))  # type: ignore[arg-type]


def test_breach_is_one_met_is_zero_unknown_has_no_value() -> None:
    listener = MetricsListener()
    listener.slas([_result("a", "breach"), _result("b", "ok"), _result("c", "unknown")])
    assert listener.registry.value(SLA_BREACH, sla="a") == 1.0
    assert listener.registry.value(SLA_BREACH, sla="b") == 0.0
    assert listener.registry.value(SLA_BREACH, sla="c") is None
    listener.slas([_result("a", "unknown")])  # no longer known: the old value is not repeated
    assert listener.registry.value(SLA_BREACH, sla="a") is None


def test_the_alarm_names_the_metric_and_dimension_published() -> None:
    assert SLA_BREACH.cloudwatch_name == SLA_METRIC
    assert [DIMENSIONS[label] for label in SLA_BREACH.labels] == ["Sla"]

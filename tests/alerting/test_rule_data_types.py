"""A rule's fixed template variables are type-checked as an event's are."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alerting.rules import RuleIn

RULE = {
    "name": "spike",
    "schedule": "every 5m",
    "source": {"kind": "http", "url": "https://status.example.com/health"},
    "condition": {"kind": "unreachable"},
    "event_type": "trend.sales_spike",
    "recipients": {"users": ["oncall"]},
}


def test_fixed_data_of_the_declared_kind_is_accepted() -> None:
    rule = RuleIn.model_validate({**RULE, "data": {"item": "vinyl", "change_pct": 12.5}})
    assert rule.data["change_pct"] == 12.5


def test_fixed_data_of_another_kind_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValidationError) as caught:
        RuleIn.model_validate({**RULE, "data": {"item": {"x": 1}, "change_pct": "12"}})
    message = str(caught.value)
    assert "data.item: must be a string, got an object" in message
    assert "data.change_pct: must be a number, got a string" in message

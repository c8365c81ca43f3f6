"""The alert gate goes by event time, not arrival order: queues and retries reorder."""

from __future__ import annotations

import uuid
from datetime import timedelta

from alerting.alerts import AlertPolicy, AlertStore
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, iso
from tests.alerting.conftest import START
from tests.conftest import Stack

POLICY = AlertPolicy(repeat_interval_seconds=3600, notify_resolved=True)


def event(action: str, minute: int, key: str = "orders-db") -> Event:
    spec = EVENT_TYPES["alert.sla_breach"]
    return Event(
        event_id=str(uuid.uuid4()),
        type=spec.name,
        category=spec.category,
        priority=spec.priority,
        user_id="oncall",
        data={"service": key, "sla": "15m"},
        created_at=iso(START + timedelta(minutes=minute)),
        dedupe_key=key,
        action=action,  # type: ignore[arg-type]
    )


def store(stack: Stack) -> AlertStore:
    return AlertStore(stack.clients.dynamodb, stack.clients.names.table)


def open_alerts(alerts: AlertStore) -> list[dict[str, object]]:
    return alerts.list("open", 100, None)[0]


def test_a_trigger_that_arrives_after_its_resolve_opens_nothing(stack: Stack) -> None:
    alerts = store(stack)
    assert alerts.decide(event("resolve", 2), POLICY, silenced=False).kind == "ignore"
    late = alerts.decide(event("trigger", 1), POLICY, silenced=False)
    assert late.kind == "ignore" and not late.notify
    assert open_alerts(alerts) == []
    # A trigger newer than the resolve opens alert number 1 as usual.
    fresh = alerts.decide(event("trigger", 3), POLICY, silenced=False)
    assert fresh.kind == "open" and fresh.notify and fresh.alert_id.endswith("-1")  # type: ignore[union-attr]


def test_a_resolve_older_than_the_last_trigger_resolves_nothing(stack: Stack) -> None:
    alerts = store(stack)
    assert alerts.decide(event("trigger", 1), POLICY, silenced=False).kind == "open"
    assert alerts.decide(event("trigger", 3), POLICY, silenced=False).kind == "suppress"
    stale = alerts.decide(event("resolve", 2), POLICY, silenced=False)
    assert stale.kind == "ignore" and not stale.notify
    assert len(open_alerts(alerts)) == 1
    assert alerts.decide(event("resolve", 4), POLICY, silenced=False).kind == "resolve"
    assert open_alerts(alerts) == []


def test_a_trigger_older_than_the_resolve_of_its_alert_opens_nothing(stack: Stack) -> None:
    alerts = store(stack)
    assert alerts.decide(event("trigger", 1), POLICY, silenced=False).kind == "open"
    assert alerts.decide(event("resolve", 3), POLICY, silenced=False).kind == "resolve"
    assert alerts.decide(event("trigger", 2), POLICY, silenced=False).kind == "ignore"
    assert open_alerts(alerts) == []

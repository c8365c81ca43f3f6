"""Alert lifecycles of pushed events: POST /events with dedupe_key and action, routed by the
router (with a set clock), observed through GET /alerts, GET /events and the channel
queues the router fills."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from fastapi.testclient import TestClient

from alerting.alerts import AlertPolicy, AlertStore
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, iso, utcnow
from listeners.router import Router
from tests.alerting.conftest import (
    Clock,
    add_user,
    channel_messages,
    route_pending,
    stored_event,
)
from tests.conftest import Stack

SLA = {"service": "orders-db", "sla": "15 min freshness"}


def trigger(client: TestClient, key: str = "orders-db", **extra: Any) -> str:
    body = {"type": "alert.sla_breach", "user_id": "oncall", "data": SLA, "dedupe_key": key}
    resp = client.post("/events", json={**body, **extra})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["event_id"])


def sms_count(stack: Stack) -> int:
    return len(channel_messages(stack, "sms"))


def test_first_trigger_notifies_repeats_are_counted_then_one_reminder(
    stack: Stack, client: TestClient, router: Router, clock: Clock
) -> None:
    add_user(stack, "oncall", phone="+14155550123")
    first = trigger(client, repeat_interval="1h")
    route_pending(stack, router)
    assert sms_count(stack) == 1

    for _ in range(3):
        trigger(client, repeat_interval="1h")
    clock.advance(minutes=59)
    route_pending(stack, router)
    assert sms_count(stack) == 0  # still within the repeat interval

    [alert] = client.get("/alerts", params={"state": "open"}).json()["items"]
    assert alert["count"] == 4 and alert["opened_by"] == first
    assert [n["kind"] for n in alert["notifications"]] == ["open"]

    clock.advance(minutes=2)
    reminder = trigger(client, repeat_interval="1h")
    route_pending(stack, router)
    assert sms_count(stack) == 1
    detail = client.get(f"/alerts/{alert['alert_id']}").json()
    assert [(n["kind"], n["event_id"]) for n in detail["notifications"]] == [
        ("open", first),
        ("remind", reminder),
    ]
    sends = {n["channel"]: n for n in detail["notifications"][0]["notifications"]}
    assert sends["sms"]["recipient"] == "+*******0123" and sends["sms"]["status"] == "QUEUED"
    assert detail["count"] == 5

    suppressed = stored_event(stack, trigger(client, repeat_interval="1h"))
    route_pending(stack, router)
    record, _ = stored_event(stack, suppressed[0].event_id)
    assert record.status == "SUCCESS" and record.counts.total == 0
    assert record.reason is not None and "no notification" in record.reason


def test_resolve_notifies_and_a_later_trigger_opens_a_new_alert(
    stack: Stack, client: TestClient, router: Router
) -> None:
    add_user(stack, "oncall", phone="+14155550123")
    trigger(client)
    route_pending(stack, router)
    resolve = trigger(client, action="resolve")
    route_pending(stack, router)
    bodies = channel_messages(stack, "sms")
    assert len(bodies) == 2
    assert json.loads(bodies[-1])["content"]["text"].startswith("RESOLVED")
    [resolved] = client.get("/alerts", params={"state": "resolved"}).json()["items"]
    assert resolved["notifications"][-1] == {
        "event_id": resolve,
        "kind": "resolve",
        "at": resolved["resolved_at"],
        "notifications": [],
    }

    trigger(client)
    route_pending(stack, router)
    assert sms_count(stack) == 1
    [reopened] = client.get("/alerts", params={"state": "open"}).json()["items"]
    assert reopened["alert_id"] != resolved["alert_id"] and reopened["count"] == 1


def test_resolve_of_a_type_without_notify_resolved_is_silent(
    stack: Stack, client: TestClient, router: Router
) -> None:
    add_user(stack, "oncall", phone="+14155550123")
    trigger(client, notify_resolved=False)
    route_pending(stack, router)
    trigger(client, action="resolve", notify_resolved=False)
    route_pending(stack, router)
    assert sms_count(stack) == 1
    assert client.get("/alerts", params={"state": "resolved"}).json()["items"]


def test_acknowledged_alert_sends_no_reminders(
    stack: Stack, client: TestClient, router: Router, clock: Clock
) -> None:
    add_user(stack, "oncall", phone="+14155550123")
    trigger(client, repeat_interval="5m")
    route_pending(stack, router)
    [alert] = client.get("/alerts").json()["items"]
    acked = client.post(f"/alerts/{alert['alert_id']}/ack")
    assert acked.status_code == 200 and acked.json()["acked"] is True
    clock.advance(hours=1)
    trigger(client, repeat_interval="5m")
    route_pending(stack, router)
    assert sms_count(stack) == 1

    assert client.post("/alerts/0123456789abcdef01234567-1/ack").status_code == 404
    trigger(client, action="resolve")
    route_pending(stack, router)
    assert client.post(f"/alerts/{alert['alert_id']}/ack").status_code == 409


def test_silence_mutes_matching_alerts_until_it_ends(
    stack: Stack, client: TestClient, router: Router, clock: Clock
) -> None:
    add_user(stack, "oncall", phone="+14155550123")
    silence = client.put(
        "/silences",
        json={
            "matchers": [
                {"name": "type", "value": "alert.sla_breach"},
                {"name": "dedupe_key", "op": "=~", "value": "orders-.*"},
            ],
            "starts_at": iso(clock.now),
            "ends_at": iso(clock.now.replace(hour=13)),
            "comment": "maintenance",
        },
    )
    assert silence.status_code == 200, silence.text
    trigger(client, key="orders-db")
    trigger(client, key="billing-db")  # does not match: notifies
    route_pending(stack, router)
    assert sms_count(stack) == 1
    assert len(client.get("/alerts", params={"state": "open"}).json()["items"]) == 2

    clock.advance(hours=2)  # the silence is over; the muted alert never notified
    trigger(client, key="orders-db")
    route_pending(stack, router)
    assert sms_count(stack) == 1

    bad = client.put("/silences", json={"matchers": [], "ends_at": "2030-01-01T00:00:00Z"})
    assert bad.status_code == 422 and "matchers" in bad.json()["message"]
    backreference = {"name": "dedupe_key", "op": "=~", "value": "(a+)\\1"}
    bad = client.put(
        "/silences", json={"matchers": [backreference], "ends_at": "2030-01-01T00:00:00Z"}
    )
    assert bad.status_code == 422 and "RE2" in bad.json()["message"]
    early = {"matchers": [backreference | {"value": "a"}], "ends_at": "0001-01-01T00:00:00+01:00"}
    bad = client.put("/silences", json=early)
    assert bad.status_code == 422 and "ends_at" in bad.json()["message"]


def test_concurrent_and_redelivered_triggers_notify_once(stack: Stack) -> None:
    store = AlertStore(stack.clients.dynamodb, stack.clients.names.table)
    policy = AlertPolicy(repeat_interval_seconds=3600, notify_resolved=True)
    spec = EVENT_TYPES["alert.sla_breach"]

    def event() -> Event:
        return Event(
            event_id=str(uuid.uuid4()),
            type=spec.name,
            category=spec.category,
            priority=spec.priority,
            user_id="oncall",
            data=SLA,
            created_at=iso(utcnow()),
            dedupe_key="race",
            action="trigger",
        )

    events = [event() for _ in range(8)]
    answers: dict[str, bool] = {}
    barrier = threading.Barrier(len(events))

    def decide(e: Event) -> None:
        barrier.wait()
        answers[e.event_id] = store.decide(e, policy, silenced=False).notify

    threads = [threading.Thread(target=decide, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(answers.values()) == 1
    for e in events:  # a redelivery gets the same answer
        assert store.decide(e, policy, silenced=False).notify is answers[e.event_id]
    items, _ = store.list("open", 10, None)
    assert len(items) == 1 and items[0]["count"] == 8


def test_redelivered_opening_event_still_notifies(stack: Stack) -> None:
    store = AlertStore(stack.clients.dynamodb, stack.clients.names.table)
    policy = AlertPolicy(repeat_interval_seconds=3600, notify_resolved=True)
    spec = EVENT_TYPES["alert.pipeline_failed"]
    opening = Event(
        event_id="evt-1",
        type=spec.name,
        category=spec.category,
        priority=spec.priority,
        topic="data-platform",
        data={"pipeline": "daily", "error": "timeout"},
        created_at=iso(utcnow()),
        dedupe_key="daily",
        action="trigger",
    )
    first = store.decide(opening, policy, silenced=False)
    again = store.decide(opening, policy, silenced=False)
    assert first.kind == again.kind == "open" and first.notify and again.notify
    assert first.alert_id == again.alert_id


def test_alert_fields_need_a_dedupe_key_and_alerts_404(client: TestClient) -> None:
    resp = client.post(
        "/events",
        json={"type": "alert.sla_breach", "user_id": "u", "data": SLA, "action": "resolve"},
    )
    assert resp.status_code == 422 and "dedupe_key" in resp.json()["message"]
    resp = client.post(
        "/events",
        json={
            "type": "alert.sla_breach",
            "user_id": "u",
            "data": SLA,
            "dedupe_key": "k",
            "repeat_interval": "soon",
        },
    )
    assert resp.status_code == 422 and "repeat_interval" in resp.json()["message"]
    assert client.get("/alerts/0123456789abcdef01234567-1").status_code == 404
    assert client.get("/alerts", params={"state": "closed"}).status_code == 422

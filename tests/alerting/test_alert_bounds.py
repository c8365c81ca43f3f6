"""An alert that notified many times stays bounded: GET /alerts/{id} shows its most recent
notifying events with a page of each one's notifications (read from the ledger, within a
read budget) and says how many more there are; the alert item keeps the newest notifying
events and a count, however many reminders it sends."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerting import alerts as alert_store
from alerting.alerts import NOTIFYING_EVENTS_KEPT, AlertPolicy, AlertStore
from api.routes import alerts as alert_routes
from core.aws import dynamo
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, iso
from listeners.router import Router
from tests.alerting.conftest import START, Clock, add_user, channel_messages, route_pending
from tests.conftest import Stack

SLA = {"service": "orders-db", "sla": "15 min freshness"}


def notify(
    stack: Stack, client: TestClient, router: Router, clock: Clock, action: str = "trigger"
) -> str:
    """One event of the alert, routed a reminder interval after the last: it notifies."""
    body = {
        "type": "alert.sla_breach",
        "user_id": "oncall",
        "data": SLA,
        "dedupe_key": "orders-db",
        "repeat_interval": "1m",
        "action": action,
    }
    resp = client.post("/events", json=body)
    assert resp.status_code == 202, resp.text
    clock.advance(minutes=2)
    route_pending(stack, router)
    return str(resp.json()["event_id"])


def drive(stack: Stack, client: TestClient, router: Router, clock: Clock, times: int) -> list[str]:
    add_user(stack, "oncall", phone="+14155550123", email="oncall@example.com")
    sent = [notify(stack, client, router, clock) for _ in range(times)]
    channel_messages(stack, "sms")
    channel_messages(stack, "email")
    return sent


def test_an_alert_shows_its_most_recent_notifying_events_and_counts_the_rest(
    stack: Stack, client: TestClient, router: Router, clock: Clock
) -> None:
    shown = alert_routes.EVENTS_SHOWN
    sent = drive(stack, client, router, clock, shown + 10)
    [listed] = client.get("/alerts", params={"state": "open"}).json()["items"]
    assert [n["event_id"] for n in listed["notifications"]] == sent[-shown:]
    assert listed["notifying_events"] == shown + 10 and listed["more_notifying_events"] == 10

    detail = client.get(f"/alerts/{listed['alert_id']}").json()
    assert [n["kind"] for n in detail["notifications"]] == ["remind"] * shown
    assert [n["event_id"] for n in detail["notifications"]] == sent[-shown:]
    assert detail["notifying_events"] == shown + 10 and detail["more_notifying_events"] == 10
    for entry in detail["notifications"]:  # each event's own records, read from the ledger
        assert entry["notifications_read"] and entry["notifications_cursor"] is None
        sends = {n["channel"]: n for n in entry["notifications"]}
        assert sorted(sends) == ["chat", "email", "sms"]  # chat: skipped, no webhook
        assert sends["sms"]["recipient"] == "+*******0123"
        assert sends["sms"]["status"] == "QUEUED"

    older = client.get(f"/events/{sent[0]}").json()  # the events not shown are still readable
    assert {n["channel"] for n in older["notifications"]} == {"chat", "email", "sms"}


def test_one_answer_reads_no_more_than_its_budget_newest_events_first(
    stack: Stack, client: TestClient, router: Router, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = drive(stack, client, router, clock, 4)  # three notifications an event
    monkeypatch.setattr(alert_routes, "SENDS_READ_BUDGET", 6)
    [listed] = client.get("/alerts").json()["items"]
    detail = client.get(f"/alerts/{listed['alert_id']}").json()
    entries = {n["event_id"]: n for n in detail["notifications"]}
    assert list(entries) == sent

    for read in sent[2:]:  # the two newest: read, within the budget
        assert entries[read]["notifications_read"]
        assert {n["channel"] for n in entries[read]["notifications"]} == {"chat", "email", "sms"}
    for old in sent[:2]:  # the budget is spent: said so, nothing read
        assert entries[old]["notifications_read"] is False
        assert entries[old]["notifications"] == []
        found = client.get(f"/events/{old}").json()  # where the client reads them
        assert {n["channel"] for n in found["notifications"]} == {"chat", "email", "sms"}


def _event(at: Any, action: str = "trigger") -> Event:
    spec = EVENT_TYPES["alert.sla_breach"]
    return Event(
        event_id=str(uuid.uuid4()),
        type=spec.name,
        category=spec.category,
        priority=spec.priority,
        user_id="oncall",
        data=SLA,
        created_at=iso(at),
        dedupe_key="bounded",
        action=action,  # type: ignore[arg-type]
    )


def test_the_alert_item_keeps_the_newest_notifying_events_and_counts_them_all(
    stack: Stack, client: TestClient
) -> None:
    store = AlertStore(stack.clients.dynamodb, stack.clients.names.table)
    policy = AlertPolicy(repeat_interval_seconds=60, notify_resolved=True)
    total = NOTIFYING_EVENTS_KEPT + 10
    ids = []
    for minute in range(total):  # one open, then a reminder a minute
        at = START + timedelta(minutes=minute)
        event = _event(at)
        assert store.decide(event, policy, silenced=False, now=at).notify
        ids.append(event.event_id)
    at = START + timedelta(minutes=total)
    resolve = _event(at, "resolve")
    decision = store.decide(resolve, policy, silenced=False, now=at)
    assert decision.kind == "resolve" and decision.notify and decision.alert_id
    ids.append(resolve.event_id)

    item = store.get(decision.alert_id)
    assert item is not None
    assert [n["event_id"] for n in item["notifications"]] == ids[-NOTIFYING_EVENTS_KEPT:]
    assert item["notifying_events"] == total + 1
    assert item["notifications"][-1]["kind"] == "resolve"

    detail = client.get(f"/alerts/{decision.alert_id}").json()
    shown = alert_routes.EVENTS_SHOWN
    assert [n["event_id"] for n in detail["notifications"]] == ids[-shown:]
    assert detail["notifying_events"] == total + 1
    assert detail["more_notifying_events"] == total + 1 - shown


def test_an_alert_stored_before_the_count_reads_and_is_cut_at_its_next_reminder(
    stack: Stack, client: TestClient
) -> None:
    store = AlertStore(stack.clients.dynamodb, stack.clients.names.table)
    policy = AlertPolicy(repeat_interval_seconds=60, notify_resolved=True)
    opening = _event(START)
    aid = store.decide(opening, policy, silenced=False, now=START).alert_id
    assert aid is not None
    khash, seq = alert_store.parse_alert_id(aid) or ("", 0)
    long = [{"event_id": f"old-{i}", "kind": "remind", "at": iso(START)} for i in range(70)]
    stack.clients.dynamodb.update_item(  # as an older version left it: a long list, no count
        TableName=stack.clients.names.table,
        Key={
            dynamo.PK: {"S": alert_store.alert_pk(khash)},
            dynamo.SK: {"S": alert_store.alert_sk(seq)},
        },
        UpdateExpression="SET notifications = :n REMOVE notifying_events",
        ExpressionAttributeValues={":n": dynamo.to_value(long)},
    )
    detail = client.get(f"/alerts/{aid}").json()
    assert [n["event_id"] for n in detail["notifications"]] == [
        e["event_id"] for e in long[-alert_routes.EVENTS_SHOWN :]
    ]
    assert detail["notifying_events"] == 70
    assert detail["more_notifying_events"] == 70 - alert_routes.EVENTS_SHOWN

    at = START + timedelta(minutes=5)
    reminder = _event(at)
    assert store.decide(reminder, policy, silenced=False, now=at).kind == "remind"
    item = store.get(aid)
    assert item is not None and item["notifying_events"] == 71
    assert len(item["notifications"]) == NOTIFYING_EVENTS_KEPT
    assert item["notifications"][-1]["event_id"] == reminder.event_id
    assert item["notifications"][0]["event_id"] == f"old-{71 - NOTIFYING_EVENTS_KEPT}"

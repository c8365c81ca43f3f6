"""Delayed events through the API: send_at and delay validated (422s name the field),
accepted SCHEDULED, listed by status, published when due, cancelled before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.timing.due_work import DueStore, DueWork
from listeners.due_handlers import build_due_handlers
from listeners.due_sender import DueSender
from listeners.messages import QueueMessage
from listeners.router import Router
from tests.conftest import Stack

EVENT = {"type": "follow", "user_id": "u-1", "data": {"actor": "Bo"}}
TREND = {"chart": "Global Top 50", "artist": "Nova"}
NEXT_MONTH = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT09:00:00+01:00")


def post(client: TestClient, **extra: Any) -> Any:
    return client.post("/events", json={**EVENT, **extra})


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"send_at": "2030-01-01T09:00:00"}, "send_at", "offset"),
        ({"send_at": "tomorrow at nine"}, "send_at", "RFC 3339"),
        ({"send_at": "2999-01-01T09:00:00Z"}, "send_at", "365 days"),
        ({"delay": "366d"}, "delay", "365 days"),
        ({"delay": "soon"}, "delay", "90s"),
        ({"delay": "0s"}, "delay", "at least 1s"),
        ({"delay": "9" * 70}, "delay", "64"),
        ({"delay": "2h", "send_at": NEXT_MONTH}, "delay", "not both"),
        ({"delay": "2h", "send_at_local": "09:00"}, "send_at_local", "not both"),
        ({"send_at_local": "9am"}, "send_at_local", "pattern"),
    ],
)
def test_bad_times_are_422s_naming_the_field(
    client: TestClient, extra: dict[str, Any], field: str, words: str
) -> None:
    resp = post(client, **extra)
    assert resp.status_code == 422, resp.text
    message = resp.json()["message"]
    assert message.startswith(field) and words in message, message


def test_a_delayed_event_waits_scheduled_and_is_published_when_due(
    client: TestClient, stack: Stack
) -> None:
    accepted = post(client, delay="2h")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "SCHEDULED"
    event_id = accepted.json()["event_id"]
    shown = client.get(f"/events/{event_id}").json()
    assert shown["status"] == "SCHEDULED"
    due_at = datetime.fromisoformat(shown["send_at"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < due_at - datetime.now(UTC) <= timedelta(hours=2)
    listed = client.get("/events", params={"status": "SCHEDULED"}).json()["items"]
    assert [e["event_id"] for e in listed] == [event_id]
    assert stack.receive_all("herald-test-events-normal") == []  # not published

    due = DueStore(stack.clients.dynamodb, stack.clients.names.table, stack.settings.due_shards)
    handlers = build_due_handlers(stack.settings, stack.clients, due)
    later = due_at + timedelta(seconds=1)
    stats = DueSender(stack.settings, stack.clients, handlers, clock=lambda: later).run_pass()
    assert stats.handed == 1
    assert client.get(f"/events/{event_id}").json()["status"] == "START"
    [published] = stack.receive_all("herald-test-events-normal")
    assert event_id in published["Body"]
    assert client.get("/events", params={"status": "SCHEDULED"}).json()["items"] == []


def test_a_cancelled_event_is_never_published_and_a_late_cancel_is_a_409(
    client: TestClient, stack: Stack
) -> None:
    event_id = post(client, send_at=NEXT_MONTH).json()["event_id"]
    cancelled = client.post(f"/events/{event_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert client.post(f"/events/{event_id}/cancel").status_code == 200  # a repeat
    assert client.get(f"/events/{event_id}").json()["status"] == "CANCELLED"

    due = DueStore(stack.clients.dynamodb, stack.clients.names.table, stack.settings.due_shards)
    handlers = build_due_handlers(stack.settings, stack.clients, due)
    handlers["event"](  # its due item comes due: nothing is published
        DueWork(kind="event", ref=event_id, due_at=datetime.now(UTC), tenant="")
    )
    assert stack.receive_all("herald-test-events-normal") == []

    now = post(client).json()["event_id"]
    late = client.post(f"/events/{now}/cancel")
    assert late.status_code == 409
    assert "START" in late.json()["message"] and late.json()["message"].startswith("event_id")
    assert client.post("/events/no-such-event/cancel").status_code == 404


def test_a_repeat_of_a_delayed_event_is_the_same_event(client: TestClient) -> None:
    first = client.post("/events", json=EVENT | {"delay": "1h"}, headers={"Idempotency-Key": "k"})
    again = client.post("/events", json=EVENT | {"delay": "1h"}, headers={"Idempotency-Key": "k"})
    assert first.status_code == 202 and again.status_code == 200, again.text
    assert again.json() == {**first.json(), "duplicate": True}


def test_a_batch_records_its_delayed_events_scheduled(client: TestClient) -> None:
    resp = client.post(
        "/events/batch", json={"events": [EVENT | {"delay": "1h"}, EVENT | {"priority": "high"}]}
    )
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert [i["status"] for i in items] == ["SCHEDULED", "START"]
    assert client.get(f"/events/{items[0]['event_id']}").json()["status"] == "SCHEDULED"


def test_cancelling_a_waiting_users_event_cancels_its_notifications_at_once(
    client: TestClient, stack: Stack
) -> None:
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(minutes=30)).strftime("%H:%M"),
        "end": (now + timedelta(minutes=5)).strftime("%H:%M"),
    }
    client.put("/users/u-9", json={"phone": "+14155550100"}).raise_for_status()
    client.put(
        "/users/u-9/preferences",
        json={"categories": {"trend": ["sms"]}, "quiet_hours": window},
    ).raise_for_status()
    body = {"type": "trend.top_artist_changed", "user_id": "u-9", "data": TREND}
    event_id = client.post("/events", json=body).json()["event_id"]
    queue = "herald-test-events-normal"
    messages = [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue)]
    assert Router(stack.settings, stack.clients)(messages)
    assert client.get(f"/events/{event_id}").json()["status"] == "SCHEDULED"

    assert client.post(f"/events/{event_id}/cancel").json()["status"] == "CANCELLED"
    shown = client.get(f"/events/{event_id}").json()
    assert shown["status"] == "CANCELLED"
    assert [n["status"] for n in shown["notifications"]] == ["CANCELLED"]

"""Events addressed to inline recipients (on-call lists) instead of users or topics."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from listeners.router import Router
from tests.alerting.conftest import channel_messages, route_pending, stored_event
from tests.conftest import Stack

DOWN = {"type": "alert.datasource_down", "data": {"datasource": "warehouse"}}
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


def test_inline_addresses_each_get_a_notification_masked_in_the_api(
    stack: Stack, client: TestClient, router: Router
) -> None:
    to = {
        "email": ["oncall@example.com", "lead@example.com"],
        "sms": ["+14155550123"],
        "chat": [SLACK],
    }
    resp = client.post("/events", json={**DOWN, "to": to})
    assert resp.status_code == 202, resp.text
    route_pending(stack, router)

    emails = [json.loads(b) for b in channel_messages(stack, "email")]
    assert sorted(m["addresses"][0] for m in emails) == sorted(to["email"])
    [sms] = [json.loads(b) for b in channel_messages(stack, "sms")]
    assert sms["addresses"] == ["+14155550123"] and "warehouse" in sms["content"]["text"]
    [chat] = [json.loads(b) for b in channel_messages(stack, "chat")]
    assert chat["addresses"] == [SLACK] and chat["content"]["format"] == "slack"

    record, _ = stored_event(stack, resp.json()["event_id"])
    assert record.counts.total == 4
    shown = client.get(f"/events/{record.event_id}").json()
    recipients = sorted(n["recipient"] for n in shown["notifications"])
    assert recipients == sorted(
        ["o***@example.com", "l***@example.com", "+*******0123", "https://hooks.slack.com/***"]
    )
    assert "XXXXSECRET" not in json.dumps(shown)


def test_inline_recipients_are_validated_like_profiles(client: TestClient) -> None:
    cases = [
        ({"sms": ["0123"]}, "to.sms.0"),
        ({"email": ["not-an-email"]}, "to.email.0"),
        ({"chat": ["ftp://hooks.slack.com/x"]}, "to.chat"),
        ({"pager": ["x"]}, "to.pager"),
        ({}, "to"),
    ]
    for to, field in cases:
        resp = client.post("/events", json={**DOWN, "to": to})
        assert resp.status_code == 422, (to, resp.text)
        assert field in resp.json()["message"], (to, resp.json()["message"])
    both = client.post("/events", json={**DOWN, "to": {"sms": ["+14155550123"]}, "user_id": "u"})
    assert both.status_code == 422 and "exactly one of" in both.json()["message"]

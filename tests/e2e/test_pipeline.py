"""POST an event over HTTP; assert what the providers received and how the event ended."""

from __future__ import annotations

from typing import Any

from core.catalogue.event_types import Category, Priority
from core.catalogue.models import NotificationMessage, iso, utcnow
from tests.e2e.conftest import PREFIX, Herald
from tests.support import wait_until

COMMENT = {"type": "comment", "data": {"actor": "Ana", "post": "p-1", "text": "Lovely!"}}


def delivered(sandbox: Any, notification_id: str) -> list[dict[str, Any]]:
    """Requests the sandbox answered with success for this notification."""
    return [m for m in sandbox.messages(notification_id=notification_id) if m["status"] < 300]


def test_each_channel_gets_exactly_one_rendered_request(herald: Herald, sandbox: Any) -> None:
    user = herald.user(
        phone="+14155550100", email="ana@example.com", categories={"activity": ["sms", "email"]}
    )
    event_id = herald.post_event({**COMMENT, "user_id": user})
    event = herald.wait_for_event(event_id, {"SUCCESS"})
    assert event["counts"] == {"total": 2, "sent": 2, "failed": 0, "skipped": 0}
    assert {n["channel"]: n["status"] for n in event["notifications"]} == {
        "sms": "SENT",
        "email": "SENT",
    }

    sms = sandbox.messages(notification_id=f"{event_id}:sms:{user}")
    assert len(sms) == 1
    assert sms[0]["provider"] == "twilio"
    assert sms[0]["auth"]["username"] == herald.settings.twilio_account_sid
    assert sms[0]["form"]["To"] == "+14155550100"
    assert sms[0]["form"]["From"] == herald.settings.twilio_from_number
    assert "Ana" in sms[0]["form"]["Body"]

    email = sandbox.messages(notification_id=f"{event_id}:email:{user}")
    assert len(email) == 1
    assert email[0]["auth"] == {"scheme": "bearer", "token": herald.settings.sendgrid_api_key}
    mail = email[0]["json"]
    assert mail["personalizations"][0]["to"][0]["email"] == "ana@example.com"
    assert mail["from"]["email"] == herald.settings.email_from
    assert {c["type"] for c in mail["content"]} == {"text/plain", "text/html"}
    assert any("Lovely!" in c["value"] for c in mail["content"])
    sms_record = next(n for n in event["notifications"] if n["channel"] == "sms")
    assert sms_record["provider_message_id"] == sms[0]["message_id"]


def test_a_500_then_success_is_sent_after_one_retry(herald: Herald, sandbox: Any) -> None:
    user = herald.user(phone="+14155550101", categories={"activity": ["sms"]})
    sandbox.fail("twilio", 500, count=1)
    event_id = herald.post_event({**COMMENT, "user_id": user})
    herald.wait_for_event(event_id, {"SUCCESS"})
    requests = sandbox.messages(notification_id=f"{event_id}:sms:{user}")
    assert [r["status"] for r in requests] == [500, 201]
    notification = herald.event(event_id)["notifications"][0]
    assert [h["status"] for h in notification["history"]] == [
        "QUEUED",
        "SENDING",
        "RETRYING",
        "SENDING",
        "SENT",
    ]


def test_an_invalid_number_fails_at_once_with_the_providers_reason(
    herald: Herald, sandbox: Any
) -> None:
    user = herald.user(phone="+15005550001", categories={"activity": ["sms"]})
    event_id = herald.post_event({**COMMENT, "user_id": user})
    event = herald.wait_for_event(event_id, {"FAILED"})
    notification = event["notifications"][0]
    assert notification["status"] == "FAILED" and "21211" in notification["last_error"]
    assert notification["attempts"] == 1
    assert len(sandbox.messages(notification_id=f"{event_id}:sms:{user}")) == 1
    assert "1 of 1" in event["reason"]


def test_always_failing_provider_dead_letters_then_redrive_delivers_once(
    herald: Herald, sandbox: Any
) -> None:
    user = herald.user(email="bo@example.com", categories={"activity": ["email"]})
    sandbox.fail("sendgrid", 503, rate=1.0)
    event_id = herald.post_event({**COMMENT, "user_id": user})
    event = herald.wait_for_event(event_id, {"FAILED"})
    notification_id = f"{event_id}:email:{user}"
    assert "gave up after 3 attempts" in event["notifications"][0]["last_error"]
    assert len(sandbox.messages(notification_id=notification_id)) == 3

    dead = herald.api.get("/dlq/email-normal/messages").json()
    assert [d["body"]["notification_id"] for d in dead] == [notification_id]
    sandbox.clear_faults()
    redriven = herald.api.post("/dlq/email-normal/redrive").json()
    assert redriven["notifications_requeued"] == 1

    herald.wait_for_event(event_id, {"SUCCESS"})
    assert len(delivered(sandbox, notification_id)) == 1
    assert herald.api.get("/dlq/email-normal/messages").json() == []


def test_a_redelivered_message_of_a_sent_notification_sends_nothing(
    herald: Herald, sandbox: Any
) -> None:
    user = herald.user(phone="+14155550102", categories={"activity": ["sms"]})
    event_id = herald.post_event({**COMMENT, "user_id": user})
    herald.wait_for_event(event_id, {"SUCCESS"})
    notification_id = f"{event_id}:sms:{user}"
    assert len(sandbox.messages(notification_id=notification_id)) == 1

    duplicate = NotificationMessage(
        notification_id=notification_id,
        event_id=event_id,
        event_type="comment",
        category=Category.activity,
        priority=Priority.normal,
        channel="sms",
        recipient_id=user,
        addresses=["+14155550102"],
        content={"text": "again"},
        created_at=iso(utcnow()),
    )
    herald.clients.sqs.send_message(
        QueueUrl=herald.clients.queue_url(f"{PREFIX}-sms-normal"),
        MessageBody=duplicate.model_dump_json(),
    )
    assert wait_until(lambda: herald.queue_depth("sms-normal") == 0, timeout=20)
    assert len(sandbox.messages(notification_id=notification_id)) == 1
    herald.assert_alive()

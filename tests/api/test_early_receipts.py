"""A receipt that arrives before its notification's SENT is written is not lost: the
webhook answers 503 with Retry-After (providers post again only after an error), applies
and remembers nothing, and the same receipt posted again once SENT is applied."""

from __future__ import annotations

from fastapi.testclient import TestClient

from core.catalogue.models import NotificationStatus
from core.ledger.outcome_records import RECORDED, Outcome
from tests.api.test_webhooks import client, notification, twilio_post  # noqa: F401
from tests.conftest import Stack
from tests.factories import claim, ledger_of, queue_notification


def test_a_receipt_before_sent_is_refused_for_a_retry_then_applied(
    client: TestClient,  # noqa: F811
    stack: Stack,
) -> None:
    ledger = ledger_of(stack)
    message = queue_notification(stack, ledger)
    held = claim(ledger, message)  # the provider took it; SENT is still being written
    assert held is not None
    receipt = {"MessageSid": "SM9", "MessageStatus": "delivered"}

    early = twilio_post(client, message.notification_id, receipt)

    assert early.status_code == 503 and early.headers["Retry-After"].isdigit()
    assert notification(client, message.notification_id)["status"] == "SENDING"
    sent = Outcome(message, held.token, NotificationStatus.SENT, "twilio", "SM9")
    assert ledger.outcomes.record_outcomes([sent]) == [RECORDED]
    again = twilio_post(client, message.notification_id, receipt)  # the provider's retry
    assert again.status_code == 200 and again.json() == {"updated": True, "replay": False}
    assert notification(client, message.notification_id)["status"] == "DELIVERED"


def test_a_receipt_for_no_such_notification_is_still_a_200(client: TestClient) -> None:  # noqa: F811
    resp = twilio_post(client, "e-404:sms:u-1", {"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert resp.status_code == 200 and resp.json()["updated"] is False

"""Delivery receipts: a valid signature updates the notification, a tampered one is a 403."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from api.main import create_app
from tests.api.test_dlq import deliver
from tests.conftest import AUTH, Stack
from tests.factories import OK, ScriptedNotifier, ledger_of, queue_notification

AUTH_TOKEN = "test-auth-token"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    SIGNING_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(
        update={"twilio_auth_token": AUTH_TOKEN, "sendgrid_webhook_public_key": PUBLIC_KEY}
    )
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as test_client:
        yield test_client


@pytest.fixture
def sent(stack: Stack) -> str:
    """A notification the provider took: SENT, waiting for its receipt."""
    ledger = ledger_of(stack)
    message = queue_notification(stack, ledger)
    deliver(stack, ledger, ScriptedNotifier(OK))
    return message.notification_id


def notification(client: TestClient, notification_id: str) -> dict[str, Any]:
    event = client.get(f"/events/{notification_id.split(':')[0]}").json()
    return dict(event["notifications"][0])


def twilio_post(
    client: TestClient, notification_id: str, params: dict[str, str], token: str = AUTH_TOKEN
):
    url = f"http://testserver/webhooks/twilio?{urlencode({'notification_id': notification_id})}"
    signature = RequestValidator(token).compute_signature(url, params)
    return client.post(
        url,
        content=urlencode(params),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


def test_twilio_receipt_with_a_valid_signature_marks_delivered(
    client: TestClient, sent: str
) -> None:
    resp = twilio_post(client, sent, {"MessageSid": "SM123", "MessageStatus": "delivered"})
    assert resp.status_code == 200 and resp.json() == {"updated": True, "replay": False}
    assert notification(client, sent)["status"] == "DELIVERED"


def test_twilio_undelivered_keeps_the_error_code(client: TestClient, sent: str) -> None:
    twilio_post(
        client, sent, {"MessageSid": "SM123", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    found = notification(client, sent)
    assert found["status"] == "UNDELIVERED"
    assert found["history"][-1] == {
        "status": "UNDELIVERED",
        "at": found["history"][-1]["at"],
        "detail": "twilio:30003",
    }


def test_twilio_receipt_signed_with_another_token_is_403(client: TestClient, sent: str) -> None:
    resp = twilio_post(
        client, sent, {"MessageSid": "SM123", "MessageStatus": "delivered"}, token="wrong"
    )
    assert resp.status_code == 403
    assert notification(client, sent)["status"] == "SENT"


def test_twilio_receipt_tampered_after_signing_is_403(client: TestClient, sent: str) -> None:
    url = f"http://testserver/webhooks/twilio?notification_id={sent}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {"MessageStatus": "delivered"})
    resp = client.post(
        url,
        content=urlencode({"MessageStatus": "undelivered"}),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert resp.status_code == 403
    assert notification(client, sent)["status"] == "SENT"


def sendgrid_post(client: TestClient, events: list[dict[str, Any]], tamper: bool = False):
    payload = json.dumps(events)
    timestamp = str(int(time.time()))
    signature = base64.b64encode(
        SIGNING_KEY.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    ).decode()
    body = payload.replace("delivered", "bounce") if tamper else payload
    return client.post(
        "/webhooks/sendgrid",
        content=body,
        headers={
            "content-type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    )


def test_sendgrid_signed_events_update_the_notification(client: TestClient, sent: str) -> None:
    events = [
        {"event": "processed", "notification_id": sent},
        {"event": "bounce", "notification_id": sent, "reason": "550 mailbox unavailable"},
    ]
    resp = sendgrid_post(client, events)
    assert resp.status_code == 200 and resp.json() == {"updated": 1, "replays": 0}
    found = notification(client, sent)
    assert found["status"] == "BOUNCED"
    assert found["history"][-1]["detail"] == "550 mailbox unavailable"


def test_sendgrid_tampered_payload_is_403_and_changes_nothing(
    client: TestClient, sent: str
) -> None:
    resp = sendgrid_post(client, [{"event": "delivered", "notification_id": sent}], tamper=True)
    assert resp.status_code == 403
    assert notification(client, sent)["status"] == "SENT"


def test_sendgrid_without_signature_is_403(client: TestClient) -> None:
    resp = client.post(
        "/webhooks/sendgrid", json=[{"event": "delivered", "notification_id": "a:b:c"}]
    )
    assert resp.status_code == 403


def test_sendgrid_reason_and_response_are_stored_masked(client: TestClient, sent: str) -> None:
    reason = "550 5.1.1 <ana.lopez@example.com>: Recipient address rejected; call +14155550123"
    events = [
        {"event": "bounce", "notification_id": sent, "reason": reason},
        {"event": "dropped", "notification_id": sent, "response": "ana.lopez@example.com"},
    ]
    assert sendgrid_post(client, events).status_code == 200
    found = notification(client, sent)
    details = " ".join(h.get("detail") or "" for h in found["history"])
    assert "a***@example.com" in details and "+***23" in details
    assert "ana.lopez" not in details and "4155550123" not in details


def test_a_replayed_twilio_callback_is_200_and_changes_nothing(
    client: TestClient, sent: str
) -> None:
    params = {"MessageSid": "SM123", "MessageStatus": "delivered"}
    assert twilio_post(client, sent, params).json() == {"updated": True, "replay": False}
    history = notification(client, sent)["history"]
    for _ in range(2):
        replay = twilio_post(client, sent, params)
        assert replay.status_code == 200
        assert replay.json() == {"updated": False, "replay": True}
    assert notification(client, sent)["history"] == history


def test_a_replayed_sendgrid_event_is_200_and_changes_nothing(
    client: TestClient, sent: str
) -> None:
    delivered = {"event": "delivered", "notification_id": sent, "sg_event_id": "sg-ev-1"}
    assert sendgrid_post(client, [delivered]).json() == {"updated": 1, "replays": 0}
    history = notification(client, sent)["history"]
    # The same event again, alone and twice within one post (a fresh, valid signature).
    assert sendgrid_post(client, [delivered, delivered]).json() == {"updated": 0, "replays": 2}
    assert notification(client, sent)["history"] == history


def test_sendgrid_events_without_an_id_are_recognised_by_their_content(
    client: TestClient, sent: str
) -> None:
    bounce = {"event": "bounce", "notification_id": sent, "reason": "550", "timestamp": 1}
    assert sendgrid_post(client, [bounce]).json() == {"updated": 1, "replays": 0}
    assert sendgrid_post(client, [bounce]).json() == {"updated": 0, "replays": 1}
    statuses = [h["status"] for h in notification(client, sent)["history"]]
    assert statuses.count("BOUNCED") == 1


def test_seen_receipt_ids_expire(client: TestClient, stack: Stack, sent: str) -> None:
    from core.ledger.receipts import receipt_key

    twilio_post(client, sent, {"MessageSid": "SM9", "MessageStatus": "delivered"})
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table, Key=receipt_key("twilio", "SM9:delivered")
    )["Item"]
    assert int(item["expires_at"]["N"]) > time.time()

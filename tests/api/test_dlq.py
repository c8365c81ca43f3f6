"""Dead letters through the API and the CLI: inspect without consuming, redrive, deliver."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.catalogue.models import NotificationMessage
from core.ledger.wiring import Ledger
from core.platform.errors import PermanentError
from listeners.batch import BatchSettler
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import QueueMessage
from tests.conftest import Stack
from tests.factories import OK, QUEUE, ScriptedNotifier, ledger_of, queue_notification


@pytest.fixture
def ledger(stack: Stack) -> Ledger:
    return ledger_of(stack)


def deliver(stack: Stack, ledger: Ledger, notifier: ScriptedNotifier) -> None:
    handler = DeliveryHandler(
        notifier=notifier,
        ledger=ledger,
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
    )
    try:
        batch = [QueueMessage.from_sqs(QUEUE, raw) for raw in stack.receive_all(QUEUE)]
        BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(batch, handler(batch))
    finally:
        handler.close()


def failed_notification(stack: Stack, ledger: Ledger) -> NotificationMessage:
    message = queue_notification(stack, ledger)
    deliver(
        stack, ledger, ScriptedNotifier(PermanentError("provider down for good", code="http:400"))
    )
    return message


def test_peek_shows_the_reason_and_consumes_nothing(
    client: TestClient, stack: Stack, ledger: Ledger
) -> None:
    message = failed_notification(stack, ledger)
    depths = {d["queue"]: d["depth"] for d in client.get("/dlq").json()}
    assert depths["sms-normal"] == 1 and depths["email-critical"] == 0
    for _ in range(2):
        peeked = client.get("/dlq/sms-normal/messages").json()
        assert len(peeked) == 1
        assert peeked[0]["error"] == "http:400: provider down for good"
        assert peeked[0]["source_queue"] == QUEUE
        assert peeked[0]["body"]["notification_id"] == message.notification_id
        assert peeked[0]["body"]["addresses"] == ["+*******0123"]


def test_redrive_requeues_and_the_notification_is_then_delivered(
    client: TestClient, stack: Stack, ledger: Ledger
) -> None:
    message = failed_notification(stack, ledger)
    assert client.get(f"/events/{message.event_id}").json()["status"] == "FAILED"

    result = client.post("/dlq/sms-normal/redrive").json()
    assert len(result["redriven"]) == 1 and result["notifications_requeued"] == 1
    assert client.get("/dlq/sms-normal/messages").json() == []

    event = client.get(f"/events/{message.event_id}").json()
    assert event["status"] == "PROCESSING" and event["counts"]["failed"] == 0
    statuses = [h["status"] for h in event["notifications"][0]["history"]]
    assert statuses == ["QUEUED", "SENDING", "FAILED", "QUEUED"]

    notifier = ScriptedNotifier(OK)
    deliver(stack, ledger, notifier)
    assert notifier.sent == [message.notification_id]
    event = client.get(f"/events/{message.event_id}").json()
    assert event["status"] == "SUCCESS" and event["notifications"][0]["status"] == "SENT"


def test_redrive_of_selected_ids_leaves_the_rest(
    client: TestClient, stack: Stack, ledger: Ledger
) -> None:
    failed_notification(stack, ledger)
    failed_notification(stack, ledger)
    peeked = client.get("/dlq/sms-normal/messages").json()
    assert len(peeked) == 2
    chosen = peeked[0]["message_id"]
    result = client.post(
        "/dlq/sms-normal/redrive", json={"message_ids": [chosen, "missing"]}
    ).json()
    assert result["redriven"] == [chosen] and result["not_found"] == ["missing"]
    assert [m["message_id"] for m in client.get("/dlq/sms-normal/messages").json()] == [
        peeked[1]["message_id"]
    ]


def test_unknown_queue_is_404(client: TestClient) -> None:
    resp = client.get("/dlq/fax-normal/messages")
    assert resp.status_code == 404 and "sms-normal" in resp.json()["message"]


def test_cli_lists_peeks_and_redrives(stack: Stack, ledger: Ledger) -> None:
    failed_notification(stack, ledger)

    depths = {d["queue"]: d["depth"] for d in stack.cli("listeners.dlq", "list")}
    assert depths["sms-normal"] == 1
    assert len(stack.cli("listeners.dlq", "peek", "sms-normal")) == 1
    assert len(stack.cli("listeners.dlq", "redrive", "sms-normal")["redriven"]) == 1
    assert len(stack.receive_all(QUEUE)) == 1

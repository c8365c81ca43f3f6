"""Whatever a caller hands the notification store, errors and history are stored masked."""

from __future__ import annotations

from core.catalogue.models import NotificationStatus
from core.ledger.outcome_records import RECORDED, Outcome
from tests.conftest import Stack
from tests.factories import claim, ledger_of, queue_notification

RAW = "The 'To' number +14155550123 is not valid; ana.lopez@example.com bounced"


def stored(stack: Stack, event_id: str) -> str:
    items = stack.clients.dynamodb.query(
        TableName=stack.clients.names.table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"EVENT#{event_id}"}},
    )["Items"]
    return str(items)


def test_errors_and_receipts_are_masked_when_stored(stack: Stack) -> None:
    ledger = ledger_of(stack)
    message = queue_notification(stack, ledger)
    first = claim(ledger, message, 30)
    assert first is not None
    assert ledger.transitions.mark_retrying(message, RAW, 5, first.token)
    second = claim(ledger, message, 30)  # the retry
    assert second is not None
    failed = Outcome(message, second.token, NotificationStatus.FAILED, error=RAW)
    assert ledger.outcomes.record_outcomes([failed]) == [RECORDED]
    text = stored(stack, message.event_id)
    assert "4155550123" not in text and "ana.lopez" not in text
    assert "+***23" in text and "a***@example.com" in text


def test_receipt_details_are_masked_when_stored(stack: Stack) -> None:
    ledger = ledger_of(stack)
    message = queue_notification(stack, ledger)
    held = claim(ledger, message, 30)
    assert held is not None
    sent = Outcome(message, held.token, NotificationStatus.SENT, "sendgrid", "msg-1")
    assert ledger.outcomes.record_outcomes([sent]) == [RECORDED]
    key = (message.event_id, message.channel, message.recipient_id)
    applied = ledger.receipts.apply("sendgrid", "r-1", 600, key, NotificationStatus.BOUNCED, RAW)
    assert applied.value == "updated"
    text = stored(stack, message.event_id)
    assert "4155550123" not in text and "ana.lopez" not in text

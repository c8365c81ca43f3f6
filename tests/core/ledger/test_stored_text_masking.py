"""Whatever a caller hands the notification store, errors and history are stored masked."""

from __future__ import annotations

from core.catalogue.models import NotificationStatus
from tests.conftest import Stack
from tests.factories import queue_notification, stores_of

RAW = "The 'To' number +14155550123 is not valid; ana.lopez@example.com bounced"


def stored(stack: Stack, event_id: str) -> str:
    items = stack.clients.dynamodb.query(
        TableName=stack.clients.names.table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"EVENT#{event_id}"}},
    )["Items"]
    return str(items)


def test_errors_and_receipts_are_masked_when_stored(stack: Stack) -> None:
    stores = stores_of(stack)
    _, notifications = stores
    message = queue_notification(stack, stores)
    assert notifications.claim(message, 30) is not None
    assert notifications.mark_retrying(message, RAW, 5)
    assert notifications.claim(message, 30) is not None
    assert notifications.mark_failed(message, RAW)
    text = stored(stack, message.event_id)
    assert "4155550123" not in text and "ana.lopez" not in text
    assert "+***23" in text and "a***@example.com" in text


def test_receipt_details_are_masked_when_stored(stack: Stack) -> None:
    stores = stores_of(stack)
    _, notifications = stores
    message = queue_notification(stack, stores)
    assert notifications.claim(message, 30) is not None
    notifications.mark_sent(message, "sendgrid", "msg-1")
    key = (message.event_id, message.channel, message.recipient_id)
    assert notifications.record_receipt(*key, status=NotificationStatus.BOUNCED, detail=RAW)
    text = stored(stack, message.event_id)
    assert "4155550123" not in text and "ana.lopez" not in text

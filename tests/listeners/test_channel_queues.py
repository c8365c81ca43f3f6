"""Enqueueing splits batches by size as well as by count: SQS refuses a SendMessageBatch
whose entries together are over 256 KiB, which ten large emails are."""

from __future__ import annotations

from typing import Any

from core.aws.names import ResourceNames
from core.catalogue.event_types import Category, Priority
from core.catalogue.models import NotificationMessage
from listeners.batch import SQS_BATCH_MAX_BYTES, entry_bytes
from listeners.channel_queues import ChannelQueues


class RecordingSqs:
    """Takes every entry and remembers each call's entries."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def email(index: int, text_bytes: int) -> NotificationMessage:
    return NotificationMessage(
        notification_id=f"e-1:email:u-{index}",
        event_id="e-1",
        event_type="comment",
        category=Category.activity,
        priority=Priority.normal,
        channel="email",
        recipient_id=f"u-{index}",
        addresses=[f"u{index}@example.com"],
        content={"subject": "Hi", "text": "x" * text_bytes, "html": "<p>hi</p>"},
        created_at="2024-05-01T09:30:00.000000Z",
    )


def enqueue(messages: list[NotificationMessage]) -> RecordingSqs:
    sqs = RecordingSqs()
    queues = ChannelQueues(sqs, lambda name: f"http://sqs/{name}", ResourceNames("herald-test"))
    assert queues.enqueue(messages) == len(messages)
    return sqs


def sent_ids(sqs: RecordingSqs) -> list[str]:
    return [
        e["MessageAttributes"]["notification_id"]["StringValue"] for call in sqs.calls for e in call
    ]


def test_large_notifications_are_sent_in_calls_under_the_size_limit() -> None:
    messages = [email(i, 60 * 1024) for i in range(10)]
    sqs = enqueue(messages)
    assert len(sqs.calls) > 1
    assert all(sum(entry_bytes(e) for e in call) <= SQS_BATCH_MAX_BYTES for call in sqs.calls)
    assert sent_ids(sqs) == [m.notification_id for m in messages]


def test_small_notifications_still_go_ten_to_a_call() -> None:
    messages = [email(i, 100) for i in range(25)]
    sqs = enqueue(messages)
    assert [len(call) for call in sqs.calls] == [10, 10, 5]
    assert sent_ids(sqs) == [m.notification_id for m in messages]

"""Putting queued notifications on their channel queues, ten to a SendMessageBatch.

A notification goes to `<prefix>-<channel>-<lane>`, lane from the event's priority, so a
critical alert never waits behind a backlog of likes at the workers either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.models import NotificationMessage
from core.names import ResourceNames
from listeners.batch import SQS_BATCH_MAX


class EnqueueFailed(Exception):
    """SQS refused some entries twice; the router message is retried, and its redelivery
    enqueues every record still QUEUED."""


def _entry(index: int, message: NotificationMessage) -> dict[str, Any]:
    attributes = {
        "priority": message.priority.value,
        "event_id": message.event_id,
        "notification_id": message.notification_id,
    }
    return {
        "Id": str(index),
        "MessageBody": message.model_dump_json(),
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        },
    }


class ChannelQueues:
    def __init__(self, sqs: Any, queue_url: Callable[[str], str], names: ResourceNames) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._names = names

    def queue_of(self, message: NotificationMessage) -> str:
        return self._names.channel_queue(message.channel, message.priority.lane)

    def enqueue(self, messages: Sequence[NotificationMessage]) -> int:
        """Send every message; returns how many. Raises EnqueueFailed if any is refused."""
        by_queue: dict[str, list[NotificationMessage]] = {}
        for message in messages:
            by_queue.setdefault(self.queue_of(message), []).append(message)
        for queue, queued in by_queue.items():
            url = self._queue_url(queue)
            for start in range(0, len(queued), SQS_BATCH_MAX):
                self._send_batch(url, queue, queued[start : start + SQS_BATCH_MAX])
        return len(messages)

    def _send_batch(self, url: str, queue: str, batch: Sequence[NotificationMessage]) -> None:
        pending = list(batch)
        for _ in range(2):  # a refused entry (throttled, internal error) gets one more try
            resp = self._sqs.send_message_batch(
                QueueUrl=url, Entries=[_entry(i, m) for i, m in enumerate(pending)]
            )
            failed = {int(f["Id"]) for f in resp.get("Failed", [])}
            pending = [m for i, m in enumerate(pending) if i in failed]
            if not pending:
                return
        raise EnqueueFailed(f"{len(pending)} notification(s) not accepted by {queue}")

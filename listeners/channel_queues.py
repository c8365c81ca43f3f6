"""Putting queued notifications on their channel queues, ten to a SendMessageBatch.

A notification goes to `<prefix>-<channel>-<lane>`, lane from the event's priority, so a
critical alert never waits behind a backlog of likes at the workers either.

A SendMessageBatch also has a size limit for all its entries together (256 KiB, as for
one message). Each notification fits one message (templates are bounded, see
docs/limits.md), but ten large emails do not fit one call, so a batch is closed early
when the next entry would take it over; otherwise SQS refuses the whole call, and the
router would retry it for ever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.aws.names import ResourceNames
from core.catalogue.models import NotificationMessage
from core.platform import tracing
from listeners.batch import entry_bytes, sized_chunks


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
            **{k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            **tracing.attributes(message.event_id),
        },
    }


def batches(messages: Sequence[NotificationMessage]) -> list[list[NotificationMessage]]:
    """Consecutive runs of messages, each small enough for one SendMessageBatch."""
    return sized_chunks(messages, lambda message: entry_bytes(_entry(0, message)))


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
            for batch in batches(queued):
                self._send_batch(url, queue, batch)
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

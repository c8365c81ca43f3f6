"""Queue messages and what a handler decides about each one.

A handler returns one result per message; the batch core turns the results into the fewest
SQS calls: one DeleteMessageBatch, one ChangeMessageVisibilityBatch, one SendMessageBatch
to the dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueueMessage:
    queue: str
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1
    attributes: dict[str, str] = field(default_factory=dict)
    """Message attributes with string values (priority, type, error...)."""

    @classmethod
    def from_sqs(cls, queue: str, raw: dict[str, Any]) -> QueueMessage:
        return cls(
            queue=queue,
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            attributes=_string_attributes(raw.get("MessageAttributes", {}), "StringValue"),
        )

    @classmethod
    def from_lambda_record(cls, record: dict[str, Any]) -> QueueMessage:
        """A record of an AWS Lambda SQS event (camelCase keys)."""
        return cls(
            queue=str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1],
            message_id=record["messageId"],
            receipt_handle=record.get("receiptHandle", ""),
            body=record.get("body", ""),
            receive_count=int(record.get("attributes", {}).get("ApproximateReceiveCount", 1)),
            attributes=_string_attributes(record.get("messageAttributes", {}), "stringValue"),
        )


def _string_attributes(raw: dict[str, Any], key: str) -> dict[str, str]:
    return {name: str(value[key]) for name, value in raw.items() if key in value}


@dataclass(frozen=True)
class Ack:
    """Done (or nothing to do): delete the message."""


@dataclass(frozen=True)
class Retry:
    """Not now: make the message visible again after `delay` seconds."""

    delay: int
    reason: str = ""


@dataclass(frozen=True)
class DeadLetter:
    """Cannot ever succeed: copy to the queue's DLQ with the reason, then delete."""

    reason: str


Result = Ack | Retry | DeadLetter

"""Inspecting and replaying dead-letter queues (the API and the CLI share this).

Redrive is receive → send to the source queue → delete, because moto (and older
LocalStack) lack StartMessageMoveTask. A redriven notification returns to QUEUED with its
history kept, and its event reopens if that failure had settled it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.aws import AwsClients
from core.event_store import EventStore
from core.masking import mask_address
from core.models import EventStatus, NotificationMessage, NotificationStatus
from core.notification_store import NotificationStore

DLQ_ATTRIBUTES = ("error", "source_queue", "receive_count")
PEEK_ROUNDS = 5
REDRIVE_VISIBILITY = 60


class UnknownQueue(LookupError):
    """Not one of Herald's work queues."""


@dataclass
class RedriveReport:
    redriven: list[str] = field(default_factory=list)
    notifications_requeued: int = 0
    not_found: list[str] = field(default_factory=list)


class DeadLetters:
    def __init__(
        self, clients: AwsClients, events: EventStore, notifications: NotificationStore
    ) -> None:
        self.clients = clients
        self.events = events
        self.notifications = notifications
        prefix = f"{clients.names.prefix}-"
        self.queues = {q.removeprefix(prefix): q for q in clients.names.work_queues()}

    def queue_name(self, short: str) -> str:
        """`sms-normal` → the full work queue name; the API speaks without the prefix."""
        try:
            return self.queues[short]
        except KeyError:
            raise UnknownQueue(
                f"unknown queue {short!r}; known: {', '.join(self.queues)}"
            ) from None

    def depths(self) -> list[dict[str, Any]]:
        out = []
        for short, queue in self.queues.items():
            dlq = self.clients.names.dlq_of(queue)
            attrs = self.clients.sqs.get_queue_attributes(
                QueueUrl=self.clients.queue_url(dlq),
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            out.append(
                {
                    "queue": short,
                    "dlq": dlq,
                    "depth": int(attrs.get("ApproximateNumberOfMessages", 0)),
                    "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                }
            )
        return out

    def _receive(self, dlq_url: str, visibility: int) -> list[dict[str, Any]]:
        resp = self.clients.sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(resp.get("Messages", []))

    def peek(self, short: str, limit: int = 10) -> list[dict[str, Any]]:
        """Read without consuming: received with visibility 0, so they stay in the queue."""
        url = self.clients.queue_url(self.clients.names.dlq_of(self.queue_name(short)))
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(PEEK_ROUNDS):
            fresh = [m for m in self._receive(url, 0) if m["MessageId"] not in seen]
            if not fresh:
                break
            for raw in fresh:
                seen[raw["MessageId"]] = describe(raw)
            if len(seen) >= limit:
                break
        return list(seen.values())[:limit]

    def redrive(self, short: str, message_ids: set[str] | None = None) -> RedriveReport:
        """Move all (or the selected) messages back to their source queue."""
        queue = self.queue_name(short)
        dlq_url = self.clients.queue_url(self.clients.names.dlq_of(queue))
        source_url = self.clients.queue_url(queue)
        report = RedriveReport()
        wanted = set(message_ids) if message_ids is not None else None
        passed_over: list[dict[str, Any]] = []
        while wanted is None or wanted:
            batch = self._receive(dlq_url, REDRIVE_VISIBILITY)
            if not batch:
                break
            for raw in batch:
                if wanted is not None and raw["MessageId"] not in wanted:
                    passed_over.append(raw)
                    continue
                self._redrive_one(raw, source_url, dlq_url, report)
                if wanted is not None:
                    wanted.discard(raw["MessageId"])
        self._release(dlq_url, passed_over)
        report.not_found = sorted(wanted or ())
        return report

    def _redrive_one(
        self, raw: dict[str, Any], source_url: str, dlq_url: str, report: RedriveReport
    ) -> None:
        notification = _notification(raw.get("Body", ""))
        if notification is not None:
            previous = self.notifications.status_of(notification)
            if self.notifications.requeue(notification, "redriven from the dead-letter queue"):
                report.notifications_requeued += 1
                if previous == NotificationStatus.FAILED:
                    self._reopen_event(notification.event_id)
        attributes = {
            k: v for k, v in raw.get("MessageAttributes", {}).items() if k not in DLQ_ATTRIBUTES
        }
        send: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": raw.get("Body", "")}
        if attributes:
            send["MessageAttributes"] = {
                k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                for k, v in attributes.items()
                if "StringValue" in v
            }
        self.clients.sqs.send_message(**send)
        self.clients.sqs.delete_message(
            QueueUrl=dlq_url,
            ReceiptHandle=raw["ReceiptHandle"],
        )
        report.redriven.append(raw["MessageId"])

    def _reopen_event(self, event_id: str) -> None:
        """The failure no longer counts: take it off the tally and reopen the event."""
        self.notifications.add_to_event(event_id, failed=-1)
        self.events.transition(event_id, EventStatus.FAILED, EventStatus.PROCESSING, reason="")

    def _release(self, dlq_url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ]
            self.clients.sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=entries)


def _notification(body: str) -> NotificationMessage | None:
    try:
        return NotificationMessage.model_validate_json(body)
    except ValidationError:
        return None


def describe(raw: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: v.get("StringValue") for k, v in raw.get("MessageAttributes", {}).items()}
    body_text = raw.get("Body", "")
    try:
        body: Any = json.loads(body_text)
    except ValueError:
        body = body_text
    if isinstance(body, dict) and isinstance(body.get("addresses"), list):
        body["addresses"] = [mask_address(str(a)) for a in body["addresses"]]
    return {
        "message_id": raw["MessageId"],
        "error": attributes.get("error"),
        "source_queue": attributes.get("source_queue"),
        "receive_count": attributes.get("receive_count")
        or raw.get("Attributes", {}).get("ApproximateReceiveCount"),
        "sent_at": raw.get("Attributes", {}).get("SentTimestamp"),
        "body": body,
    }

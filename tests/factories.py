"""Builders shared by tests: events and notifications in the store, messages on queues, and
a scripted notifier."""

from __future__ import annotations

import threading
import uuid

from core.catalogue.event_types import Category, Priority
from core.catalogue.models import (
    DeliveryResult,
    Event,
    EventStatus,
    NotificationMessage,
    iso,
    utcnow,
)
from core.ledger.event_store import EventStore
from core.ledger.notification_store import NewNotification, NotificationStore
from tests.conftest import Stack

QUEUE = "herald-test-sms-normal"
OK = DeliveryResult(provider="twilio", provider_message_id="SM123")
Stores = tuple[EventStore, NotificationStore]


class ScriptedNotifier:
    """Answers each send with the next scripted outcome (an exception is raised)."""

    channel = "sms"

    def __init__(self, *outcomes: DeliveryResult | Exception) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def send(self, notification: NotificationMessage) -> DeliveryResult:
        with self.lock:
            self.sent.append(notification.notification_id)
            outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def stores_of(stack: Stack) -> Stores:
    table = stack.clients.names.table
    return EventStore(stack.clients.dynamodb, table), NotificationStore(
        stack.clients.dynamodb, table
    )


def processing_event(
    events: EventStore, *, topic: str | None = None, user_id: str = "u-1"
) -> Event:
    """A recorded event the router has taken (PROCESSING): a follow, or a trend to `topic`."""
    if topic is None:
        event = Event(
            event_id=str(uuid.uuid4()),
            type="follow",
            category=Category.activity,
            priority=Priority.normal,
            user_id=user_id,
            data={"actor": "A"},
            created_at=iso(utcnow()),
        )
    else:
        event = Event(
            event_id=str(uuid.uuid4()),
            type="trend.top_artist_changed",
            category=Category.trend,
            priority=Priority.normal,
            topic=topic,
            data={"chart": "Top 50", "artist": "Nova"},
            created_at=iso(utcnow()),
        )
    events.put_new(events.new_record(event))
    assert events.transition(event.event_id, EventStatus.START, EventStatus.PROCESSING)
    return event


def notification(
    event: Event,
    recipient: str = "u-1",
    channel: str = "sms",
    addresses: list[str] | None = None,
    content: dict[str, str] | None = None,
) -> NotificationMessage:
    return NotificationMessage(
        notification_id=f"{event.event_id}:{channel}:{recipient}",
        event_id=event.event_id,
        event_type=event.type,
        category=event.category,
        priority=event.priority,
        channel=channel,
        recipient_id=recipient,
        addresses=addresses or ["+14155550123"],
        content=content or {"text": "A followed you"},
        created_at=iso(utcnow()),
    )


def queue_notification(stack: Stack, stores: Stores, queue: str = QUEUE) -> NotificationMessage:
    """One SMS notification of a follow event: recorded, counted and on `queue`."""
    events, notifications = stores
    message = notification(processing_event(events))
    notifications.create([NewNotification(message)])
    notifications.add_to_event(message.event_id, total=1, fanout_complete=True)
    stack.clients.sqs.send_message(
        QueueUrl=stack.clients.queue_url(queue), MessageBody=message.model_dump_json()
    )
    return message

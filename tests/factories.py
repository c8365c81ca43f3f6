"""Builders shared by tests: records in the store, messages on queues, a scripted notifier."""

from __future__ import annotations

import threading
import uuid

from core.catalogue import Category, Priority
from core.event_store import EventStore
from core.models import DeliveryResult, Event, EventStatus, NotificationMessage, iso, utcnow
from core.notification_store import NewNotification, NotificationStore
from tests.conftest import Stack

QUEUE = "herald-test-sms-normal"
OK = DeliveryResult(provider="twilio", provider_message_id="SM123")


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


def queue_notification(
    stack: Stack, stores: tuple[EventStore, NotificationStore], queue: str = QUEUE
) -> NotificationMessage:
    events, notifications = stores
    event = Event(
        event_id=str(uuid.uuid4()),
        type="follow",
        category=Category.activity,
        priority=Priority.normal,
        user_id="u-1",
        data={"actor": "A"},
        created_at=iso(utcnow()),
    )
    events.put_new(events.new_record(event))
    events.transition(event.event_id, EventStatus.START, EventStatus.PROCESSING)
    message = NotificationMessage(
        notification_id=f"{event.event_id}:sms:u-1",
        event_id=event.event_id,
        event_type="follow",
        category=Category.activity,
        priority=Priority.normal,
        channel="sms",
        recipient_id="u-1",
        addresses=["+14155550123"],
        content={"text": "A followed you"},
        created_at=iso(utcnow()),
    )
    notifications.create([NewNotification(message)])
    notifications.add_to_event(event.event_id, total=1, fanout_complete=True)
    stack.clients.sqs.send_message(
        QueueUrl=stack.clients.queue_url(queue), MessageBody=message.model_dump_json()
    )
    return message

"""Builders shared by tests: events and notifications in the store in the states production
writes them (recorded, routed with their counts), messages on queues, and a scripted
notifier."""

from __future__ import annotations

import threading
import uuid

from core.aws.dynamo import notification_sk
from core.catalogue.event_types import Category, Priority
from core.catalogue.models import (
    DeliveryResult,
    Event,
    EventStatus,
    NotificationMessage,
    iso,
    utcnow,
)
from core.ledger.notification_records import NewNotification
from core.ledger.record_transitions import Claim
from core.ledger.wiring import Ledger, build_ledger
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


def ledger_of(stack: Stack) -> Ledger:
    """The stack's ledger, composed as every Herald process composes it."""
    return build_ledger(stack.clients.dynamodb, stack.clients.names.table)


def record(ledger: Ledger, event: Event) -> None:
    """Record `event` (START) as the API does."""
    writes = ledger.event_writes
    assert writes.put_new_batch([writes.new_record(event)]) == [None]


def recorded_event(ledger: Ledger, *, topic: str | None = None, user_id: str = "u-1") -> Event:
    """A recorded event (START): a follow for `user_id`, or a trend to `topic`."""
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
    record(ledger, event)
    return event


def processing_event(ledger: Ledger, *, topic: str | None = None, user_id: str = "u-1") -> Event:
    """A recorded event the router has taken (PROCESSING), nothing routed yet."""
    event = recorded_event(ledger, topic=topic, user_id=user_id)
    assert ledger.event_status.transition(event.event_id, EventStatus.START, EventStatus.PROCESSING)
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


def self_counted(messages: list[NotificationMessage]) -> list[NotificationMessage]:
    """The messages of one user's event as the planner makes them: each lists every record
    of the event, which are then its tally (`core.ledger.record_counts`)."""
    listed = [notification_sk(m.channel, m.recipient_id) for m in messages]
    return [m.model_copy(update={"counted_records": listed}) for m in messages]


def routed(ledger: Ledger, messages: list[NotificationMessage]) -> list[NotificationMessage]:
    """Route the messages of one recorded event as the router routes a user's event: its
    records listed on the event (created by their first claim), the event PROCESSING with
    its fan-out complete, in one write. Returns the messages as routed."""
    listed = self_counted(messages)
    assert ledger.creation.create_routed([[NewNotification(m) for m in listed]]) == set()
    return listed


def counted(ledger: Ledger, messages: list[NotificationMessage]) -> None:
    """Create and count records of a PROCESSING event page by page as the router does for
    a topic, then mark its fan-out complete."""
    created = ledger.creation.create_counted([NewNotification(m) for m in messages])
    assert len(created.created) == len(messages)
    ledger.settlement.add_and_settle(messages[0].event_id, fanout_complete=True)


def claim(ledger: Ledger, message: NotificationMessage, lease_seconds: float = 60) -> Claim | None:
    """A worker's claim of one record: the Claim, or None when the record was not ours."""
    outcome = ledger.transitions.claim_many([message], lease_seconds)[0]
    return outcome if isinstance(outcome, Claim) else None


def queue_notification(stack: Stack, ledger: Ledger, queue: str = QUEUE) -> NotificationMessage:
    """One SMS notification of a follow event: routed as the router routes it, and on
    `queue`."""
    (message,) = routed(ledger, [notification(recorded_event(ledger))])
    stack.clients.sqs.send_message(
        QueueUrl=stack.clients.queue_url(queue), MessageBody=message.model_dump_json()
    )
    return message

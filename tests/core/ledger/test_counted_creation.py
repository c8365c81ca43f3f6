"""Notification records created and counted on their event in one transaction per chunk."""

from __future__ import annotations

import pytest

from core.catalogue.models import Event, EventStatus, NotificationStatus
from core.ledger.notification_store import CHUNK_MAX, EventNotFound, NewNotification
from tests.conftest import Stack
from tests.factories import notification, processing_event, stores_of


def new(event: Event, recipient: str, status: NotificationStatus) -> NewNotification:
    message = notification(
        event,
        recipient,
        "email",
        addresses=[f"{recipient}@example.com"],
        content={"subject": "s", "text": "t"},
    )
    reason = None if status is NotificationStatus.QUEUED else "why"
    return NewNotification(message, status, reason)


def mixed(event: Event, count: int) -> list[NewNotification]:
    statuses = [NotificationStatus.QUEUED, NotificationStatus.SKIPPED, NotificationStatus.FAILED]
    return [new(event, f"u-{i:03d}", statuses[i % 3]) for i in range(count)]


def test_each_record_is_counted_exactly_once_whatever_overlaps(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events, topic="charts")
    event_id = event.event_id
    first = notifications.create_counted(mixed(event, 4))
    assert len(first.created) == 4 and first.existing == {}

    # A second router (a duplicate publish) with an overlapping set: the transaction is
    # cancelled for the 4 that exist and retried without them.
    second = notifications.create_counted(mixed(event, 7))
    assert [n.message.recipient_id for n in second.created] == ["u-004", "u-005", "u-006"]
    assert second.existing == {
        f"{event_id}:email:u-000": "QUEUED",
        f"{event_id}:email:u-001": "SKIPPED",
        f"{event_id}:email:u-002": "FAILED",
        f"{event_id}:email:u-003": "QUEUED",
    }
    # A redelivery reads first and writes nothing.
    third = notifications.create_counted(mixed(event, 7), redelivered=True)
    assert third.created == [] and len(third.existing) == 7

    record, stored = events.get(event_id) or (None, [])
    assert record is not None and len(stored) == 7
    assert record.counts.model_dump() == {"total": 7, "sent": 0, "failed": 2, "skipped": 2}


def test_chunks_beyond_one_transaction_are_each_atomic(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events, topic="charts")
    event_id = event.event_id
    batch = [new(event, f"u-{i:03d}", NotificationStatus.SKIPPED) for i in range(CHUNK_MAX + 2)]
    assert len(notifications.create_counted(batch).created) == CHUNK_MAX + 2
    assert notifications.add_to_event(event_id, fanout_complete=True) is EventStatus.SUCCESS
    record = events.get(event_id)
    assert record is not None
    assert record[0].counts.total == record[0].counts.skipped == CHUNK_MAX + 2


def test_records_of_a_missing_event_are_not_created(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    ghost = processing_event(events, topic="charts").model_copy(
        update={"event_id": "no-such-event"}
    )
    with pytest.raises(EventNotFound):
        notifications.create_counted([new(ghost, "u-1", NotificationStatus.QUEUED)])
    assert events.get("no-such-event") is None


def test_continuations_are_remembered_per_page(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events, topic="charts")
    event_id = event.event_id
    assert not notifications.continuation_sent(event_id, 1)
    notifications.mark_continuation_sent(event_id, 1)
    notifications.mark_continuation_sent(event_id, 1)
    assert notifications.continuation_sent(event_id, 1)
    assert not notifications.continuation_sent(event_id, 2)
    notifications.mark_continuation_sent("no-such-event", 1)  # no stray item is created
    assert events.get("no-such-event") is None

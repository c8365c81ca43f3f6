"""Notification records created and counted on their event in one transaction per chunk."""

from __future__ import annotations

import pytest

from core.catalogue.models import Event, EventStatus, NotificationStatus
from core.ledger.notification_records import EventNotFound, NewNotification
from core.ledger.record_creation import CHUNK_MAX
from tests.conftest import Stack
from tests.factories import ledger_of, notification, processing_event


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
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="charts")
    event_id = event.event_id
    first = ledger.creation.create_counted(mixed(event, 4))
    assert len(first.created) == 4 and first.existing == {}

    # A second router (a duplicate publish) with an overlapping set: the transaction is
    # cancelled for the 4 that exist and retried without them.
    second = ledger.creation.create_counted(mixed(event, 7))
    assert [n.message.recipient_id for n in second.created] == ["u-004", "u-005", "u-006"]
    assert second.existing == {
        f"{event_id}:email:u-000": "QUEUED",
        f"{event_id}:email:u-001": "SKIPPED",
        f"{event_id}:email:u-002": "FAILED",
        f"{event_id}:email:u-003": "QUEUED",
    }
    # A redelivery reads first and writes nothing.
    third = ledger.creation.create_counted(mixed(event, 7), redelivered=True)
    assert third.created == [] and len(third.existing) == 7

    record, stored = ledger.event_reads.get(event_id) or (None, [])
    assert record is not None and len(stored) == 7
    assert record.counts.model_dump() == {"total": 7, "sent": 0, "failed": 2, "skipped": 2}


def test_chunks_beyond_one_transaction_are_each_atomic(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="charts")
    event_id = event.event_id
    batch = [new(event, f"u-{i:03d}", NotificationStatus.SKIPPED) for i in range(CHUNK_MAX + 2)]
    assert len(ledger.creation.create_counted(batch).created) == CHUNK_MAX + 2
    assert ledger.settlement.add_and_settle(event_id, fanout_complete=True) is EventStatus.SUCCESS
    record = ledger.event_reads.get(event_id)
    assert record is not None
    assert record[0].counts.total == record[0].counts.skipped == CHUNK_MAX + 2


def test_records_of_a_missing_event_are_not_created(stack: Stack) -> None:
    ledger = ledger_of(stack)
    ghost = processing_event(ledger, topic="charts").model_copy(
        update={"event_id": "no-such-event"}
    )
    with pytest.raises(EventNotFound):
        ledger.creation.create_counted([new(ghost, "u-1", NotificationStatus.QUEUED)])
    assert ledger.event_reads.get("no-such-event") is None


def test_continuations_are_remembered_per_page(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="charts")
    event_id = event.event_id
    assert not ledger.tally.continuation_sent(event_id, 1)
    ledger.tally.mark_continuation_sent(event_id, 1)
    ledger.tally.mark_continuation_sent(event_id, 1)
    assert ledger.tally.continuation_sent(event_id, 1)
    assert not ledger.tally.continuation_sent(event_id, 2)
    ledger.tally.mark_continuation_sent("no-such-event", 1)  # no stray item is created
    assert ledger.event_reads.get("no-such-event") is None

"""Batched transitions: a batch's claims and SENT marks in one transaction, and a receive's
single-user events created, counted and completed in one."""

from __future__ import annotations

from typing import Any

from core.models import EventStatus, NotificationStatus
from core.notification_store import Claim, NewNotification
from tests.conftest import Stack
from tests.factories import notification, processing_event, stores_of


class CountingDb:
    """The DynamoDB client, counting calls per operation."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._db, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def test_a_batch_is_claimed_in_one_call_and_a_moved_on_record_says_why(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events)
    messages = [notification(event, recipient=f"u-{i}") for i in range(4)]
    notifications.create([NewNotification(m) for m in messages])
    assert notifications.claim(messages[2], lease_seconds=60) is not None  # another worker's
    db = CountingDb(stack.clients.dynamodb)
    notifications._db = db

    claims = notifications.claim_many(messages, lease_seconds=60)

    assert [isinstance(c, Claim) for c in claims] == [True, True, False, True]
    assert claims[2] == NotificationStatus.SENDING
    assert db.calls == {"transact_write_items": 2}  # cancelled once, then without u-2
    assert notifications.attempts_of(messages[0]) == 1
    assert notifications.status_of(messages[0]) == NotificationStatus.SENDING


def test_sent_marks_of_a_batch_skip_records_that_are_no_longer_sending(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events)
    messages = [notification(event, recipient=f"u-{i}") for i in range(3)]
    notifications.create([NewNotification(m) for m in messages])
    notifications.claim_many(messages[:2], lease_seconds=60)  # u-2 never claimed

    marked = notifications.mark_sent_many([(m, "twilio", f"SM{i}") for i, m in enumerate(messages)])

    assert marked == [True, True, False]
    assert notifications.status_of(messages[1]) == NotificationStatus.SENT
    assert notifications.status_of(messages[2]) == NotificationStatus.QUEUED


def test_a_receives_events_are_created_counted_and_completed_in_one_transaction(
    stack: Stack,
) -> None:
    events, notifications = stores_of(stack)
    first, second = processing_event(events, user_id="u-1"), processing_event(events, user_id="u-2")
    # The router moves START → PROCESSING itself; PROCESSING (a retried try) is accepted too.
    assert events.transition(first.event_id, EventStatus.PROCESSING, EventStatus.START)
    plans = [
        [
            NewNotification(notification(first, "u-1", "sms")),
            NewNotification(notification(first, "u-1", "email"), NotificationStatus.SKIPPED, "x"),
        ],
        [NewNotification(notification(second, "u-2", "sms"))],
    ]
    db = CountingDb(stack.clients.dynamodb)
    notifications._db = db

    assert notifications.create_routed(plans)

    assert db.calls == {"transact_write_items": 1}
    record, items = events.get(first.event_id) or (None, [])
    assert record is not None and record.status is EventStatus.PROCESSING
    assert record.counts.total == 2 and record.counts.skipped == 1 and len(items) == 2
    # Nothing left to send but the SMS: one sent count settles the event.
    assert notifications.add_to_event(first.event_id, sent=1) is EventStatus.SUCCESS
    assert notifications.add_to_event(second.event_id, sent=1) is EventStatus.SUCCESS


def test_routing_again_writes_nothing_when_any_record_exists(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    first, second = processing_event(events, user_id="u-1"), processing_event(events, user_id="u-2")
    existing = notification(second, "u-2", "sms")
    notifications.create([NewNotification(existing)])

    assert not notifications.create_routed(
        [[NewNotification(notification(first, "u-1", "sms"))], [NewNotification(existing)]]
    )

    record, items = events.get(first.event_id) or (None, [])
    assert record is not None and record.counts.total == 0 and items == []

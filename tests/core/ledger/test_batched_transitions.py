"""Batched transitions: a batch's claims and SENT marks in one transaction, and a receive's
single-user events created, counted and completed in one."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.notification_store import Claim, NewNotification
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

    assert notifications.create_routed(plans) == set()

    assert db.calls == {"transact_write_items": 1}
    record, items = events.get(first.event_id) or (None, [])
    assert record is not None and record.status is EventStatus.PROCESSING
    assert record.counts.total == 2 and record.counts.skipped == 1 and len(items) == 2
    # Nothing left to send but the SMS: one sent count settles the event.
    assert notifications.add_to_event(first.event_id, sent=1) is EventStatus.SUCCESS
    assert notifications.add_to_event(second.event_id, sent=1) is EventStatus.SUCCESS


def test_an_event_whose_record_exists_is_handed_back_and_the_others_routed(
    stack: Stack,
) -> None:
    events, notifications = stores_of(stack)
    first, second = processing_event(events, user_id="u-1"), processing_event(events, user_id="u-2")
    existing = notification(second, "u-2", "sms")
    notifications.create([NewNotification(existing)])
    db = CountingDb(stack.clients.dynamodb)
    notifications._db = db

    refused = notifications.create_routed(
        [[NewNotification(notification(first, "u-1", "sms"))], [NewNotification(existing)]]
    )

    assert refused == {1}  # the second goes the one-event path, which reads first
    assert db.calls == {"transact_write_items": 2}  # refused once, then the rest together
    routed, items = events.get(first.event_id) or (None, [])
    assert routed is not None and routed.status is EventStatus.PROCESSING
    assert routed.counts.total == 1 and len(items) == 1
    untouched, _ = events.get(second.event_id) or (None, [])
    assert untouched is not None and untouched.counts.total == 0


class ConflictsFirst:
    """A DynamoDB client whose first `times` transactions are cancelled for a conflict with
    another writer, as DynamoDB does under contention: nothing applied, no item refused."""

    def __init__(self, db: Any, times: int) -> None:
        self._db = db
        self.left = times
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.left:
            self.left -= 1
            reasons = [{"Code": "None"}] * (len(kwargs["TransactItems"]) - 1)
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}, *reasons],
                },
                "TransactWriteItems",
            )
        return self._db.transact_write_items(**kwargs)


def test_a_conflict_is_tried_again_not_sent_down_the_slow_path(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    first, second = processing_event(events, user_id="u-1"), processing_event(events, user_id="u-2")
    db = ConflictsFirst(stack.clients.dynamodb, times=2)
    notifications._db = db
    plans = [
        [NewNotification(notification(first, "u-1", "sms"))],
        [NewNotification(notification(second, "u-2", "sms"))],
    ]

    assert notifications.create_routed(plans) == set()

    assert db.calls == 3
    for event in (first, second):
        record, items = events.get(event.event_id) or (None, [])
        assert record is not None and record.status is EventStatus.PROCESSING
        assert record.counts.total == 1 and len(items) == 1


def test_conflicts_that_do_not_end_raise_for_the_message_to_retry(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events, user_id="u-1")
    notifications._db = ConflictsFirst(stack.clients.dynamodb, times=100)

    with pytest.raises(ClientError):
        notifications.create_routed([[NewNotification(notification(event, "u-1", "sms"))]])

    record, items = events.get(event.event_id) or (None, [])
    assert record is not None and record.counts.total == 0 and items == []

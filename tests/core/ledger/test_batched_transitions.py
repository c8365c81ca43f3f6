"""Batched transitions: a batch's claims and outcomes in one transaction, and a receive's
single-user events created, counted and completed in one."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.notification_records import NewNotification
from core.ledger.outcome_records import LOST, RECORDED, Outcome
from core.ledger.record_transitions import Claim
from core.ledger.wiring import build_ledger
from tests.conftest import Stack
from tests.factories import claim, ledger_of, notification, processing_event, recorded_event, routed


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
    ledger = ledger_of(stack)
    event = recorded_event(ledger)
    messages = routed(ledger, [notification(event, recipient=f"u-{i}") for i in range(4)])
    assert claim(ledger, messages[2]) is not None  # another worker's
    db = CountingDb(stack.clients.dynamodb)
    counting = build_ledger(db, stack.clients.names.table)

    claims = counting.transitions.claim_many(messages, lease_seconds=60)

    assert [isinstance(c, Claim) for c in claims] == [True, True, False, True]
    assert claims[2] == NotificationStatus.SENDING
    assert db.calls == {"transact_write_items": 2}  # cancelled once, then without u-2
    assert ledger.transitions.attempts_of(messages[0]) == 1
    assert ledger.transitions.status_of(messages[0]) == NotificationStatus.SENDING


def test_outcomes_of_a_batch_skip_records_their_claim_does_not_hold(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = recorded_event(ledger)
    messages = routed(ledger, [notification(event, recipient=f"u-{i}") for i in range(3)])
    claims = ledger.transitions.claim_many(messages[:2], lease_seconds=60)  # u-2 never claimed
    token = claims[0].token if isinstance(claims[0], Claim) else ""
    sent = [
        Outcome(m, token, NotificationStatus.SENT, "twilio", f"SM{i}")
        for i, m in enumerate(messages)
    ]

    assert ledger.outcomes.record_outcomes(sent) == [RECORDED, RECORDED, LOST]

    assert ledger.transitions.status_of(messages[1]) == NotificationStatus.SENT
    _, records = ledger.event_reads.get(event.event_id) or (None, [])
    shown = {r["recipient_id"]: r["status"] for r in records}
    assert shown == {"u-0": "SENT", "u-1": "SENT", "u-2": "QUEUED"}  # u-2 awaits its claim


def test_a_receives_events_are_created_counted_and_completed_in_one_transaction(
    stack: Stack,
) -> None:
    ledger = ledger_of(stack)
    first, second = processing_event(ledger, user_id="u-1"), processing_event(ledger, user_id="u-2")
    # The router moves START → PROCESSING itself; PROCESSING (a retried try) is accepted too.
    assert ledger.event_status.transition(first.event_id, EventStatus.PROCESSING, EventStatus.START)
    plans = [
        [
            NewNotification(notification(first, "u-1", "sms")),
            NewNotification(notification(first, "u-1", "email"), NotificationStatus.SKIPPED, "x"),
        ],
        [NewNotification(notification(second, "u-2", "sms"))],
    ]
    db = CountingDb(stack.clients.dynamodb)
    counting = build_ledger(db, stack.clients.names.table)

    assert counting.creation.create_routed(plans) == set()

    assert db.calls == {"transact_write_items": 1}
    record, items = ledger.event_reads.get(first.event_id) or (None, [])
    assert record is not None and record.status is EventStatus.PROCESSING
    assert record.counts.total == 2 and record.counts.skipped == 1 and len(items) == 2
    # Nothing left to send but the SMS: one sent count settles the event.
    assert ledger.settlement.add_and_settle(first.event_id, sent=1) is EventStatus.SUCCESS
    assert ledger.settlement.add_and_settle(second.event_id, sent=1) is EventStatus.SUCCESS


def test_an_event_whose_record_exists_is_handed_back_and_the_others_routed(
    stack: Stack,
) -> None:
    ledger = ledger_of(stack)
    first, second = processing_event(ledger, user_id="u-1"), processing_event(ledger, user_id="u-2")
    existing = notification(second, "u-2", "sms")
    # An earlier try of the second event's routing created (and counted) its record.
    ledger.creation.create_counted([NewNotification(existing)])
    db = CountingDb(stack.clients.dynamodb)
    counting = build_ledger(db, stack.clients.names.table)

    refused = counting.creation.create_routed(
        [[NewNotification(notification(first, "u-1", "sms"))], [NewNotification(existing)]]
    )

    assert refused == {1}  # the second goes the one-event path, which reads first
    assert db.calls == {"transact_write_items": 2}  # refused once, then the rest together
    done, items = ledger.event_reads.get(first.event_id) or (None, [])
    assert done is not None and done.status is EventStatus.PROCESSING
    assert done.counts.total == 1 and len(items) == 1
    untouched, _ = ledger.event_reads.get(second.event_id) or (None, [])
    assert untouched is not None and untouched.counts.total == 1  # not counted twice


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
    ledger = ledger_of(stack)
    first, second = processing_event(ledger, user_id="u-1"), processing_event(ledger, user_id="u-2")
    db = ConflictsFirst(stack.clients.dynamodb, times=2)
    conflicted = build_ledger(db, stack.clients.names.table)
    plans = [
        [NewNotification(notification(first, "u-1", "sms"))],
        [NewNotification(notification(second, "u-2", "sms"))],
    ]

    assert conflicted.creation.create_routed(plans) == set()

    assert db.calls == 3
    for event in (first, second):
        record, items = ledger.event_reads.get(event.event_id) or (None, [])
        assert record is not None and record.status is EventStatus.PROCESSING
        assert record.counts.total == 1 and len(items) == 1


def test_conflicts_that_do_not_end_raise_for_the_message_to_retry(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = processing_event(ledger, user_id="u-1")
    conflicted = build_ledger(
        ConflictsFirst(stack.clients.dynamodb, times=100), stack.clients.names.table
    )

    with pytest.raises(ClientError):
        conflicted.creation.create_routed([[NewNotification(notification(event, "u-1", "sms"))]])

    record, items = ledger.event_reads.get(event.event_id) or (None, [])
    assert record is not None and record.counts.total == 0 and items == []

"""Receipts are the one thing a record takes without bound (a message opened or clicked
again and again): past HISTORY_MAX entries they still move the status, and are counted
instead of appended."""

from __future__ import annotations

from typing import Any

from core.aws import dynamo
from core.catalogue.models import NotificationStatus
from core.ledger.notification_records import HISTORY_MAX, history_entry, record_key
from core.ledger.outcome_records import RECORDED
from core.ledger.outcome_records import Outcome as SendOutcome
from core.ledger.receipts import Outcome
from tests.conftest import Stack
from tests.factories import claim, ledger_of, notification, recorded_event, routed


def sent_record(stack: Stack, history: int) -> tuple[str, str, str]:
    """A record routed, claimed and SENT, whose history already holds `history` entries
    (as if that many receipts had come)."""
    ledger = ledger_of(stack)
    (message,) = routed(ledger, [notification(recorded_event(ledger))])
    held = claim(ledger, message)
    assert held is not None
    sent = SendOutcome(message, held.token, NotificationStatus.SENT, "sendgrid", "msg-1")
    assert ledger.outcomes.record_outcomes([sent]) == [RECORDED]
    stack.clients.dynamodb.update_item(
        TableName=stack.clients.names.table,
        Key=record_key(message.event_id, message.channel, message.recipient_id),
        UpdateExpression="SET history = :h",
        ExpressionAttributeValues={
            ":h": {"L": [history_entry("SENT", f"entry {i}") for i in range(history)]},
        },
    )
    return message.event_id, message.channel, message.recipient_id


def stored(stack: Stack, ids: tuple[str, str, str]) -> dict[str, Any]:
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table, Key=record_key(*ids), ConsistentRead=True
    )["Item"]
    return dynamo.from_item(item)


def test_receipts_past_a_full_history_are_counted_not_appended(stack: Stack) -> None:
    ledger = ledger_of(stack).receipts
    ids = sent_record(stack, HISTORY_MAX - 2)
    outcomes = [
        ledger.apply("sendgrid", f"open-{i}", 600, ids, NotificationStatus.DELIVERED, f"open {i}")
        for i in range(5)
    ]
    assert outcomes == [Outcome.UPDATED] * 5
    record = stored(stack, ids)
    assert len(record["history"]) == HISTORY_MAX
    assert record["history"][-1]["detail"] == "open 1"
    assert record["history_dropped"] == 3
    assert record["last_receipt"]["detail"] == "open 4"
    assert record["status"] == "DELIVERED"
    # A replay is still a replay, full history or not.
    replay = ledger.apply("sendgrid", "open-4", 600, ids, NotificationStatus.DELIVERED, "again")
    assert replay is Outcome.REPLAY
    assert stored(stack, ids)["history_dropped"] == 3


def test_a_receipt_for_a_record_that_takes_none_changes_nothing(stack: Stack) -> None:
    ledger = ledger_of(stack).receipts
    ids = sent_record(stack, HISTORY_MAX)
    stack.clients.dynamodb.update_item(
        TableName=stack.clients.names.table,
        Key=record_key(*ids),
        UpdateExpression="SET #s = :q",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":q": {"S": "FAILED"}},
    )
    outcome = ledger.apply("twilio", "SM1:delivered", 600, ids, NotificationStatus.DELIVERED, None)
    assert outcome is Outcome.UNCHANGED  # (one still before SENT is EARLY: test_early_receipts)
    assert "history_dropped" not in stored(stack, ids)

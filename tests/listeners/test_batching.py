"""A receive costs the router and the workers a few requests, not a few per message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from core.aws.clients import AwsClients, CallLog
from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.event_tally import EventTally
from core.ledger.outcome_records import OutcomeRecords
from core.ledger.settlement import Settlement
from core.ledger.wiring import Ledger
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import Ack, QueueMessage
from listeners.router import Router
from tests.conftest import Stack
from tests.factories import (
    OK,
    ScriptedNotifier,
    counted,
    ledger_of,
    notification,
    processing_event,
)
from tests.listeners.test_router import (
    COMMENT,
    MIDDAY_TOKYO,
    PER_EVENT,
    ROUTER_NORMAL,
    add_user,
    drain,
    post_event,
    receive,
    stored,
)


def calls_since(log: CallLog, before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for service, ops in log.counts.items():
        for op, count in ops.items():
            delta = count - before.get(service, {}).get(op, 0)
            if delta and op != "GetQueueUrl":
                out.setdefault(service, {})[op] = delta
    return out


def test_a_receive_of_user_events_is_routed_with_one_read_and_one_transaction(
    stack: Stack, tmp_path: Path
) -> None:
    settings = stack.settings.model_copy(
        update={"aws_call_log": str(tmp_path / "calls"), **PER_EVENT}
    )
    clients = AwsClients(settings)
    for i in range(3):
        add_user(stack, f"u-{i}", {"categories": {"activity": ["email"]}}, email=f"u{i}@x.io")
    events = [post_event(stack, "comment", COMMENT, user_id=f"u-{i}") for i in range(3)]
    messages = receive(stack, ROUTER_NORMAL)
    assert len(messages) == 3
    # The same event twice in one receive (SNS delivers at least once): routed once.
    duplicate = QueueMessage(ROUTER_NORMAL, "dup", messages[0].receipt_handle, messages[0].body)
    log = CallLog.for_path(settings.aws_call_log or "")
    before = {service: dict(ops) for service, ops in log.counts.items()}

    results = Router(settings, clients, clock=lambda: MIDDAY_TOKYO)([*messages, duplicate])

    assert results == [Ack()] * 4
    counted = calls_since(log, before)
    # The three events: one read, one transaction, one SendMessageBatch. The duplicate goes
    # the one-event way: its list is written again (one UpdateItem, the same list) and its
    # record, still QUEUED, is enqueued again (a worker's claim makes that harmless);
    # completing its fan-out reads the event with its tally, then its records, which are
    # its counts (core.ledger.record_counts).
    assert counted["dynamodb"]["BatchGetItem"] == 1 + 2
    assert counted["dynamodb"]["TransactWriteItems"] == 1
    assert counted["sqs"] == {"SendMessageBatch": 1 + 1}
    for event in events:
        record, notifications = stored(stack, event.event_id)
        assert record.status is EventStatus.PROCESSING and record.counts.total == 1
        assert notifications["email"]["status"] == NotificationStatus.QUEUED
    assert {m["event_id"] for m in drain(stack, "email-normal")} == {e.event_id for e in events}


def test_a_lone_user_event_is_routed_with_one_plain_write(stack: Stack, tmp_path: Path) -> None:
    """At a low rate a receive holds one event: its status and list are one item, and a
    one-item transaction would cost twice the write units of the same UpdateItem."""
    settings = stack.settings.model_copy(
        update={"aws_call_log": str(tmp_path / "calls"), **PER_EVENT}
    )
    clients = AwsClients(settings)
    add_user(
        stack,
        "solo",
        {"categories": {"activity": ["email", "sms"]}},
        email="s@x.io",
        phone="+14155550123",
    )
    event = post_event(stack, "comment", COMMENT, user_id="solo")
    messages = receive(stack, ROUTER_NORMAL)
    log = CallLog.for_path(settings.aws_call_log or "")
    before = {service: dict(ops) for service, ops in log.counts.items()}

    assert Router(settings, clients, clock=lambda: MIDDAY_TOKYO)(messages) == [Ack()]

    assert calls_since(log, before)["dynamodb"] == {"BatchGetItem": 1, "UpdateItem": 1}
    record, notifications = stored(stack, event.event_id)
    assert record.status is EventStatus.PROCESSING and record.fanout_complete
    assert record.counts.total == 2
    assert {c: n["status"] for c, n in notifications.items()} == {
        "email": NotificationStatus.QUEUED,
        "sms": NotificationStatus.QUEUED,
    }


class CountingTally(EventTally):
    """The real tally, noting each count added outside a record's transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tallies: list[tuple[str, int, int]] = []

    def add(self, event_id: str, **kwargs: Any) -> None:
        self.tallies.append((event_id, kwargs.get("sent", 0), kwargs.get("failed", 0)))
        super().add(event_id, **kwargs)


class CountingOutcomes(OutcomeRecords):
    """The real outcome writer, noting each outcome it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[str] = []

    def record_outcomes(self, outcomes: Any) -> list[str]:
        self.recorded += [o.message.notification_id for o in outcomes]
        return super().record_outcomes(outcomes)


def counting_ledger(stack: Stack) -> tuple[Ledger, CountingTally, CountingOutcomes]:
    """The stack's ledger with a counting tally (also settlement's) and outcome writer."""
    db, table = stack.clients.dynamodb, stack.clients.names.table
    ledger = ledger_of(stack)
    tally = CountingTally(db, table)
    outcomes = CountingOutcomes(ledger.records, tally)
    settlement = Settlement(
        db, table, tally=tally, status=ledger.event_status, stale=ledger.stale_events
    )
    return replace(ledger, tally=tally, outcomes=outcomes, settlement=settlement), tally, outcomes


def test_a_batch_of_one_events_notifications_is_counted_once(stack: Stack) -> None:
    """Each outcome is written (and counted) once, with its SENT mark, as its send returns;
    no separate tally update follows."""
    ledger, tally, outcomes = counting_ledger(stack)
    event = processing_event(ledger, topic="chart-fans")
    messages = [notification(event, recipient=f"u-{i}") for i in range(3)]
    counted(ledger, messages)
    tally.tallies.clear()
    notifier = ScriptedNotifier(OK)
    handler = DeliveryHandler(
        notifier=notifier,
        ledger=ledger,
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
    )
    batch = [
        QueueMessage("herald-test-sms-normal", f"m-{i}", f"r-{i}", m.model_dump_json())
        for i, m in enumerate(messages)
    ]
    try:
        assert handler(batch) == [Ack()] * 3
    finally:
        handler.close()

    assert tally.tallies == []
    assert sorted(outcomes.recorded) == sorted(m.notification_id for m in messages)
    assert sorted(notifier.sent) == sorted(m.notification_id for m in messages)
    found = ledger.event_reads.get(event.event_id)
    assert found is not None and found[0].status is EventStatus.SUCCESS
    assert (found[0].counts.sent, found[0].counts.failed) == (3, 0)
    assert {n["status"] for n in found[1]} == {NotificationStatus.SENT}


def test_an_event_routed_elsewhere_leaves_the_rest_of_the_receive_together(
    stack: Stack, tmp_path: Path
) -> None:
    """SNS delivered one event twice and another router took the other copy first: that
    event's skipped record exists (a queued one is its claim's to create), so the shared
    transaction is refused for it alone; the others are written together again, not each
    on the slower one-event path."""
    settings = stack.settings.model_copy(
        update={"aws_call_log": str(tmp_path / "calls"), **PER_EVENT}
    )
    clients = AwsClients(settings)
    for i in range(3):
        prefs = {"categories": {"activity": ["email", "sms"]}, "opt_out": ["sms"]}
        add_user(stack, f"u-{i}", prefs, email=f"u{i}@x.io", phone="+14155550123")
    events = [post_event(stack, "comment", COMMENT, user_id=f"u-{i}") for i in range(3)]
    messages = receive(stack, ROUTER_NORMAL)
    copy = next(m for m in messages if events[1].event_id in m.body)
    other = QueueMessage(ROUTER_NORMAL, "copy", copy.receipt_handle, copy.body)
    assert Router(settings, clients, clock=lambda: MIDDAY_TOKYO)([other]) == [Ack()]
    log = CallLog.for_path(settings.aws_call_log or "")
    before = {service: dict(ops) for service, ops in log.counts.items()}

    results = Router(settings, clients, clock=lambda: MIDDAY_TOKYO)(messages)

    assert results == [Ack()] * 3
    # Refused for the copy's event, then the other two together; the copy's event reads
    # its records and writes nothing.
    assert calls_since(log, before)["dynamodb"]["TransactWriteItems"] == 2
    for event in events:
        record, notifications = stored(stack, event.event_id)
        assert record.status is EventStatus.PROCESSING
        assert (record.counts.total, record.counts.skipped) == (2, 1)
        assert notifications["email"]["status"] == NotificationStatus.QUEUED
        assert notifications["sms"]["status"] == NotificationStatus.SKIPPED
    sent = [m["event_id"] for m in drain(stack, "email-normal")]
    assert sorted(sent) == sorted([e.event_id for e in events] + [events[1].event_id])

"""A worker checks a topic's event at most once an interval, and the check owed after the
last outcome settles the event without the reconciler."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from core.catalogue.models import EventStatus, NotificationMessage
from core.ledger.wiring import Ledger
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import Ack, QueueMessage
from listeners.settle_checks import SettleChecks
from tests.conftest import Stack
from tests.core.ledger.test_tally_first_shard import create, messages, status_of
from tests.factories import OK, QUEUE, ScriptedNotifier, ledger_of, processing_event
from tests.support import wait_until

LONG = 3600.0  # an interval no test outlasts: a check owed stays owed until flushed


class Checks:
    """A settling function that notes each call and settles nothing."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []
        self.called = threading.Event()

    def __call__(
        self,
        counted: Mapping[str, int],
        listed: Mapping[str, Sequence[str]],
        known: Mapping[str, Mapping[str, str]],
    ) -> dict[str, EventStatus]:
        self.calls.append(dict(counted))
        self.called.set()
        return {}


def test_a_sharded_event_checked_within_the_interval_is_owed_one_check() -> None:
    checks = Checks()
    settle = SettleChecks(checks, interval=LONG)
    try:
        settle.check({"topic": 8})
        settle.check({"topic": 8, "plain": 1})
        settle.check({"topic": 8}, listed={"listed": ["NOTIF#sms#u-1"]})
        settle.check({"topic": 8, "listed": 1}, listed={"listed": ["NOTIF#sms#u-1"]})
        # The first at once; a plain tally and a self-counted event always at once.
        assert checks.calls == [{"topic": 8}, {"plain": 1}, {"listed": 1}]
        settle.flush()  # the one check owed for the three later outcomes
        assert checks.calls[3:] == [{"topic": 8}]
        settle.flush()
        assert len(checks.calls) == 4  # nothing owed any more
    finally:
        settle.close()


def test_an_owed_check_runs_when_the_interval_is_over_and_on_close() -> None:
    checks = Checks()
    settle = SettleChecks(checks, interval=0.05)
    settle.check({"topic": 8})
    checks.called.clear()
    settle.check({"topic": 8})
    assert checks.called.wait(timeout=30)  # the trailing check, on its own
    assert checks.calls == [{"topic": 8}, {"topic": 8}]
    settle.close()

    waiting = Checks()
    settle = SettleChecks(waiting, interval=LONG)
    settle.check({"topic": 8})
    settle.check({"topic": 8})
    settle.close()  # a stopping worker runs what it owes
    assert waiting.calls == [{"topic": 8}, {"topic": 8}]
    settle.check({"topic": 8})  # closed: at once
    assert len(waiting.calls) == 3


def as_queued(batch: Sequence[NotificationMessage]) -> list[QueueMessage]:
    return [
        QueueMessage(
            queue=QUEUE, message_id=m.notification_id, receipt_handle="r", body=m.model_dump_json()
        )
        for m in batch
    ]


def handler_for(ledger: Ledger, interval: float) -> DeliveryHandler:
    return DeliveryHandler(
        notifier=ScriptedNotifier(OK),
        ledger=ledger,
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
        settle_interval=interval,
    )


def topic_event(ledger: Ledger, count: int) -> list[NotificationMessage]:
    """A topic event's records, created and counted, its fan-out complete."""
    event = processing_event(ledger, topic="charts")
    batch = messages(event, count)
    create(ledger, batch)
    assert ledger.settlement.add_and_settle(event.event_id, fanout_complete=True) is None
    return batch


def test_the_check_owed_after_the_last_receive_settles_the_topic_event(stack: Stack) -> None:
    """Three receives of one topic event in a row: the first is checked at once, the other
    two owe one check, which the worker runs when it stops, and it settles the event."""
    ledger = ledger_of(stack)
    batch = topic_event(ledger, 30)
    handler = handler_for(ledger, LONG)
    try:
        for start in range(0, 30, 10):
            assert handler(as_queued(batch[start : start + 10])) == [Ack()] * 10
        assert status_of(ledger, batch[0].event_id) is EventStatus.PROCESSING
    finally:
        handler.close()
    assert status_of(ledger, batch[0].event_id) is EventStatus.SUCCESS


def test_a_running_worker_settles_the_topic_event_after_its_last_outcome(stack: Stack) -> None:
    ledger = ledger_of(stack)
    batch = topic_event(ledger, 20)
    handler = handler_for(ledger, 0.2)
    try:
        for start in range(0, 20, 10):
            assert handler(as_queued(batch[start : start + 10])) == [Ack()] * 10
        assert wait_until(
            lambda: status_of(ledger, batch[0].event_id) is EventStatus.SUCCESS,
            timeout=30,
            interval=0.1,
        )
    finally:
        handler.close()

"""A write whose answer is lost: DynamoDB applied it, the caller timed out.

A frozen or overloaded endpoint does exactly this (the chaos suite's frozen-emulator
scenario, `tests/chaos`), and so does any network cut after the request left. The worker
then retries: botocore itself within the call, and the queue when the call finally fails.
The event tally (`NotificationStore.add_to_event`) is an unconditional ADD, and the
decision to settle the event is taken from the answer of that same call, so the fast path
leaves the event PROCESSING (answer lost) or counts a send twice (applied twice). The
reconciler's audit (`Reconciler.settle_stuck`) is the backstop: it recounts the records.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ReadTimeoutError

from core.event_store import EventStore
from core.models import EventRecord, EventStatus
from core.notification_store import NotificationStore
from listeners.batch import BatchSettler
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import QueueMessage
from listeners.reconciler import Reconciler
from tests.conftest import Stack
from tests.factories import OK, QUEUE, ScriptedNotifier, queue_notification, stores_of
from tests.support import wait_until


class LosesAnswers:
    """A DynamoDB client whose tally updates are applied `times` times, then time out
    (`times` 1: the answer is lost; 2: botocore's retry applied it again)."""

    def __init__(self, db: Any, times: int) -> None:
        self._db = db
        self._times = times
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def update_item(self, **kwargs: Any) -> Any:
        if "counts." in kwargs.get("UpdateExpression", "") and not self.lost:
            self.lost += 1
            for _ in range(self._times):
                self._db.update_item(**kwargs)
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return self._db.update_item(**kwargs)


def deliver_until_empty(stack: Stack, handler: DeliveryHandler) -> None:
    """Receive → deliver → settle rounds, as the consumer runs them, until the queue is
    empty (a retried message comes back after its backoff)."""
    settler = BatchSettler(stack.clients.sqs, stack.clients.queue_url)

    def round_empties_queue() -> bool:
        raw = stack.receive_all(QUEUE, attempts=1)
        batch = [QueueMessage.from_sqs(QUEUE, r) for r in raw]
        if batch:
            settler.settle(batch, handler(batch))
        return not batch and not stack.receive_all(QUEUE, attempts=1)

    assert wait_until(round_empties_queue, timeout=15, interval=0.5)


def deliver_losing_answers(stack: Stack, times: int) -> str:
    """Deliver one notification with its tally update applied `times` times and its answer
    lost; returns the event id."""
    events, plain = stores_of(stack)
    message = queue_notification(stack, (events, plain))
    db = LosesAnswers(stack.clients.dynamodb, times)
    handler = DeliveryHandler(
        notifier=ScriptedNotifier(OK),
        store=NotificationStore(db, stack.clients.names.table),
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
    )
    try:
        deliver_until_empty(stack, handler)
    finally:
        handler.close()
    assert db.lost == 1
    return message.event_id


def event(stack: Stack, event_id: str) -> EventRecord:
    found = EventStore(stack.clients.dynamodb, stack.clients.names.table).get(event_id)
    assert found is not None
    return found[0]


def audit(stack: Stack) -> int:
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    return Reconciler(settings, stack.clients).settle_stuck()


def test_a_lost_answer_to_the_last_tally_update_is_settled_by_the_audit(stack: Stack) -> None:
    event_id = deliver_losing_answers(stack, times=1)
    assert event(stack, event_id).status is EventStatus.PROCESSING  # the fast path missed it
    assert audit(stack) == 1
    settled = event(stack, event_id)
    assert settled.status is EventStatus.SUCCESS
    assert (settled.counts.sent, settled.counts.total) == (1, 1)


def test_a_tally_update_applied_twice_is_recounted_by_the_audit(stack: Stack) -> None:
    event_id = deliver_losing_answers(stack, times=2)
    doubled = event(stack, event_id)
    assert doubled.status is EventStatus.PROCESSING  # over its total: not trusted
    assert doubled.counts.sent == 2
    assert audit(stack) == 1
    settled = event(stack, event_id)
    assert settled.status is EventStatus.SUCCESS
    assert (settled.counts.sent, settled.counts.total) == (1, 1)

"""A write whose answer is lost: DynamoDB applied it, the caller timed out.

A frozen or overloaded endpoint does exactly this (the chaos suite's frozen-emulator
scenario, `tests/chaos`), and so does any network cut after the request left. The worker
then retries. A send's outcome is written as one transaction: the record's conditional
SENDING → SENT under the claim's token, and the event's count. A repeat of an applied
transaction is refused as a whole (the record is SENT already), so nothing is counted
twice, and the refusal's stored record (SENT under this very token) tells the worker its
earlier try went through: the event settles on the fast path, no audit needed.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

from core.aws import dynamo
from core.catalogue.models import EventRecord, EventStatus, NotificationMessage
from core.ledger.wiring import Ledger, build_ledger
from listeners.batch import BatchSettler
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import QueueMessage
from listeners.reconciler import Reconciler
from tests.conftest import Stack
from tests.factories import (
    OK,
    QUEUE,
    ScriptedNotifier,
    counted,
    ledger_of,
    notification,
    processing_event,
)
from tests.support import wait_until


class LosesAnswers:
    """A DynamoDB client whose first outcome transaction is sent `times` times, then times
    out (`times` 1: the answer is lost; 2: a retry went out too, and was refused)."""

    def __init__(self, db: Any, times: int) -> None:
        self._db = db
        self._times = times
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        counts = any(
            item.get("Update", {}).get("Key", {}).get("SK") == {"S": dynamo.TALLY_SK}
            for item in kwargs["TransactItems"]
        )
        if counts and not self.lost:
            self.lost += 1
            for _ in range(self._times):
                try:
                    self._db.transact_write_items(**kwargs)
                except ClientError as exc:  # the repeat is refused: nothing applied twice
                    assert exc.response["Error"]["Code"] == "TransactionCanceledException"
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return self._db.transact_write_items(**kwargs)


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


def queue_counted(stack: Stack, ledger: Ledger) -> NotificationMessage:
    """One notification of a topic's event: its record created and counted on the event's
    tally as the router does for a topic (its outcome is then counted there too), and on
    the queue."""
    message = notification(processing_event(ledger, topic="chart-fans"))
    counted(ledger, [message])
    stack.clients.sqs.send_message(
        QueueUrl=stack.clients.queue_url(QUEUE), MessageBody=message.model_dump_json()
    )
    return message


def deliver_losing_answers(stack: Stack, times: int) -> str:
    """Deliver one notification with its tally update applied `times` times and its answer
    lost; returns the event id."""
    message = queue_counted(stack, ledger_of(stack))
    db = LosesAnswers(stack.clients.dynamodb, times)
    handler = DeliveryHandler(
        notifier=ScriptedNotifier(OK),
        ledger=build_ledger(db, stack.clients.names.table),
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
    found = ledger_of(stack).event_reads.get(event_id)
    assert found is not None
    return found[0]


def audit(stack: Stack) -> int:
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    return Reconciler(settings, stack.clients).run_pass().settled


def test_a_lost_answer_to_the_outcome_write_is_recognised_and_counted_once(
    stack: Stack,
) -> None:
    event_id = deliver_losing_answers(stack, times=1)
    settled = event(stack, event_id)
    assert settled.status is EventStatus.SUCCESS  # the fast path, no audit
    assert (settled.counts.sent, settled.counts.total) == (1, 1)
    assert audit(stack) == 0


def test_an_outcome_write_sent_twice_counts_once(stack: Stack) -> None:
    event_id = deliver_losing_answers(stack, times=2)
    settled = event(stack, event_id)
    assert settled.status is EventStatus.SUCCESS
    assert (settled.counts.sent, settled.counts.total) == (1, 1)
    assert audit(stack) == 0

"""The worker's delivery logic against real queues and DynamoDB on the emulator.

The notifier here is a scripted implementation of the Notifier protocol: these tests are
about claims, retries, the DLQ and the event tally. The real SDK notifiers are exercised in
tests/notifiers and end to end in tests/e2e.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.catalogue.models import EventRecord, EventStatus, NotificationMessage
from core.ledger.wiring import Ledger
from core.platform.errors import PermanentError, RetryableError
from core.security.rate_limit import TokenBucket
from listeners.batch import BatchSettler
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import Ack, DeadLetter, QueueMessage, Retry
from tests.conftest import Stack
from tests.factories import OK, QUEUE, ScriptedNotifier, ledger_of, queue_notification
from tests.support import wait_until


@pytest.fixture
def ledger(stack: Stack) -> Ledger:
    return ledger_of(stack)


@pytest.fixture
def make_handler(ledger: Ledger) -> Iterator[object]:
    handlers: list[DeliveryHandler] = []

    def build(notifier: ScriptedNotifier, max_attempts: int = 3) -> DeliveryHandler:
        handler = DeliveryHandler(
            notifier=notifier,
            ledger=ledger,
            policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=max_attempts),
            lease_seconds=30,
        )
        handlers.append(handler)
        return handler

    yield build
    for handler in handlers:
        handler.close()


def receive(stack: Stack) -> list[QueueMessage]:
    """What the queue holds, waiting out a retry's backoff (whole seconds in SQS)."""
    batch: list[QueueMessage] = []

    def got_some() -> bool:
        batch.extend(QueueMessage.from_sqs(QUEUE, r) for r in stack.receive_all(QUEUE))
        return bool(batch)

    wait_until(got_some, timeout=5, interval=0.2)
    return batch


def deliver_round(stack: Stack, handler: DeliveryHandler) -> list[object]:
    """One receive → deliver → settle round, as the consumer runs it."""
    batch = receive(stack)
    results = handler(batch)
    BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(batch, results)
    return list(results)


def event_of(ledger: Ledger, message: NotificationMessage) -> tuple[EventRecord, dict[str, Any]]:
    found = ledger.event_reads.get(message.event_id)
    assert found is not None
    record, items = found
    return record, items[0]


def test_sent_notification_settles_the_event_and_leaves_the_queue(
    stack, ledger, make_handler
) -> None:
    message = queue_notification(stack, ledger)
    notifier = ScriptedNotifier(OK)
    assert deliver_round(stack, make_handler(notifier)) == [Ack()]
    record, item = event_of(ledger, message)
    assert (
        item["status"] == "SENT"
        and item["provider_message_id"] == "SM123"
        and item["attempts"] == 1
    )
    assert record.status == EventStatus.SUCCESS
    assert notifier.sent == [message.notification_id]
    assert stack.receive_all(QUEUE) == []


def test_retryable_error_then_success_sends_twice_and_ends_sent(
    stack, ledger, make_handler
) -> None:
    message = queue_notification(stack, ledger)
    notifier = ScriptedNotifier(RetryableError("500 from provider", code="http:500"), OK)
    handler = make_handler(notifier)
    first = deliver_round(stack, handler)
    assert isinstance(first[0], Retry)
    retrying = event_of(ledger, message)[1]
    assert retrying["status"] == "RETRYING" and "500 from provider" in retrying["last_error"]
    assert deliver_round(stack, handler) == [Ack()]  # the backoff (≤1 s) has passed
    _, item = event_of(ledger, message)
    assert item["status"] == "SENT" and item.get("last_error") is None  # no stale error
    assert [h["status"] for h in item["history"]] == [
        "QUEUED",
        "SENDING",
        "RETRYING",
        "SENDING",
        "SENT",
    ]
    assert len(notifier.sent) == 2


def test_permanent_error_fails_at_once_and_goes_to_the_dlq(stack, ledger, make_handler) -> None:
    message = queue_notification(stack, ledger)
    notifier = ScriptedNotifier(
        PermanentError("invalid number", code="twilio:21211", address_invalid=True)
    )
    assert deliver_round(stack, make_handler(notifier)) == [
        DeadLetter("twilio:21211: invalid number")
    ]
    record, item = event_of(ledger, message)
    assert item["status"] == "FAILED" and item["last_error"] == "twilio:21211: invalid number"
    assert record.status == EventStatus.FAILED
    dead = stack.receive_all(f"{QUEUE}-dlq")
    assert (
        len(dead) == 1
        and dead[0]["MessageAttributes"]["error"]["StringValue"] == "twilio:21211: invalid number"
    )
    assert len(notifier.sent) == 1


def test_gives_up_after_max_attempts(stack, ledger, make_handler) -> None:
    message = queue_notification(stack, ledger)
    notifier = ScriptedNotifier(RetryableError("timeout"))
    handler = make_handler(notifier, max_attempts=2)
    assert isinstance(deliver_round(stack, handler)[0], Retry)
    result = deliver_round(stack, handler)
    assert result == [DeadLetter("gave up after 2 attempts: timeout")]
    assert event_of(ledger, message)[1]["status"] == "FAILED"
    assert len(stack.receive_all(f"{QUEUE}-dlq")) == 1


def test_retry_after_from_the_provider_sets_the_backoff(stack, ledger, make_handler) -> None:
    queue_notification(stack, ledger)
    handler = make_handler(ScriptedNotifier(RetryableError("429", retry_after=30)))
    batch = receive(stack)
    result = handler(batch)[0]
    assert isinstance(result, Retry) and result.delay >= 30


def test_redelivered_message_of_a_sent_notification_sends_nothing(
    stack, ledger, make_handler
) -> None:
    message = queue_notification(stack, ledger)
    notifier = ScriptedNotifier(OK)
    handler = make_handler(notifier)
    batch = receive(stack)
    assert handler(batch) == [Ack()]
    assert handler(batch) == [Ack()]  # same message again, as after a lost delete
    assert notifier.sent == [message.notification_id]


def test_duplicate_messages_in_one_batch_send_once(stack, ledger, make_handler) -> None:
    message = queue_notification(stack, ledger)
    stack.clients.sqs.send_message(
        QueueUrl=stack.clients.queue_url(QUEUE), MessageBody=message.model_dump_json()
    )
    notifier = ScriptedNotifier(OK)
    results = deliver_round(stack, make_handler(notifier))
    assert len(results) == 2
    assert notifier.sent == [message.notification_id]


def test_undecodable_message_is_dead_lettered(stack, ledger, make_handler) -> None:
    stack.clients.sqs.send_message(QueueUrl=stack.clients.queue_url(QUEUE), MessageBody="{not json")
    result = deliver_round(stack, make_handler(ScriptedNotifier(OK)))
    assert isinstance(result[0], DeadLetter)
    assert len(stack.receive_all(f"{QUEUE}-dlq")) == 1


def test_token_bucket_spaces_sends_to_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(4)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(0.1) and waits[3] == pytest.approx(0.1)

"""A provider's Retry-After is waited out up to a ceiling that ends before the reconciler
takes a retry for a lost message; a longer one fails the notification now, with the reason,
into the DLQ (never sent before the provider allows, never a retry that looks stranded)."""

from __future__ import annotations

import pytest

from core.platform.errors import RetryableError
from core.platform.settings import Settings
from listeners.batch import BatchSettler
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import DeadLetter, QueueMessage, Retry
from tests.conftest import Stack
from tests.factories import QUEUE, ScriptedNotifier, ledger_of, queue_notification


def deliver(stack: Stack, retry_after: float, ceiling: float) -> object:
    ledger = ledger_of(stack)
    queue_notification(stack, ledger)
    handler = DeliveryHandler(
        notifier=ScriptedNotifier(RetryableError("429 Too Many Requests", retry_after=retry_after)),
        ledger=ledger,
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3, retry_after_max=ceiling),
        lease_seconds=30,
    )
    try:
        batch = [QueueMessage.from_sqs(QUEUE, m) for m in stack.receive_all(QUEUE)]
        (result,) = handler(batch)
        BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(batch, [result])
    finally:
        handler.close()
    return result


def test_a_retry_after_within_the_ceiling_is_waited_out(stack: Stack) -> None:
    result = deliver(stack, retry_after=120, ceiling=300)
    assert isinstance(result, Retry) and result.delay == 120


def test_a_retry_after_beyond_the_ceiling_fails_now_into_the_dlq(stack: Stack) -> None:
    result = deliver(stack, retry_after=3600, ceiling=300)

    assert isinstance(result, DeadLetter)
    assert "asks to wait 3600s" in result.reason
    assert "HERALD_RETRY_AFTER_MAX_SECONDS" in result.reason
    (copy,) = stack.receive_all(f"{QUEUE}-dlq")
    assert "asks to wait 3600s" in copy["MessageAttributes"]["error"]["StringValue"]


def test_the_ceiling_must_end_before_a_retry_looks_stranded() -> None:
    with pytest.raises(ValueError, match="HERALD_RECONCILE_STRANDED_SECONDS"):
        Settings(retry_after_max_seconds=600, reconcile_stranded_seconds=420)
    with pytest.raises(ValueError, match="HERALD_RECONCILE_STRANDED_SECONDS"):
        Settings(retry_cap_seconds=400, reconcile_stranded_seconds=420)
    assert Settings().retry_after_ceiling == Settings().retry_cap_seconds

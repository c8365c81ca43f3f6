"""Delivering a batch of notifications through one channel's notifier.

For each message: claim the record (a conditional write, so a redelivered message cannot
send twice), wait for the provider's rate limit, send, then record the outcome:

    success            → SENT, count it on the event, delete the message
    RetryableError     → RETRYING, visibility = backoff (full jitter, Retry-After honoured)
    last attempt or
    PermanentError     → FAILED with the reason, count it, copy to the DLQ, delete

Sends in a batch run concurrently (bounded) so one slow provider call does not hold the
other nine; a heartbeat keeps long sends invisible to other workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from core.errors import DeliveryError, PermanentError, RetryableError
from core.models import NotificationMessage, NotificationStatus
from core.notification_store import NotificationStore
from core.rate_limit import TokenBucket
from listeners.backoff import backoff_seconds
from listeners.heartbeat import Heartbeat
from listeners.messages import Ack, DeadLetter, QueueMessage, Result, Retry
from notifiers.base import Notifier

log = logging.getLogger("herald.delivery")

# A duplicate message whose record another worker is sending: try again once that
# worker's lease has run out, in case it died.
CLAIM_CONFLICT_DELAY = 5

# Told which addresses the provider says are gone for good (e.g. disabled push endpoints),
# so they can be disabled on the user and not tried again.
DeadAddressHook = Callable[[NotificationMessage, list[str]], None]


@dataclass(frozen=True)
class RetryPolicy:
    base: float
    cap: float
    max_attempts: int


class DeliveryHandler:
    def __init__(
        self,
        *,
        notifier: Notifier,
        store: NotificationStore,
        policy: RetryPolicy,
        lease_seconds: float,
        rate_limit: TokenBucket | None = None,
        heartbeat: Heartbeat | None = None,
        concurrency: int = 10,
        on_dead_addresses: DeadAddressHook | None = None,
    ) -> None:
        self.notifier = notifier
        self.store = store
        self.policy = policy
        self.lease_seconds = lease_seconds
        self.rate_limit = rate_limit
        self.heartbeat = heartbeat
        self.on_dead_addresses = on_dead_addresses
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send")

    def __call__(self, messages: Sequence[QueueMessage]) -> list[Result]:
        return list(self._pool.map(self.deliver, messages))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def deliver(self, queued: QueueMessage) -> Result:
        try:
            message = NotificationMessage.model_validate_json(queued.body)
        except ValidationError as exc:
            return DeadLetter(f"not a notification message: {exc.error_count()} errors")
        ctx = {"notification_id": message.notification_id, "event_id": message.event_id}
        try:
            return self._deliver(queued, message, ctx)
        except (BotoCoreError, ClientError) as exc:
            # The store did not answer: the message comes back after a backoff.
            log.warning("storage error, retrying: %s", exc, extra=ctx)
            delay = backoff_seconds(queued.receive_count, self.policy.base, self.policy.cap)
            return Retry(delay, "storage unavailable")

    def _deliver(
        self, queued: QueueMessage, message: NotificationMessage, ctx: dict[str, str]
    ) -> Result:
        claim = self.store.claim(message, self.lease_seconds)
        if claim is None:
            return self._not_claimed(message, ctx)
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        if self.heartbeat is not None:
            self.heartbeat.track(queued)
        try:
            result = self.notifier.send(message)
        except DeliveryError as exc:
            return self._failed(message, exc, claim.attempt, ctx)
        except Exception as exc:  # a notifier bug must not take the worker down
            log.exception("notifier raised an unexpected error", extra=ctx)
            return self._failed(
                message, RetryableError(f"unexpected {type(exc).__name__}"), claim.attempt, ctx
            )
        finally:
            if self.heartbeat is not None:
                self.heartbeat.done(queued)
        gone = list(getattr(result, "gone_endpoints", []) or [])
        if gone:
            self._dead_addresses(message, gone, ctx)
        if self.store.mark_sent(message, result.provider, result.provider_message_id):
            self.store.add_to_event(message.event_id, sent=1)
        log.info("sent via %s", result.provider, extra=ctx)
        return Ack()

    def _dead_addresses(
        self, message: NotificationMessage, addresses: list[str], ctx: dict[str, str]
    ) -> None:
        if self.on_dead_addresses is None:
            return
        try:
            self.on_dead_addresses(message, addresses)
        except (BotoCoreError, ClientError) as exc:  # best effort: the outcome stands
            log.warning("could not disable dead addresses: %s", exc, extra=ctx)

    def _not_claimed(self, message: NotificationMessage, ctx: dict[str, str]) -> Result:
        status = self.store.status_of(message)
        if status is None:
            return DeadLetter("no notification record for this message")
        if status == NotificationStatus.SENDING:
            log.info("another worker holds this notification", extra=ctx)
            return Retry(CLAIM_CONFLICT_DELAY, "claimed elsewhere")
        log.info("already %s; nothing to send", status, extra=ctx)
        return Ack()

    def _failed(
        self, message: NotificationMessage, error: DeliveryError, attempt: int, ctx: dict[str, str]
    ) -> Result:
        reason = str(error)
        if isinstance(error, RetryableError) and attempt < self.policy.max_attempts:
            delay = backoff_seconds(attempt, self.policy.base, self.policy.cap, error.retry_after)
            self.store.mark_retrying(message, reason, delay)
            log.info("attempt %d failed, retry in %ds: %s", attempt, delay, reason, extra=ctx)
            return Retry(delay, reason)
        if isinstance(error, RetryableError):
            reason = f"gave up after {attempt} attempts: {reason}"
        if isinstance(error, PermanentError) and error.address_invalid:
            self._dead_addresses(message, message.addresses, ctx)
        if self.store.mark_failed(message, reason):
            self.store.add_to_event(message.event_id, failed=1)
        log.warning("failed: %s", reason, extra=ctx)
        return DeadLetter(reason)

"""Delivering a batch of notifications through one channel's notifier.

For each message: claim the record (a conditional write, so a redelivered message cannot
send twice), wait for the provider's rate limit, send, then record the outcome:

    success            → SENT, count it on the event, delete the message
    RetryableError     → RETRYING, visibility = backoff (full jitter, Retry-After honoured)
    last attempt or
    PermanentError     → FAILED with the reason, count it, copy to the DLQ, delete

Sends in a batch run concurrently (bounded) so one slow provider call does not hold the
other nine; a heartbeat keeps long sends invisible to other workers.

A batch is claimed together and settled together, so its DynamoDB requests do not grow with
its size: one TransactWriteItems claims every record of the batch (a record that had moved
on, e.g. a duplicate of a SENT notification, is reported with its status and the rest are
claimed again without it), one marks every successful send SENT, and one counter update per
event counts the outcomes (ten notifications of one topic event: one update, not ten). A
batch of one uses plain conditional updates. Failed sends (rarer) are recorded one by one.
Outcomes are counted after every send of the batch has finished and before any of its
messages is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from core.errors import DeliveryError, PermanentError, RetryableError
from core.models import DeliveryResult, NotificationMessage, NotificationStatus
from core.notification_store import Claim, NotificationStore
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


@dataclass
class Tally:
    """Notifications of one batch settled per event, to count on the event together."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # event id → [sent, failed]

    def add(self, event_id: str, *, sent: int = 0, failed: int = 0) -> None:
        entry = self.counts.setdefault(event_id, [0, 0])
        entry[0] += sent
        entry[1] += failed


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
        results: list[Result | None] = [None] * len(messages)
        batch: list[tuple[int, QueueMessage, NotificationMessage]] = []
        seen: set[str] = set()
        for index, queued in enumerate(messages):
            try:
                message = NotificationMessage.model_validate_json(queued.body)
            except ValidationError as exc:
                results[index] = DeadLetter(
                    f"not a notification message: {exc.error_count()} errors"
                )
                continue
            if message.notification_id in seen:  # the same notification twice in one batch
                log.info("duplicate in this batch", extra=_ctx(message))
                results[index] = Retry(CLAIM_CONFLICT_DELAY, "claimed elsewhere")
                continue
            seen.add(message.notification_id)
            batch.append((index, queued, message))
        if batch:
            tally = Tally()
            try:
                self._deliver_batch(batch, results, tally)
            finally:
                self._count(tally)
        return [r if r is not None else Ack() for r in results]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def deliver(self, queued: QueueMessage) -> Result:
        """Deliver one message (a batch of one)."""
        return self([queued])[0]

    def _storage_failed(self, queued: QueueMessage, exc: Exception, ctx: dict[str, str]) -> Retry:
        """The store did not answer: the message comes back after a backoff."""
        log.warning("storage error, retrying: %s", exc, extra=ctx)
        delay = backoff_seconds(queued.receive_count, self.policy.base, self.policy.cap)
        return Retry(delay, "storage unavailable")

    def _deliver_batch(
        self,
        batch: list[tuple[int, QueueMessage, NotificationMessage]],
        results: list[Result | None],
        tally: Tally,
    ) -> None:
        try:
            claims = self.store.claim_many([m for _, _, m in batch], self.lease_seconds)
        except (BotoCoreError, ClientError) as exc:
            for index, queued, message in batch:
                results[index] = self._storage_failed(queued, exc, _ctx(message))
            return
        claimed: list[tuple[int, QueueMessage, NotificationMessage, Claim]] = []
        for (index, queued, message), claim in zip(batch, claims, strict=True):
            if isinstance(claim, Claim):
                claimed.append((index, queued, message, claim))
            else:
                results[index] = self._not_claimed(claim, _ctx(message))
        outcomes = list(self._pool.map(lambda entry: self._send(entry[1], entry[2]), claimed))
        sent: list[tuple[int, QueueMessage, NotificationMessage, DeliveryResult]] = []
        for (index, queued, message, claim), outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, DeliveryResult):
                sent.append((index, queued, message, outcome))
                continue
            try:
                attempt = claim.attempt or self.store.attempts_of(message)
                results[index] = self._failed(message, outcome, attempt, _ctx(message), tally)
            except (BotoCoreError, ClientError) as exc:
                results[index] = self._storage_failed(queued, exc, _ctx(message))
        if sent:
            self._record_sent(sent, results, tally)

    def _send(
        self, queued: QueueMessage, message: NotificationMessage
    ) -> DeliveryResult | DeliveryError:
        """The provider call, behind the rate limit and the heartbeat; never raises."""
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        if self.heartbeat is not None:
            self.heartbeat.track(queued)
        try:
            result = self.notifier.send(message)
            if not isinstance(result, DeliveryResult):
                return RetryableError(f"notifier returned {type(result).__name__}, not a result")
            return result
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a notifier bug must not take the worker down
            log.exception("notifier raised an unexpected error", extra=_ctx(message))
            return RetryableError(f"unexpected {type(exc).__name__}")
        finally:
            if self.heartbeat is not None:
                self.heartbeat.done(queued)

    def _record_sent(
        self,
        sent: list[tuple[int, QueueMessage, NotificationMessage, DeliveryResult]],
        results: list[Result | None],
        tally: Tally,
    ) -> None:
        for _, _, message, result in sent:
            gone = list(getattr(result, "gone_endpoints", []) or [])
            if gone:
                self._dead_addresses(message, gone, _ctx(message))
        try:
            marked = self.store.mark_sent_many(
                [(m, r.provider, r.provider_message_id) for _, _, m, r in sent]
            )
        except (BotoCoreError, ClientError) as exc:
            for index, queued, message, _ in sent:
                results[index] = self._storage_failed(queued, exc, _ctx(message))
            return
        for (index, _, message, result), done in zip(sent, marked, strict=True):
            if done:
                tally.add(message.event_id, sent=1)
            log.info("sent via %s", result.provider, extra=_ctx(message))
            results[index] = Ack()

    def _count(self, tally: Tally) -> None:
        """One counter update per event for the whole batch. A refused update is retried by
        botocore; if it still fails the outcomes stand (the records say SENT or FAILED) and
        the event cannot settle: that is logged loudly, with what was not counted."""
        for event_id, (sent, failed) in tally.counts.items():
            try:
                self.store.add_to_event(event_id, sent=sent, failed=failed)
            except (BotoCoreError, ClientError) as exc:
                log.error(
                    "could not count %d sent and %d failed on the event: %s",
                    sent,
                    failed,
                    exc,
                    extra={"event_id": event_id},
                )

    def _dead_addresses(
        self, message: NotificationMessage, addresses: list[str], ctx: dict[str, str]
    ) -> None:
        if self.on_dead_addresses is None:
            return
        try:
            self.on_dead_addresses(message, addresses)
        except (BotoCoreError, ClientError) as exc:  # best effort: the outcome stands
            log.warning("could not disable dead addresses: %s", exc, extra=ctx)

    def _not_claimed(self, status: str | None, ctx: dict[str, str]) -> Result:
        if status is None:
            return DeadLetter("no notification record for this message")
        if status == NotificationStatus.SENDING:
            log.info("another worker holds this notification", extra=ctx)
            return Retry(CLAIM_CONFLICT_DELAY, "claimed elsewhere")
        log.info("already %s; nothing to send", status, extra=ctx)
        return Ack()

    def _failed(
        self,
        message: NotificationMessage,
        error: DeliveryError,
        attempt: int,
        ctx: dict[str, str],
        tally: Tally,
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
            tally.add(message.event_id, failed=1)
        log.warning("failed: %s", reason, extra=ctx)
        return DeadLetter(reason)


def _ctx(message: NotificationMessage) -> dict[str, str]:
    return {"notification_id": message.notification_id, "event_id": message.event_id}

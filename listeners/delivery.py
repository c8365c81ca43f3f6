"""Delivering a batch of notifications through one channel's notifier.

For each message: claim the record (a conditional write with a token, so a redelivered
message cannot send twice), wait for the provider's rate limit, send, then record the
outcome as soon as the provider answers:

    success            → SENT and counted on the event (one transaction), delete the message
    RetryableError     → RETRYING, visibility = backoff (full jitter, Retry-After honoured)
    last attempt or
    PermanentError     → FAILED with the reason and counted, copy to the DLQ, delete

A batch is claimed together (one transaction; a record that had moved on is reported with
its status and the others are claimed without it). Sends run concurrently (bounded); each
outcome goes to the `OutcomeWriter` the moment its send returns, and outcomes that finish
together share one write. A message is deleted only once its outcome is durable: a storage
error after a provider's success is retried in-process, within the claim, while the
heartbeat keeps the message invisible and the lease alive; it never turns into a second
send. After the outcomes, each event they counted on is settled if it is complete (a topic's
at most once a second per worker, `listeners.settle_checks`).

The queue's RedrivePolicy is a backstop far above the attempt budget: attempts are counted
on the record, and a message received `receive_budget` times without settling is settled
here (FAILED and dead-lettered with the reason), so SQS never moves a message behind a
record's back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import ValidationError

from core.aws.dynamo import notification_sk
from core.catalogue.models import DeliveryResult, NotificationMessage, NotificationStatus
from core.ledger.outcome_records import LOST, Outcome
from core.ledger.record_transitions import Claim, new_token
from core.ledger.wiring import Ledger
from core.platform import metrics, tracing
from core.platform.errors import DeliveryError, PermanentError, RetryableError
from core.security.rate_limit import TokenBucket
from listeners.backoff import backoff_seconds
from listeners.heartbeat import Heartbeat
from listeners.messages import Ack, DeadLetter, QueueMessage, Result, Retry
from listeners.outcomes import OutcomeWriter
from listeners.settle_checks import SETTLE_INTERVAL_SECONDS, SettleChecks
from notifiers.base import Notifier

log = logging.getLogger("herald.delivery")

# A duplicate message whose record another worker is sending: try again once that
# worker's lease has run out, in case it died.
CLAIM_CONFLICT_DELAY = 5

# Told of a message moved back from a DLQ (StartMessageMoveTask keeps its attributes)
# whose record is still FAILED: reopens the record; True when it did.
RedrivenHook = Callable[[NotificationMessage], bool]

# What is made of a notification when it is sent, not when it was routed (a report's CSV
# and PDF): the message to send, or a DeliveryError, which is that send's outcome.
PrepareHook = Callable[[NotificationMessage], NotificationMessage]

# Told which addresses the provider says are gone for good (e.g. disabled push endpoints),
# so they can be disabled on the user and not tried again.
DeadAddressHook = Callable[[NotificationMessage, list[str]], None]


@dataclass(frozen=True)
class RetryPolicy:
    base: float
    cap: float
    max_attempts: int
    # The longest provider Retry-After waited out; a longer one fails the notification now
    # (dead-lettered, to redrive later) instead of sending before the provider allows or
    # waiting past what the reconciler takes for a lost message (settings.retry_after_ceiling).
    retry_after_max: float | None = None


class DeliveryHandler:
    def __init__(
        self,
        *,
        notifier: Notifier,
        ledger: Ledger,
        policy: RetryPolicy,
        lease_seconds: float,
        rate_limit: TokenBucket | None = None,
        heartbeat: Heartbeat | None = None,
        concurrency: int = 10,
        on_dead_addresses: DeadAddressHook | None = None,
        receive_budget: int = 40,
        outcome_deadline_seconds: float = 300.0,
        on_redriven: RedrivenHook | None = None,
        prepare: PrepareHook | None = None,
        settle_interval: float = SETTLE_INTERVAL_SECONDS,
    ) -> None:
        self.on_redriven = on_redriven
        self.prepare = prepare
        self.notifier = notifier
        self.transitions = ledger.transitions
        self.settlement = ledger.settlement
        self.policy = policy
        self.lease_seconds = lease_seconds
        self.rate_limit = rate_limit
        self.on_dead_addresses = on_dead_addresses
        self.receive_budget = receive_budget
        self.outcomes = OutcomeWriter(ledger.outcomes, outcome_deadline_seconds)
        self.settle_checks = SettleChecks(self.settlement.settle_events, settle_interval)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send")
        self._held: dict[str, tuple[NotificationMessage, str]] = {}
        if heartbeat is not None:
            heartbeat.on_beat(self.extend_leases)

    @tracing.traced_batch("herald.send", tracing.notification_id_of)
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
            self._deliver_batch(batch, results)
        return [r if r is not None else Ack() for r in results]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.outcomes.close()
        self.settle_checks.close()

    def extend_leases(self) -> None:
        """Heartbeat hook: every claim this worker holds gets a fresh lease."""
        for message, token in list(self._held.values()):
            try:
                self.transitions.extend_lease(message, token, self.lease_seconds)
            except Exception as exc:  # the next beat tries again
                log.warning("lease extension failed: %s", exc, extra=_ctx(message))

    def _storage_failed(self, queued: QueueMessage, exc: Exception, ctx: dict[str, str]) -> Result:
        """The store did not answer before anything was sent: the message comes back later."""
        if queued.receive_count >= self.receive_budget:
            log.error("storage unavailable on the last receive: %s", exc, extra=ctx)
            return DeadLetter(f"storage unavailable after {queued.receive_count} receives")
        log.warning("storage error, retrying: %s", exc, extra=ctx)
        delay = backoff_seconds(queued.receive_count, self.policy.base, self.policy.cap)
        return Retry(delay, "storage unavailable")

    def _deliver_batch(
        self,
        batch: list[tuple[int, QueueMessage, NotificationMessage]],
        results: list[Result | None],
    ) -> None:
        token = new_token()
        try:
            claims = self.transitions.claim_many(
                [m for _, _, m in batch], self.lease_seconds, token
            )
        except Exception as exc:
            for index, queued, message in batch:
                results[index] = self._storage_failed(queued, exc, _ctx(message))
            return
        claimed: list[tuple[int, QueueMessage, NotificationMessage, Claim]] = []
        for (index, queued, message), claim in zip(batch, claims, strict=True):
            if isinstance(claim, Claim):
                claimed.append((index, queued, message, claim))
                self._held[message.notification_id] = (message, claim.token)
            else:
                results[index] = self._not_claimed(queued, message, claim)
        try:
            outcomes = list(
                self._pool.map(
                    lambda entry: self._send_and_record(entry[1], entry[2], entry[3]), claimed
                )
            )
        finally:
            for _, _, message, _ in claimed:
                self._held.pop(message.notification_id, None)
        counted: dict[str, int] = {}  # event id -> its tally's shards
        listed: dict[str, list[str]] = {}  # event id -> its records, when they are its counts
        known: dict[str, dict[str, str]] = {}  # ... and the statuses this batch gave them
        for (index, _, message, _), (result, was_counted) in zip(claimed, outcomes, strict=True):
            results[index] = result
            if was_counted:
                counted[message.event_id] = message.tally_shards
                if message.counted_records:
                    listed[message.event_id] = message.counted_records
                    status = (
                        NotificationStatus.SENT
                        if isinstance(result, Ack)
                        else NotificationStatus.FAILED
                    )
                    known.setdefault(message.event_id, {})[
                        notification_sk(message.channel, message.recipient_id)
                    ] = status.value
        if counted:  # a topic's event checked at most once a `settle_interval` here
            self.settle_checks.check(counted, listed, known)

    def _send_and_record(
        self, queued: QueueMessage, message: NotificationMessage, claim: Claim
    ) -> tuple[Result, bool]:
        """Send, then make the outcome durable; (the message's result, counted now)."""
        ctx = _ctx(message)
        outcome = self._send(message)
        if isinstance(outcome, DeliveryResult):
            gone = list(getattr(outcome, "gone_endpoints", []) or [])
            if gone:
                self._dead_addresses(message, gone, ctx)
            record = Outcome(
                message,
                claim.token,
                NotificationStatus.SENT,
                provider=outcome.provider,
                provider_message_id=outcome.provider_message_id,
            )
            try:
                fate = self.outcomes.record(record)
            except Exception as exc:
                # Sent, and the store stayed down past the deadline: the message comes back
                # after the lease; this is the one remaining duplicate window.
                log.error("sent but not recorded: %s", exc, extra=ctx)
                return Retry(int(self.lease_seconds), "sent; outcome not recorded"), False
            log.info("sent via %s", outcome.provider, extra=ctx)
            metrics.sent(message, outcome.provider)
            return Ack(), fate != LOST
        try:
            attempt = claim.attempt or self.transitions.attempts_of(message)
            return self._failed(queued, message, claim, outcome, attempt, ctx)
        except Exception as exc:
            # Nothing was sent: the claim lapses and the message is tried again.
            return self._storage_failed(queued, exc, ctx), False

    def _send(self, message: NotificationMessage) -> DeliveryResult | DeliveryError:
        """What is made at send time, then the provider call behind the rate limit; never
        raises."""
        try:
            if self.prepare is not None:
                message = self.prepare(message)
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a rendering bug fails this send, not the worker
            log.exception("preparing the send failed", extra=_ctx(message))
            return RetryableError(f"unexpected {type(exc).__name__} preparing the send")
        if self.rate_limit is not None:
            metrics.rate_limit_waited(message.channel, self.rate_limit.acquire())
        try:
            with (
                metrics.PROVIDER_SECONDS.labels(message.channel).time(),
                tracing.child(message.notification_id, "herald.provider", channel=message.channel),
            ):
                result = self.notifier.send(message)
            if not isinstance(result, DeliveryResult):
                return RetryableError(f"notifier returned {type(result).__name__}, not a result")
            return result
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a notifier bug must not take the worker down
            log.exception("notifier raised an unexpected error", extra=_ctx(message))
            return RetryableError(f"unexpected {type(exc).__name__}")

    def _dead_addresses(
        self, message: NotificationMessage, addresses: list[str], ctx: dict[str, str]
    ) -> None:
        if self.on_dead_addresses is None:
            return
        try:
            self.on_dead_addresses(message, addresses)
        except Exception as exc:  # best effort: the outcome stands
            log.warning("could not disable dead addresses: %s", exc, extra=ctx)

    def _not_claimed(
        self, queued: QueueMessage, message: NotificationMessage, status: str | None
    ) -> Result:
        ctx = _ctx(message)
        if status is None:
            return DeadLetter("no notification record for this message")
        if status == NotificationStatus.SENDING:
            if queued.receive_count >= self.receive_budget:
                # Its holder settles it; if the holder died, the reconciler re-enqueues it.
                log.warning("held elsewhere on the last receive; leaving it", extra=ctx)
                return Ack()
            log.info("another worker holds this notification", extra=ctx)
            metrics.CLAIM_CONFLICTS.labels(message.channel).inc()
            return Retry(CLAIM_CONFLICT_DELAY, "claimed elsewhere")
        redriven = "source_queue" in queued.attributes and self.on_redriven is not None
        if status == NotificationStatus.FAILED and redriven:
            try:
                reopened = self.on_redriven(message)  # type: ignore[misc]
            except Exception as exc:
                return self._storage_failed(queued, exc, ctx)
            if reopened:  # claimable now: back at once
                log.info("redriven from the dead-letter queue; reopened", extra=ctx)
                return Retry(0, "redriven; reopened")
        if status == NotificationStatus.FAILED and not redriven:
            # Its worker recorded FAILED and then either copied the message to the DLQ and
            # could not delete it, or could not copy it: a copy now guarantees one to
            # replay (a second copy is harmless: a redrive reopens the record once).
            log.info("already FAILED; copied to the dead-letter queue", extra=ctx)
            return DeadLetter("notification FAILED (copied again on a later receive)")
        log.info("already %s; nothing to send", status, extra=ctx)
        return Ack()

    def _failed(
        self,
        queued: QueueMessage,
        message: NotificationMessage,
        claim: Claim,
        error: DeliveryError,
        attempt: int,
        ctx: dict[str, str],
    ) -> tuple[Result, bool]:
        reason = str(error)
        last_receive = queued.receive_count >= self.receive_budget
        ceiling = self.policy.retry_after_max
        retry_after = error.retry_after if isinstance(error, RetryableError) else None
        too_long = retry_after is not None and ceiling is not None and retry_after > ceiling
        if too_long:
            reason = (
                f"{reason}; the provider asks to wait {retry_after:g}s, beyond the "
                f"{ceiling:g}s a retry may wait (HERALD_RETRY_AFTER_MAX_SECONDS): failed now, "
                "not sent early; redrive it later"
            )
        elif isinstance(error, RetryableError) and attempt < self.policy.max_attempts:
            if not last_receive:
                delay = backoff_seconds(
                    attempt, self.policy.base, self.policy.cap, error.retry_after
                )
                self.transitions.mark_retrying(message, reason, delay, claim.token)
                log.info("attempt %d failed, retry in %ds: %s", attempt, delay, reason, extra=ctx)
                metrics.not_sent(message, "retry")
                return Retry(delay, reason), False
            reason = f"gave up after {queued.receive_count} receives: {reason}"
        elif isinstance(error, RetryableError) and not too_long:
            reason = f"gave up after {attempt} attempts: {reason}"
        if isinstance(error, PermanentError) and error.address_invalid:
            self._dead_addresses(message, message.addresses, ctx)
        fate = self.outcomes.record(
            Outcome(message, claim.token, NotificationStatus.FAILED, error=reason)
        )
        log.warning("failed: %s", reason, extra=ctx)
        metrics.not_sent(message, "failed")
        if fate == LOST:  # another claim holds it now and settles it
            return Ack(), False
        return DeadLetter(reason), True


def _ctx(message: NotificationMessage) -> dict[str, str]:
    return {"notification_id": message.notification_id, "event_id": message.event_id}

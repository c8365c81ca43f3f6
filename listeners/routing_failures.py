"""What the router does with a message it could not route: retry with back-off, or, on the
receive before SQS's own backstop, fail the event with the reason and dead-letter it.

Apart from the router so the policy reads in one place: every routing path (a receive's
user events together, one event alone, a digest's absorb) hands its exceptions here.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from alerting.alerts import AlertBusy
from core.directory.users import StoreBusy
from core.ledger.event_status import EventStatusChanges
from core.platform.settings import Settings
from listeners.backoff import backoff_seconds
from listeners.channel_queues import EnqueueFailed
from listeners.fanout import RouterWork
from listeners.messages import DeadLetter, QueueMessage, Result, Retry

log = logging.getLogger("herald.router")

#: Failures worth a retry as they are (AWS, a busy item); anything else is a bug, retried
#: too and logged with its traceback, until the receive budget ends it.
RETRYABLE = (ClientError, BotoCoreError, StoreBusy, EnqueueFailed, AlertBusy)


def routing_failure(
    settings: Settings,
    events: EventStatusChanges,
    message: QueueMessage,
    work: RouterWork,
    exc: Exception,
) -> Result:
    event_id = work.event.event_id
    if message.receive_count >= settings.receive_budget:
        # The last receive before SQS's backstop: settle it here, with the reason on the
        # event, instead of letting the message vanish into the DLQ behind its back.
        reason = (
            f"routing gave up after {message.receive_count} receives "
            f"(fan-out page {work.page}): {type(exc).__name__}: {exc}"
        )[:500]
        try:
            events.fail(event_id, reason, routing=True)
        except Exception as store_exc:  # the reconciler finds the event unsettled
            log.error("could not fail the event: %s", store_exc, extra={"event_id": event_id})
        log.error("dead-lettering: %s", reason, extra={"event_id": event_id})
        return DeadLetter(reason)
    delay = backoff_seconds(
        message.receive_count,
        settings.retry_base_seconds,
        settings.retry_cap_seconds,
    )
    if isinstance(exc, RETRYABLE):
        log.warning(
            "page %d failed, retrying in %ds: %s",
            work.page,
            delay,
            exc,
            extra={"event_id": event_id},
        )
    else:  # a bug: retried, and the queue's RedrivePolicy ends a message that loops
        log.exception(
            "page %d crashed, retrying in %ds",
            work.page,
            delay,
            extra={"event_id": event_id},
            exc_info=exc,
        )
    return Retry(delay, f"{type(exc).__name__}: {exc}")

"""Accepting events: record each one, then publish it, with requests sharing the calls.

Every accepted event costs a conditional put (the idempotency check) and a publish, and one
botocore call costs the API more CPU than the whole rest of a request. Requests that arrive
together are therefore accepted together (`GroupCommit`): one TransactWriteItems records
them all (`EventWrites.put_new_batch`; a lone request is a plain PutItem), then PublishBatch
calls of ten publish the ones that were new. Recording and publishing in one round lets
the whole round's requests share both calls; a round in flight gathers the next one, and
at a trickle, when no round is in flight, a short linger (`HERALD_ACCEPT_LINGER_SECONDS`)
gathers it instead.

A publish that fails is not the request's failure: the event is recorded, so it is logged
and the reconciler publishes it later (the outbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from api.group_commit import GroupCommit
from core.aws.dynamo import TRANSACT_MAX
from core.catalogue.models import Event
from core.ledger.event_items import EventExists
from core.ledger.event_writes import EventWrites
from core.ledger.publisher import publish_events
from core.platform import metrics, tracing

log = logging.getLogger("herald.api.intake")

Outcome = EventExists | Exception | None


def accept_events(
    store: EventWrites, sns: Any, topic_arn: str, events: Sequence[Event]
) -> list[Outcome]:
    """Record, then publish the new ones; per event None (accepted), EventExists (its id
    was taken: the stored record inside) or the error that kept it from being recorded."""
    outcomes = store.put_new_batch([store.new_record(e) for e in events])
    fresh = [e for e, outcome in zip(events, outcomes, strict=True) if outcome is None]
    metrics.events_accepted(fresh)
    if fresh:
        try:
            failures = publish_events(sns, topic_arn, fresh)
        except Exception as exc:  # recorded all the same: the reconciler publishes them
            failures = {e.event_id: f"{type(exc).__name__}: {exc}" for e in fresh}
        for event_id, error in failures.items():
            log.warning(
                "publish failed, left to the reconciler: %s", error, extra={"event_id": event_id}
            )
    return outcomes


def _consume(task: asyncio.Future[Any]) -> None:
    """The late outcome of a request that was already answered: logged, not raised."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("a late accept failed: %s", task.exception())


class AcceptPending(Exception):
    """The event was not confirmed within the request's deadline. It may still be recorded
    (the write goes on): a retry with the same Idempotency-Key returns it if it was."""


class EventIntake:
    def __init__(
        self,
        store: EventWrites,
        sns: Any,
        topic_arn: str,
        deadline_seconds: float = 5.0,
        linger_seconds: float = 0.0,
    ) -> None:
        self._store = store
        self._sns = sns
        self._topic_arn = topic_arn
        self._deadline = deadline_seconds
        self._group: GroupCommit[Event, Outcome] = GroupCommit(
            self.accept_now, TRANSACT_MAX, linger=linger_seconds
        )

    def accept_now(self, events: Sequence[Event]) -> list[Outcome]:
        """Accept a batch on this thread (POST /events/batch brings its own)."""
        return accept_events(self._store, self._sns, self._topic_arn, events)

    async def accept(self, event: Event, trace_context: dict[str, str] | None = None) -> None:
        """Returns once the event is durable (and, unless SNS failed, published); raises
        EventExists with the stored record when its id is taken, the AWS error that kept
        it from being recorded, or AcceptPending when AWS has not answered in time (a
        request must not hang on a frozen endpoint: the client is told at once)."""
        task = asyncio.ensure_future(self._group.submit(event))
        try:
            with (
                metrics.API_ACCEPT_SECONDS.time(),
                tracing.hop(event.event_id, "herald.accept", trace_context),
            ):
                await asyncio.wait_for(asyncio.shield(task), self._deadline)
        except TimeoutError:
            task.add_done_callback(_consume)
            raise AcceptPending(event.event_id) from None

    async def drain(self) -> None:
        await self._group.drain()

"""Closing a digest: the due handler of kind `digest`, and the router's early close.

A digest sends by becoming an event of its own: its type and recipient, its data the
digest's (`count`, `actors`, `others`, `items`, `first_at`, `last_at`, over the first
event's data), its id fixed by the digest (`DigestHead.digest_event_id`). That event is
recorded and published like a POSTed one, and the router routes it like any other (it
carries `digest_id`, so it is never digested again): preferences, quiet hours and templates
apply at that moment, workers claim before they send, and the reconciler publishes it
again if the publish is lost. Exactly once, whatever races:

    close     OPEN → CLOSED, conditional, returning the digest as closed (one winner;
              a later close reads the same closed digest)
    record    a conditional put of the digest's event by its fixed id: a second close, or
              a close retried after a crash between the two writes, finds it and creates
              nothing (it publishes a START one again, which the router takes once)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.aws.clients import AwsClients
from core.catalogue.models import Event, EventStatus, utcnow
from core.digests.items import OPEN, digest_event, parse_time
from core.digests.store import DigestStore
from core.ledger.event_items import EventExists
from core.ledger.event_writes import EventWrites
from core.ledger.publisher import publish_events
from core.platform.settings import Settings
from core.timing.due_work import DueWork

log = logging.getLogger("herald.digests")

DIGEST_KIND = "digest"


class DigestCloser:
    """Closes digests and records and publishes their events."""

    def __init__(
        self,
        store: DigestStore,
        writes: EventWrites,
        sns: Any,
        topic_arn: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.writes = writes
        self.sns = sns
        self.topic_arn = topic_arn
        self.clock = clock

    def __call__(self, work: DueWork) -> None:
        """A scheduled close. One scheduled by an absorber whose window another router
        opened (a lost race: its time is not the window's) finds the digest open before
        its end and leaves it to the window's own close; the retry of a failed early close
        (`data.reason` max_items) closes a full digest whenever it comes."""
        head = self.store.get(work.ref)
        if head is None:
            log.info("no digest %s to close (its opening lost a race)", work.ref)
            return
        early = work.data.get("reason") == "max_items" and head.full
        if head.status == OPEN and work.due_at < parse_time(head.closes_at) and not early:
            log.info("digest %s closes at %s, not %s", work.ref, head.closes_at, work.due_at)
            return
        self.close(work.ref, "max_items" if early else "window")

    def close(self, ref: str, reason: str) -> Event | None:
        """Close the digest and send its event; the event (None when nothing is to be
        sent: no digest, or a leading window nobody else joined). Safe to repeat."""
        head = self.store.close(ref, reason)
        if head is None or head.count == 0:
            return None
        event = digest_event(head, self.clock())
        outcome = self.writes.put_new_batch([self.writes.new_record(event)])[0]
        if isinstance(outcome, EventExists):
            if outcome.existing.status is not EventStatus.START:
                return outcome.existing  # recorded and routed by an earlier close
            event = Event.model_validate(
                outcome.existing.model_dump(include=set(Event.model_fields))
            )
        elif outcome is not None:
            raise outcome
        failures = publish_events(self.sns, self.topic_arn, [event])
        if failures:  # recorded START: the reconciler publishes it after its grace
            log.warning(
                "digest event not published: %s", failures, extra={"event_id": event.event_id}
            )
        log.info(
            "digest %s closed (%s): %d event(s) in one notification",
            ref,
            reason,
            head.count,
            extra={"event_id": event.event_id},
        )
        return event


def build_digest_closer(
    settings: Settings, clients: AwsClients, clock: Callable[[], datetime] = utcnow
) -> DigestCloser:
    """The closer of this stack's table and topic (the due sender's `digest` handler)."""
    table = clients.names.table
    retention = settings.event_retention_days
    return DigestCloser(
        DigestStore(clients.dynamodb, table, retention),
        EventWrites(clients.dynamodb, table, retention),
        clients.sns,
        clients.topic_arn,
        clock,
    )

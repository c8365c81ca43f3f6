"""The router's digest step: events that a digest gathers are absorbed, not routed.

For each message whose event has a digest (its own, or its type's when
`HERALD_DIGEST_TYPE_DEFAULTS` is on; never a critical event, an alert's, a topic's or a
digest's own event: `core.digests.items.digest_of`):

    no profile for the user        → routed as usual (which fails it, saying why)
    absorbed                       → DIGESTED, acknowledged; at `max_items` the digest
                                     closes now (`listeners/digest_closing.py`)
    opens a leading window         → routed as usual (the router's one-event path):
                                     sent at once
    absorbed before (redelivery)   → acknowledged
    settled / gone                 → acknowledged / dead-lettered, as the router does

A new window's close is scheduled (a due item, `core.timing`) before the window is
created, so no crash leaves an open digest that nothing closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

from core.aws.clients import AwsClients
from core.catalogue.event_types import Digest
from core.catalogue.models import utcnow
from core.digests.items import DigestHead, digest_of, parse_time
from core.digests.store import DigestStore
from core.directory.users import UserStore
from core.ledger.notification_records import EventClosed, EventNotFound
from core.platform.settings import Settings
from core.security.tenants import DEFAULT_TENANT
from core.timing.due_work import DueStore, DueWork
from listeners.digest_closing import DIGEST_KIND, DigestCloser, build_digest_closer
from listeners.fanout import RouterWork
from listeners.messages import Ack, DeadLetter, QueueMessage, Result

log = logging.getLogger("herald.digests")

Entry = tuple[int, QueueMessage, RouterWork]
EARLY_CLOSE_RETRY = timedelta(seconds=10)  # a failed early close, tried again by the due sender
Failed = Callable[[QueueMessage, RouterWork, Exception], Result]


class Scheduler(Protocol):
    """Where a digest's close waits (`core.timing`'s DueStore)."""

    def schedule(self, work: DueWork) -> None: ...

    def unschedule(self, work: DueWork) -> None: ...


def close_work(head: DigestHead) -> DueWork:
    """The due item that closes `head` at the end of its window."""
    return DueWork(
        kind=DIGEST_KIND,
        ref=head.ref,
        due_at=parse_time(head.closes_at),
        tenant=head.tenant or DEFAULT_TENANT,
    )


def early_close_work(head: DigestHead) -> DueWork:
    """The due item that retries a full digest's early close soon (its handler closes a
    full digest before its window's end: `DigestCloser.__call__`)."""
    return DueWork(
        kind=DIGEST_KIND,
        ref=head.ref,
        due_at=utcnow() + EARLY_CLOSE_RETRY,
        tenant=head.tenant or DEFAULT_TENANT,
        data={"reason": "max_items"},
    )


class Digesting:
    """Absorbs a receive's digested events; hands the rest back to the router."""

    def __init__(
        self,
        store: DigestStore,
        users: UserStore,
        scheduler: Scheduler,
        closer: DigestCloser,
        *,
        type_defaults: bool = False,
    ) -> None:
        self.store = store
        self.users = users
        self.scheduler = scheduler
        self.closer = closer
        self.type_defaults = type_defaults

    def spec(self, work: RouterWork) -> Digest | None:
        return digest_of(work.event, type_defaults=self.type_defaults)

    def takes(self, work: RouterWork) -> bool:
        """Whether this message's event is one for a digest (a repair never is: its event
        was routed, and its records are what the repair is for)."""
        return work.page == 0 and not work.repair and self.spec(work) is not None

    def absorb_all(
        self,
        entries: Sequence[Entry],
        results: list[Result | None],
        failed: Failed,
    ) -> list[Entry]:
        """Absorb what can be; set each absorbed message's result and return the entries
        the router routes as usual."""
        if not entries:
            return []
        users = {work.event.user_id for _, _, work in entries if work.event.user_id}
        try:
            profiles = self.users.get_many(users, consistent=True)
        except Exception as exc:
            for index, message, work in entries:
                results[index] = failed(message, work, exc)
            return []
        route: list[Entry] = []
        for entry in entries:
            index, message, work = entry
            if work.event.user_id not in profiles:
                route.append(entry)
                continue
            results[index] = self._absorb(entry, route, failed)
        return route

    def _absorb(self, entry: Entry, route: list[Entry], failed: Failed) -> Result | None:
        _, message, work = entry
        event = work.event
        spec = self.spec(work)
        assert spec is not None
        try:
            absorption = self.store.absorb(event, spec, self._schedule)
        except EventClosed as exc:
            log.warning("not digested: %s", exc, extra={"event_id": event.event_id})
            return Ack()
        except EventNotFound:
            return DeadLetter(f"no event record for {event.event_id}")
        except Exception as exc:
            return failed(message, work, exc)
        if absorption.outcome == "lead":
            route.append(entry)
            return None
        head = absorption.head
        log.info(
            "digested into %s",
            absorption.digest_event_id,
            extra={"event_id": event.event_id},
        )
        if head is not None and head.full:  # also when an earlier try filled it
            self._close_early(head)
        return Ack()

    def _schedule(self, head: DigestHead) -> None:
        self.scheduler.schedule(close_work(head))

    def _close_early(self, head: DigestHead) -> None:
        """`max_items` reached: close now. A failure here leaves the close to the due
        sender, soon (`EARLY_CLOSE_RETRY`, then its own retries), not at the window's end,
        which may be days away; the close is idempotent, so a close that did happen in
        part is finished, not repeated."""
        try:
            self.closer.close(head.ref, "max_items")
            self.scheduler.unschedule(close_work(head))
        except Exception as exc:
            log.warning("digest %s: early close failed, the due sender retries: %s", head.ref, exc)
            try:
                self.scheduler.schedule(early_close_work(head))
            except Exception as again:  # the window's own close is still scheduled
                log.warning("digest %s: closes with its window: %s", head.ref, again)


def build_digesting(settings: Settings, clients: AwsClients, users: UserStore) -> Digesting:
    """The router's digest step on this stack's table, due work and topic."""
    table = clients.names.table
    return Digesting(
        DigestStore(clients.dynamodb, table, settings.event_retention_days),
        users,
        DueStore(clients.dynamodb, table, settings.due_shards),
        build_digest_closer(settings, clients),
        type_defaults=settings.digest_type_defaults,
    )

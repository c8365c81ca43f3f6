"""Delayed events and cancels, for the events routes.

A delayed event (`send_at`, `delay`) is recorded SCHEDULED together with its due item in
one transaction (`core.timing.waiting_events`) and not published: the due sender publishes
it when due. The API still sends nothing. A cancel is one conditional write of the event
(SCHEDULED → CANCELLED), which a release of any of its notifications refuses and which
refuses every later release; the event's SCHEDULED notifications are then cancelled by a
due item of kind `cancel`, due at once (any number of them), and a user's event's few at
once by the request too (one partition, at most 25 records: a bounded read).
"""

from __future__ import annotations

import logging
from datetime import datetime

from api.services import Services
from core.catalogue.models import Event, EventStatus, iso, utcnow
from core.ledger.event_items import EventExists
from core.ledger.event_reads import tally_layout
from core.ledger.record_counts import COUNTED_RECORDS
from core.timing.delays import due_time
from core.timing.due_work import DueStore, DueWork
from core.timing.waiting_events import WaitingEvents
from core.timing.waiting_records import cancel_scheduled

log = logging.getLogger("herald.api.scheduled_events")

EVENT = "event"  # the due item kinds of listeners/due_handlers.py
CANCEL = "cancel"


def _stores(services: Services) -> tuple[WaitingEvents, DueStore]:
    clients, settings = services.clients, services.settings
    table = clients.names.table
    return (
        WaitingEvents(clients.dynamodb, table, settings.event_retention_days),
        DueStore(clients.dynamodb, table, settings.due_shards),
    )


def accept_delayed(services: Services, event: Event) -> None:
    """Record a delayed event SCHEDULED with its due item; raises EventExists (the stored
    record) when its id is taken."""
    assert event.send_at is not None
    waiting, due = _stores(services)
    record = services.ledger.event_writes.new_record(event)
    record = record.model_copy(update={"status": EventStatus.SCHEDULED, "last_published_at": None})
    work = DueWork(
        kind=EVENT,
        ref=event.event_id,
        due_at=datetime.fromisoformat(event.send_at.replace("Z", "+00:00")),
        tenant=event.tenant or "",
    )
    waiting.record_delayed(record, due, work)


def cancel(services: Services, event_id: str) -> str | None:
    """Cancel a SCHEDULED event; None when it is (now or already) CANCELLED, else the status
    that refused it."""
    waiting, due = _stores(services)
    refused = waiting.cancel(event_id)
    if refused is not None:
        return refused
    # The records are the due sender's to cancel (any number of them, durably), and a
    # user's event's few are cancelled here at once, so GET shows them CANCELLED now.
    due.schedule(DueWork(kind=CANCEL, ref=event_id, due_at=utcnow(), tenant=""))
    clients = services.clients
    layout = tally_layout(clients.dynamodb, clients.names.table, event_id, consistent=True)
    if layout.get(COUNTED_RECORDS):
        try:
            cancel_scheduled(clients.dynamodb, clients.names.table, due, event_id)
        except Exception as exc:  # the due sender's cancel item does it all the same
            log.warning("records left to the due sender: %s", exc, extra={"event_id": event_id})
    return None


def delayed_until(send_at: str | None, delay: str | None) -> str | None:
    """A delayed event's due time (already validated by the schema); None when it asked
    for none or for a time already past (it is sent at once)."""
    now = utcnow()
    due = due_time(send_at, delay, now)
    return iso(due) if due is not None and due > now else None


def accept_batch(
    services: Services, events: list[Event]
) -> list[tuple[Event, EventExists | Exception | None]]:
    """A batch's events accepted: the others recorded and published together by the intake,
    the delayed ones each recorded with its due item; per event None (accepted),
    EventExists (the stored record) or the error that kept it from being recorded."""
    now = [e for e in events if e.send_at is None]
    out: list[tuple[Event, EventExists | Exception | None]] = list(
        zip(now, services.intake.accept_now(now), strict=True)
    )
    for delayed in [e for e in events if e.send_at is not None]:
        try:
            accept_delayed(services, delayed)
            out.append((delayed, None))
        except Exception as exc:  # EventExists, or the storage error the item reports
            out.append((delayed, exc))
    return out

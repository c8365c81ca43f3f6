"""Delayed events (`send_at`, `delay`): recorded SCHEDULED with a due item by the API
(`core.timing.waiting_events.record_delayed`), published here when due.

The due item's handler moves the event SCHEDULED → START (refused once it was cancelled)
and publishes it; from there it is routed as any event. Publishing twice (a hand-out
repeated after a lapsed lease) is harmless: the router routes an event once. A publish
that fails raises, so the item is tried again later; the reconciler republishes a START
event past its grace anyway, as it does for the API's own failed publishes.
"""

from __future__ import annotations

import logging
from typing import Any

from core.catalogue.models import Event
from core.ledger.publisher import publish_events
from core.timing.due_work import DueWork
from core.timing.waiting_events import WaitingEvents

log = logging.getLogger("herald.delayed_events")

EVENT = "event"


class DelayedEvents:
    def __init__(self, waiting: WaitingEvents, sns: Any, topic_arn: str) -> None:
        self.waiting = waiting
        self.sns = sns
        self.topic_arn = topic_arn

    def publish(self, work: DueWork) -> None:
        record = self.waiting.publishable(work.ref)
        if record is None:
            return  # cancelled, gone, or routed already
        event = Event.model_validate(record.model_dump(include=set(Event.model_fields)))
        failures = publish_events(self.sns, self.topic_arn, [event])
        if failures:
            raise RuntimeError(f"publish failed: {failures[event.event_id]}")
        log.info("delayed event published", extra={"event_id": event.event_id})

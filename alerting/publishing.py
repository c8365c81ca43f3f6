"""Rule events into the pipeline, as the API accepts events: record (conditional put, so a
repeated evaluation records nothing twice), then publish the new ones. A failed publish is
left to the reconciler, like the API's."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from core.catalogue.models import Event
from core.ledger.event_items import EventExists
from core.ledger.event_writes import EventWrites
from core.ledger.publisher import publish_events

log = logging.getLogger("herald.alerting.publish")


def record_and_publish(
    store: EventWrites, sns: Any, topic_arn: str, events: Sequence[Event]
) -> list[str]:
    """Ids of the events this call recorded; raises the first storage error."""
    if not events:
        return []
    outcomes = store.put_new_batch([store.new_record(e) for e in events])
    for outcome in outcomes:
        if isinstance(outcome, Exception) and not isinstance(outcome, EventExists):
            raise outcome
    fresh = [e for e, o in zip(events, outcomes, strict=True) if o is None]
    if fresh:
        try:
            failures = publish_events(sns, topic_arn, fresh)
        except Exception as exc:  # recorded: the reconciler publishes them
            failures = {e.event_id: f"{type(exc).__name__}: {exc}" for e in fresh}
        for event_id, error in failures.items():
            log.warning(
                "publish failed, left to the reconciler: %s", error, extra={"event_id": event_id}
            )
    return [e.event_id for e in fresh]

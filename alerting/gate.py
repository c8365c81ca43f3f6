"""The router's question for an event with a `dedupe_key`: does it notify?

Asked in the router, before fan-out, and not in the API, because that is where an event is
handled once per delivery with retries: the API accepts requests in groups (one
transaction per round) and must stay cheap, while the router already takes each event
through conditional writes and retries a message that fails. The answer is stored per
event id (`AlertStore.decide`), so the router may ask again after a crash or a redelivery
and act the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from alerting.alerts import AlertPolicy, AlertStore, Decision, tenant_of
from alerting.silences import SilenceCache, SilenceStore
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, utcnow
from core.platform.settings import Settings


def policy_for(event: Event) -> AlertPolicy:
    """The event's own repeat interval and resolved setting, else its type's."""
    spec = EVENT_TYPES.get(event.type)
    repeat = event.repeat_interval_seconds
    if repeat is None:
        repeat = spec.repeat_interval_seconds if spec else 4 * 3600
    notify_resolved = event.notify_resolved
    if notify_resolved is None:
        notify_resolved = spec.notify_resolved if spec else False
    return AlertPolicy(repeat_interval_seconds=repeat, notify_resolved=notify_resolved)


class AlertGate:
    def __init__(
        self,
        settings: Settings,
        dynamodb: Any,
        table: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.alerts = AlertStore(dynamodb, table, settings.event_retention_days)
        self.silences = SilenceCache(
            SilenceStore(dynamodb, table), ttl=settings.alert_silence_cache_seconds, clock=clock
        )
        self.clock = clock

    def decide(self, event: Event) -> Decision:
        assert event.dedupe_key is not None
        muted = self.silences.mutes(tenant_of(event), event.type, event.dedupe_key)
        return self.alerts.decide(event, policy_for(event), silenced=muted, now=self.clock())

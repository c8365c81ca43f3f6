"""Publishing from the API: concurrent requests share PublishBatch calls (group commit).

A publish that fails is not the request's failure: the event is recorded, so the caller
logs it and the reconciler publishes it later.
"""

from __future__ import annotations

from typing import Any

from api.group_commit import GroupCommit
from core.models import Event
from core.publisher import SNS_BATCH_MAX, publish_events


class PublishError(Exception):
    """SNS did not take the event; the reconciler will publish it later."""


class PublishBatcher:
    def __init__(self, sns: Any, topic_arn: str, linger_seconds: float) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._group: GroupCommit[Event, None] = GroupCommit(
            self._publish, SNS_BATCH_MAX, linger_seconds
        )

    def _publish(self, events: list[Event]) -> list[BaseException | None]:
        try:
            failures = publish_events(self._sns, self._topic_arn, events)
        except Exception as exc:  # endpoint down, topic missing: every entry failed
            failures = {e.event_id: f"{type(exc).__name__}: {exc}" for e in events}
        return [
            PublishError(failures[e.event_id]) if e.event_id in failures else None for e in events
        ]

    async def publish(self, event: Event) -> None:
        await self._group.submit(event)

    async def drain(self) -> None:
        await self._group.drain()

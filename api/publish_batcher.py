"""Gathers publishes from concurrent requests into PublishBatch calls.

Under load many requests publish within the same few milliseconds; one PublishBatch of ten
costs about what one Publish does, so waiting `linger` for company cuts SNS calls and API
CPU per event. An idle API pays at most `linger` of extra latency.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.concurrency import run_in_threadpool

from core.models import Event
from core.publisher import SNS_BATCH_MAX, publish_events


class PublishError(Exception):
    """SNS did not take the event; the reconciler will publish it later."""


class PublishBatcher:
    def __init__(self, sns: Any, topic_arn: str, linger_seconds: float) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._linger = linger_seconds
        self._pending: list[tuple[Event, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def publish(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((event, future))
        if len(self._pending) >= SNS_BATCH_MAX:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger, self._flush)
        await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending[:SNS_BATCH_MAX], self._pending[SNS_BATCH_MAX:]
        if self._pending:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._flush)
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _send(self, batch: list[tuple[Event, asyncio.Future[None]]]) -> None:
        events = [event for event, _ in batch]
        try:
            failures = await run_in_threadpool(publish_events, self._sns, self._topic_arn, events)
        except Exception as exc:  # endpoint down, topic missing: every entry failed
            failures = {e.event_id: f"{type(exc).__name__}: {exc}" for e in events}
        for event, future in batch:
            if future.done():
                continue
            if event.event_id in failures:
                future.set_exception(PublishError(failures[event.event_id]))
            else:
                future.set_result(None)

    async def drain(self) -> None:
        """Send what is pending and wait for calls in flight (shutdown)."""
        if self._pending:
            self._flush()
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

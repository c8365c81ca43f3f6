"""Keeps messages being worked on invisible, and the claims behind them alive.

While a batch is in a handler (a router page, a worker's sends and the recording of their
outcomes) its messages' visibility is extended every half timeout, so a slow provider call
or a storage outage is not redelivered to another consumer mid-work. Hooks run on the same
beat: the delivery handler extends the lease of every claim it holds, so the lease on the
record and the visibility of its message lapse together, never one before the other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from listeners.batch import SQS_BATCH_MAX
from listeners.messages import QueueMessage

log = logging.getLogger("herald.heartbeat")


class Heartbeat:
    def __init__(self, sqs: Any, queue_url: Any, visibility_seconds: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self.visibility = visibility_seconds
        self._inflight: dict[str, QueueMessage] = {}
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def on_beat(self, hook: Callable[[], None]) -> None:
        """Run `hook` on every beat (after the visibility extension)."""
        self._hooks.append(hook)

    def track_many(self, messages: Iterable[QueueMessage]) -> None:
        with self._lock:
            for message in messages:
                self._inflight[message.message_id] = message

    def done(self, message: QueueMessage) -> None:
        self.done_many([message])

    def done_many(self, messages: Iterable[QueueMessage]) -> None:
        with self._lock:
            for message in messages:
                self._inflight.pop(message.message_id, None)

    def _run(self) -> None:
        interval = max(self.visibility / 2, 1)
        while not self._stop.wait(interval):
            self.beat()

    def beat(self) -> None:
        with self._lock:
            messages = list(self._inflight.values())
        if messages:
            self.extend(messages)
        for hook in self._hooks:
            try:
                hook()
            except Exception:  # a failed beat is retried on the next one
                log.exception("heartbeat hook failed")

    def extend(self, messages: list[QueueMessage]) -> None:
        by_queue: dict[str, list[QueueMessage]] = {}
        for m in messages:
            by_queue.setdefault(m.queue, []).append(m)
        for queue, group in by_queue.items():
            for start in range(0, len(group), SQS_BATCH_MAX):
                entries = [
                    {
                        "Id": str(i),
                        "ReceiptHandle": m.receipt_handle,
                        "VisibilityTimeout": self.visibility,
                    }
                    for i, m in enumerate(group[start : start + SQS_BATCH_MAX])
                ]
                try:
                    resp = self._sqs.change_message_visibility_batch(
                        QueueUrl=self._queue_url(queue), Entries=entries
                    )
                except (BotoCoreError, ClientError) as exc:
                    log.warning("heartbeat failed: %s", exc, extra={"queue": queue})
                    continue
                for failed in resp.get("Failed", []):
                    log.warning(
                        "heartbeat refused for a message: %s",
                        failed.get("Code"),
                        extra={"queue": queue},
                    )

"""Keeps long sends invisible: while a message is in flight its visibility is extended
every half timeout, so a slow provider call is not redelivered to another worker mid-send."""

from __future__ import annotations

import logging
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from listeners.messages import QueueMessage

log = logging.getLogger("herald.heartbeat")


class Heartbeat:
    def __init__(self, sqs: Any, queue_url: Any, visibility_seconds: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._visibility = visibility_seconds
        self._inflight: dict[str, QueueMessage] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def track(self, message: QueueMessage) -> None:
        with self._lock:
            self._inflight[message.message_id] = message

    def done(self, message: QueueMessage) -> None:
        with self._lock:
            self._inflight.pop(message.message_id, None)

    def _run(self) -> None:
        interval = max(self._visibility / 2, 1)
        while not self._stop.wait(interval):
            with self._lock:
                messages = list(self._inflight.values())
            if messages:
                self.extend(messages)

    def extend(self, messages: list[QueueMessage]) -> None:
        by_queue: dict[str, list[QueueMessage]] = {}
        for m in messages:
            by_queue.setdefault(m.queue, []).append(m)
        for queue, group in by_queue.items():
            for start in range(0, len(group), 10):
                entries = [
                    {
                        "Id": str(i),
                        "ReceiptHandle": m.receipt_handle,
                        "VisibilityTimeout": self._visibility,
                    }
                    for i, m in enumerate(group[start : start + 10])
                ]
                try:
                    self._sqs.change_message_visibility_batch(
                        QueueUrl=self._queue_url(queue), Entries=entries
                    )
                except (BotoCoreError, ClientError) as exc:
                    log.warning("heartbeat failed: %s", exc, extra={"queue": queue})

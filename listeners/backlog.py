"""Whether a queue's consumer is behind: asked before the reconciler acts on silence.

An event still START, a fan-out that stopped, a record QUEUED for minutes: each looks like
a lost message, and each is also what a consumer that is merely behind looks like (AWS
throttling it, a burst, a restart). Republishing into a backlog deepens it, and giving up
while the message still waits fails notifications that would have gone out. So the
reconciler acts only when the queues the message would sit in have nothing waiting:
then its consumer has reached everything sent before now, and a message that did not
arrive was lost.

"Waiting" is `ApproximateNumberOfMessages` plus `ApproximateNumberOfMessagesDelayed`.
Messages in flight are left out: under steady load some always are, and a message that
keeps failing ends through its consumer's receive budget, not here. A queue whose depth
cannot be read counts as behind: not knowing is no reason to act.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("herald.backlog")

WAITING_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
UNREADABLE = -1


class Backlog:
    """Depth reads for one reconciler pass: each queue is read at most once until
    `forget()`, so a pass that asks about a thousand events costs a few requests."""

    def __init__(self, sqs: Any, queue_url: Callable[[str], str]) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._read: dict[str, int] = {}

    def forget(self) -> None:
        """Start a new pass: depths are read again when next asked for."""
        self._read.clear()

    def waiting(self, queue: str) -> int:
        """Messages waiting in `queue`, or UNREADABLE."""
        if queue not in self._read:
            self._read[queue] = self._depth(queue)
        return self._read[queue]

    def behind(self, queues: Iterable[str]) -> list[str]:
        """The queues of `queues` with messages waiting (or an unreadable depth)."""
        return [q for q in queues if self.waiting(q) != 0]

    def _depth(self, queue: str) -> int:
        try:
            attrs = self._sqs.get_queue_attributes(
                QueueUrl=self._queue_url(queue), AttributeNames=WAITING_ATTRIBUTES
            ).get("Attributes", {})
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not read a queue's depth: %s", exc, extra={"queue": queue})
            return UNREADABLE
        return sum(int(attrs.get(name, 0)) for name in WAITING_ATTRIBUTES)

"""The queue-depth collector: one low-rate process that reads every queue's depth.

    python -m listeners.queue_depths

Every `HERALD_QUEUE_DEPTH_INTERVAL_SECONDS` it reads, for each work queue and its DLQ,
`ApproximateNumberOfMessages` (waiting) and `ApproximateNumberOfMessagesNotVisible` (in
flight or backing off) into `herald_queue_messages`. SQS has no attribute for the oldest
message's age (CloudWatch's ApproximateAgeOfOldestMessage is not an SQS attribute, and the
emulator has no CloudWatch), so a queue with waiting messages is peeked: one receive with
visibility 0 that returns messages with their `SentTimestamp`, of which the oldest is kept.
A peek counts as a receive of the messages it sees, so it runs only on queues with waiting
messages and can be switched off (`HERALD_QUEUE_PEEK_OLDEST=false`).

Idle: a round that finds every work queue empty (nothing waiting, nothing in flight)
doubles the pause before the next, up to `HERALD_QUEUE_DEPTH_IDLE_MAX_SECONDS`; a round that
finds a message goes back to the interval. Dead letters do not keep it busy: they wait for
an operator, and are no traffic. While idle, the dead-letter queues are read every other
round: a message reaches one only through its work queue, which the rounds between read.
Queue URLs are looked up once per process (`AwsClients.queue_url` caches them).

One collector per stack, not one per consumer: depth reads cost AWS calls and do not get
truer by being repeated.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from core.aws.clients import AwsClients
from core.platform import metrics
from core.platform.logs import configure_logging
from core.platform.settings import Settings

log = logging.getLogger("herald.queue_depths")

DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


class QueueDepths:
    def __init__(
        self,
        sqs: Any,
        queue_url: Callable[[str], str],
        queues: list[str],
        peek: bool = True,
        clock: Callable[[], float] = time.time,
        dead_letters: Collection[str] = (),
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self.queues = queues
        self._peek = peek
        self._clock = clock
        self.dead_letters = frozenset(dead_letters)

    def collect(self, skip: Collection[str] = ()) -> dict[str, dict[str, float]]:
        """Read every queue but `skip` once and set the gauges; returns what was read, by
        queue."""
        found: dict[str, dict[str, float]] = {}
        for queue in (q for q in self.queues if q not in skip):
            try:
                found[queue] = self._read(queue)
            except (BotoCoreError, ClientError) as exc:  # the next round tries again
                log.warning("could not read %s: %s", queue, exc, extra={"queue": queue})
                continue
            reading = found[queue]
            metrics.QUEUE_MESSAGES.labels(queue, "visible").set(reading["visible"])
            metrics.QUEUE_MESSAGES.labels(queue, "in_flight").set(reading["in_flight"])
            metrics.QUEUE_OLDEST_AGE.labels(queue).set(reading["oldest_age_seconds"])
        return found

    def _read(self, queue: str) -> dict[str, float]:
        url = self._queue_url(queue)
        attrs = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=DEPTH_ATTRIBUTES)
        values = attrs.get("Attributes", {})
        visible = int(values.get("ApproximateNumberOfMessages", 0))
        in_flight = int(values.get("ApproximateNumberOfMessagesNotVisible", 0))
        oldest = self._oldest_age(url) if visible and self._peek else 0.0
        return {"visible": visible, "in_flight": in_flight, "oldest_age_seconds": oldest}

    def _oldest_age(self, url: str) -> float:
        resp = self._sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        sent = [
            int(m.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
            for m in resp.get("Messages", [])
        ]
        sent = [s for s in sent if s > 0]
        return max(self._clock() - min(sent), 0.0) if sent else 0.0

    def run_forever(self, stop: threading.Event, interval: float, idle_max: float = 0.0) -> None:
        wait, quiet = interval, 0
        while not stop.is_set():
            skip = self.dead_letters if quiet % 2 else frozenset()
            found = self.collect(skip)
            # An unreadable queue is not an empty one.
            every = len(found) == len(self.queues) - len(skip & set(self.queues))
            wait = pause(found if every else {}, interval, wait, idle_max, self.dead_letters)
            quiet = quiet + 1 if wait > interval else 0
            stop.wait(wait)


def pause(
    found: dict[str, dict[str, float]],
    interval: float,
    last: float,
    idle_max: float,
    dead_letters: Collection[str] = (),
) -> float:
    """The interval after a round that saw a message in a work queue (or could not read a
    queue), else twice the last pause, up to `idle_max`."""
    work = [r for q, r in found.items() if q not in dead_letters]
    empty = bool(work) and all(not r["visible"] and not r["in_flight"] for r in work)
    if not empty:
        return interval
    return min(max(last * 2, interval), max(idle_max, interval))


def all_queues(clients: AwsClients) -> list[str]:
    work = clients.names.work_queues()
    return work + [clients.names.dlq_of(q) for q in work]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description="Read queue depths into metrics until SIGTERM.").parse_args(
        argv
    )
    configure_logging("queue-depths")
    settings = Settings()
    clients = AwsClients(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    work = clients.names.work_queues()
    collector = QueueDepths(
        clients.sqs,
        clients.queue_url,
        all_queues(clients),
        settings.queue_peek_oldest,
        dead_letters=[clients.names.dlq_of(q) for q in work],
    )
    log.info(
        "reading %d queues every %ss", len(collector.queues), settings.queue_depth_interval_seconds
    )
    collector.run_forever(
        stop, settings.queue_depth_interval_seconds, settings.queue_depth_idle_max_seconds
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

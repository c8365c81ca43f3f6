"""The outbox reconciler: republishes events left in START past a grace period, and
settles PROCESSING events whose running tally went wrong.

The API records an event before publishing it. If the publish fails (or the API dies in
between) the record is the proof the event was accepted; this loop publishes it again.
Consumers tolerate the rare duplicate, so erring towards republishing is safe.

    python -m listeners.reconciler [--once]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError

from core.aws import AwsClients
from core.event_store import EventStore
from core.logs import configure_logging
from core.publisher import publish_events
from core.settings import Settings

log = logging.getLogger("herald.reconciler")


class Reconciler:
    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients
        self.events = EventStore(
            clients.dynamodb, clients.names.table, settings.event_retention_days
        )

    def run_once(self) -> int:
        """Republish one page of stale events; returns how many were republished."""
        stale = self.events.stale_started(timedelta(seconds=self.settings.reconcile_grace_seconds))
        if not stale:
            return 0
        failures = publish_events(self.clients.sns, self.clients.topic_arn, stale)
        republished = 0
        for event in stale:
            if event.event_id in failures:
                log.warning(
                    "republish failed: %s",
                    failures[event.event_id],
                    extra={"event_id": event.event_id},
                )
                continue
            if self.events.mark_republished(event.event_id):
                republished += 1
                log.info("republished a stale event", extra={"event_id": event.event_id})
        return republished

    def settle_stuck(self) -> int:
        """Settle PROCESSING events whose tally went wrong (a counter update's answer lost,
        or applied twice) by recounting their records; returns how many were settled."""
        grace = timedelta(seconds=self.settings.reconcile_grace_seconds)
        settled = 0
        for event in self.events.stale_processing(grace):
            final = self.events.settle_from_records(event.event_id)
            if final is not None:
                settled += 1
                log.info("settled a stuck event as %s", final, extra={"event_id": event.event_id})
        return settled

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                while self.run_once() and not stop.is_set():
                    pass
                self.settle_stuck()
            except (ClientError, BotoCoreError) as exc:
                log.warning("reconcile pass failed, will retry: %s", exc)
            stop.wait(self.settings.reconcile_interval_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Republish events stuck in START.")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    args = parser.parse_args(argv)
    configure_logging("reconciler")
    settings = Settings()
    reconciler = Reconciler(settings, AwsClients(settings))
    if args.once:
        print(reconciler.run_once(), reconciler.settle_stuck())
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reconciler.run_forever(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The reconciler: nothing accepted is left behind, whatever AWS lost on the way.

    python -m listeners.reconciler [--once]

Each pass walks two kinds of events through the status index, oldest first, resuming
where the last pass stopped (a watermark), so events that are stuck for good never hide
newer ones (both kinds in one walk: they share the index's `OPEN` key):

- START past the grace period: the publish failed or its message was lost. Republished;
  after `reconcile_max_publishes` publishes that no router took (a poison event, say) the
  event is FAILED with that reason instead of being republished for ever.
- PROCESSING untouched past the grace period: audited from its records.
  - every record settled and the fan-out complete: settled with the true counts (a tally
    that went wrong is corrected here);
  - records QUEUED or RETRYING untouched for `reconcile_stranded_seconds`, or SENDING with a
    lease that long lapsed, lost their message (moved to a DLQ by SQS, a delete after a
    lost answer...); a fan-out that stopped likewise lost a page. The event is republished
    as a repair: the router routes every page again, creates what is missing and enqueues
    every record not settled (claims keep a duplicate from sending twice);
  - after `reconcile_max_repairs` repairs, the records still stranded are FAILED with the
    reason, an unfinished fan-out fails the event, and the event settles.

Idle: a pass that found no stale event at all lengthens the pause before the next, doubling
from `reconcile_interval_seconds` up to `reconcile_idle_max_seconds` (never past the
stranded period: this is a safety net for what AWS lost, and a notification is not taken
for lost before that period anyway); a pass that found one goes back to the interval. An
event that goes stale while the reconciler pauses is seen at most the idle maximum later.

Silence is not loss while the queue the message would wait in has a backlog
(`listeners/backlog.py`; a router queue's delayed messages are fan-out pages waiting on
purpose, not backlog: `listeners/fanout_pacing.py`): the republish, repair or give-up
waits for a pass that finds the queue caught up, and the event counts as deferred.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from core.aws.clients import AwsClients
from core.catalogue.event_types import Lane
from core.catalogue.models import EventStatus, NotificationStatus, iso, utcnow
from core.ledger.event_items import record_from_values
from core.ledger.publisher import publish_events
from core.ledger.record_counts import ABSENT, SETTLED_BUCKETS
from core.ledger.shard_layout import ShardLayout
from core.ledger.wiring import build_ledger
from core.platform import metrics
from core.platform.logs import configure_logging
from core.platform.settings import Settings
from listeners.backlog import Backlog
from listeners.fanout_pacing import VisibleBacklog
from listeners.router import REPAIR_ATTRIBUTE

log = logging.getLogger("herald.reconciler")

PAGE_SIZE = 100
OPEN = "open"  # the watermark of the walk over START and PROCESSING
LANES: tuple[Lane, Lane] = ("critical", "normal")


@dataclass
class PassReport:
    republished: int = 0
    failed: int = 0
    settled: int = 0
    repaired: int = 0
    stranded_failed: int = 0
    deferred: int = 0  # due, but the queue its message would wait in has a backlog
    examined: int = 0  # stale events the walks found
    watermarks: dict[str, Any] = field(default_factory=dict)


class Reconciler:
    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients
        table = clients.names.table
        ledger = build_ledger(
            clients.dynamodb, table, settings.event_retention_days, ShardLayout.of(settings)
        )
        self.stale = ledger.stale_events
        self.events = ledger.event_status
        self.tally = ledger.tally
        self.settlement = ledger.settlement
        self.transitions = ledger.transitions
        # Where the walk of the status index's open key resumes (one for START and
        # PROCESSING, which share it).
        self._watermarks: dict[str, dict[str, Any] | None] = {}
        self._examined = 0
        self.backlog = Backlog(clients.sqs, clients.queue_url)
        self.router_backlog = VisibleBacklog(clients.sqs, clients.queue_url)
        self._router_queues = [clients.names.router_queue(lane) for lane in LANES]

    def _behind(self, queues: list[str], event: dict[str, Any], report: PassReport) -> bool:
        """Whether any of `queues` has messages waiting: then the event is deferred."""
        routers = [q for q in queues if q in self._router_queues]
        others = [q for q in queues if q not in self._router_queues]
        waiting = self.backlog.behind(others) + self.router_backlog.behind(routers)
        if waiting:
            report.deferred += 1
            log.info("deferred: %s has messages waiting", ", ".join(waiting), extra=_ctx(event))
        return bool(waiting)

    def _channel_queues(self, states: list[dict[str, Any]]) -> list[str]:
        """The queues of the channels of `states` (records keyed NOTIF#<channel>#...)."""
        channels = sorted({str(s.get("SK", "")).split("#")[1] for s in states})
        names = self.clients.names
        return [names.channel_queue(c, lane) for c in channels if c for lane in LANES]

    def _walk(self, grace: float) -> list[dict[str, Any]]:
        """Up to `reconcile_pages_per_pass` pages of stale START and PROCESSING events, from
        the watermark on; the watermark wraps to the oldest again at the end of
        the index. Both kinds share the status index's `OPEN` key, so one walk of its shards
        finds both: half the queries of a walk per kind, which is most of an idle pass."""
        cutoff = iso(utcnow() - timedelta(seconds=grace))
        found: list[dict[str, Any]] = []
        for _ in range(self.settings.reconcile_pages_per_pass):
            items, last = self.stale.stale_open(cutoff, self._watermarks.get(OPEN), PAGE_SIZE)
            found += items
            self._examined += len(items)
            self._watermarks[OPEN] = last
            if last is None:
                break
        return found

    # --- START ----------------------------------------------------------------------------

    def _started(self, report: PassReport, stale: list[dict[str, Any]]) -> None:
        limit = self.settings.reconcile_max_publishes
        grace = self.settings.reconcile_grace_seconds
        to_publish = []
        for item in stale:
            attempts = int(item.get("publish_attempts", 1))
            if not _republish_due(item, attempts, grace, time.time()):
                continue
            if self._behind(self._router_queues, item, report):
                continue
            if attempts >= limit:
                reason = f"not routed after {attempts} publishes"
                # Only the event as judged: still START, not published since (a router
                # that took it meanwhile moved it on, and the failure would lie).
                seen = item.get("last_published_at")
                if self.events.fail(
                    str(item["event_id"]),
                    reason,
                    expected=EventStatus.START,
                    unchanged=("last_published_at", str(seen)) if seen else None,
                ):
                    report.failed += 1
                    log.error("gave up on an event: %s", reason, extra=_ctx(item))
                continue
            to_publish.append(record_from_values(item))
        if not to_publish:
            return
        failures = publish_events(self.clients.sns, self.clients.topic_arn, to_publish)
        for event in to_publish:
            if event.event_id in failures:
                log.warning(
                    "republish failed: %s",
                    failures[event.event_id],
                    extra={"event_id": event.event_id},
                )
            elif self.events.mark_republished(event.event_id):
                report.republished += 1
                log.info("republished a stale event", extra={"event_id": event.event_id})

    # --- PROCESSING -----------------------------------------------------------------------

    def _processing(self, report: PassReport, stale: list[dict[str, Any]]) -> None:
        for item in stale:
            try:
                self._audit(item, report)
            except (ClientError, BotoCoreError) as exc:
                log.warning("audit failed, next pass retries: %s", exc, extra=_ctx(item))

    def _audit(self, event: dict[str, Any], report: PassReport) -> None:
        event_id = str(event["event_id"])
        # Counting touches the tally, not the event item: a fan-out or its sends that are
        # still counting are moving, and are left alone (before reading any record).
        tally = self.tally.tally_of(event_id)
        grace_before = time.time() - self.settings.reconcile_grace_seconds
        if tally and not _older(tally, grace_before):
            return
        states = self.stale.notification_states(event_id)
        stranded_before = time.time() - self.settings.reconcile_stranded_seconds
        stranded = [s for s in states if _stranded(s, stranded_before)]
        unsettled = [s for s in states if str(s.get("status")) not in SETTLED_BUCKETS]
        fanout_complete = bool(tally.get("fanout_complete") or event.get("fanout_complete"))
        if fanout_complete and not unsettled:
            if self.settlement.settle_from_records(event_id) is not None:
                report.settled += 1
                log.info("settled a stuck event from its records", extra=_ctx(event))
            return
        fanout_stalled = (
            not fanout_complete
            and _older(event, stranded_before)
            and (not tally or _older(tally, stranded_before))
        )
        if not stranded and not fanout_stalled:
            return  # still moving
        waits_in = self._channel_queues(stranded)
        if fanout_stalled:
            waits_in += self._router_queues
        if self._behind(waits_in, event, report):
            return
        repairs = int(event.get("repair_attempts", 0))
        backoff = self.settings.reconcile_stranded_seconds * 2 ** min(
            repairs, REPUBLISH_DOUBLINGS_MAX
        )
        if repairs and not _older(event, time.time() - backoff):
            return  # the last repair (which restarted the event's clock) is still running
        if repairs < self.settings.reconcile_max_repairs:
            self._repair(event, len(stranded), report, fanout_complete)
            return
        self._give_up(event, stranded, fanout_stalled, repairs, report, stranded_before)

    def _repair(
        self, event: dict[str, Any], stranded: int, report: PassReport, complete: bool
    ) -> None:
        record = record_from_values(event)
        failures = publish_events(
            self.clients.sns, self.clients.topic_arn, [record], {REPAIR_ATTRIBUTE: "true"}
        )
        if failures:
            log.warning("repair publish failed: %s", failures[record.event_id], extra=_ctx(event))
            return
        self.events.mark_repaired(record.event_id)
        report.repaired += 1
        log.warning(
            "repairing an event: %d stranded notification(s), fan-out %s",
            stranded,
            "complete" if complete else "unfinished",
            extra=_ctx(event),
        )

    def _give_up(
        self,
        event: dict[str, Any],
        stranded: list[dict[str, Any]],
        fanout_stalled: bool,
        repairs: int,
        report: PassReport,
        stranded_before: float,
    ) -> None:
        """Fail what is still stranded by the time this pass judged by: each record's and
        the event's write is conditional on it (a claim, a repair or a router that took
        over meanwhile keeps it)."""
        event_id = str(event["event_id"])
        reason = f"stranded: gave up after {repairs} repairs"
        for state in stranded:
            if self.transitions.fail_stranded(
                event_id,
                str(state["SK"]),
                reason,
                str(state.get("PK") or "") or None,
                absent=bool(state.get(ABSENT)),
                judged_before=stranded_before,
            ):
                report.stranded_failed += 1
        if fanout_stalled:
            if self.events.fail(
                event_id,
                f"fan-out unfinished after {repairs} repairs",
                expected=EventStatus.PROCESSING,
                unchanged=("updated_at", str(event.get("updated_at", ""))),
            ):
                report.failed += 1
        elif self.settlement.settle_from_records(event_id) is not None:
            report.settled += 1
        log.error("%s; %d notification(s) failed", reason, len(stranded), extra=_ctx(event))

    # --- the loop -------------------------------------------------------------------------

    def run_pass(self) -> PassReport:
        report = PassReport()
        self.backlog.forget()
        self.router_backlog.forget()
        self._examined = 0
        found = self._walk(self.settings.reconcile_grace_seconds)
        # Each by its status now (the event item, read after the index entry).
        self._started(report, [i for i in found if i.get("status") == EventStatus.START])
        self._processing(report, [i for i in found if i.get("status") == EventStatus.PROCESSING])
        report.examined = self._examined
        metrics.reconciled(report)
        return report

    def pause(self, report: PassReport | None, idle: float) -> float:
        """The interval after a pass that found something (or failed), else twice the
        last idle pause, up to the idle maximum (at most the stranded period)."""
        interval = self.settings.reconcile_interval_seconds
        if report is None or report.examined:
            return interval
        most = min(
            self.settings.reconcile_idle_max_seconds, self.settings.reconcile_stranded_seconds
        )
        return min(max(idle * 2, interval), max(most, interval))

    def run_forever(self, stop: threading.Event) -> None:
        idle = 0.0
        while not stop.is_set():
            report: PassReport | None = None
            try:
                report = self.run_pass()
            except (ClientError, BotoCoreError) as exc:
                log.warning("reconcile pass failed, will retry: %s", exc)
            wait = self.pause(report, idle)
            idle = 0.0 if report is None or report.examined else wait
            stop.wait(wait)


def _stranded(state: dict[str, Any], before: float) -> bool:
    status = str(state.get("status"))
    if status == NotificationStatus.SENDING:
        return float(state.get("lease_until", 0)) < before
    if status in (NotificationStatus.QUEUED, NotificationStatus.RETRYING):
        return _older(state, before)
    return False


# A republish waits twice as long as the one before it (grace, 2 x grace, 4 x grace, ...,
# at most this many doublings), and giving up waits out the last one too: a router that is
# only behind (a backlog, AWS throttling it) gets its message to the event before a
# republish adds to the backlog, and an event is not failed while its messages still queue.
# Repairs of a stalled PROCESSING event back off the same way from the stranded period.
REPUBLISH_DOUBLINGS_MAX = 6


def _republish_due(item: dict[str, Any], attempts: int, grace: float, now: float) -> bool:
    """Whether an event published `attempts` times, last at `last_published_at`, has
    waited its backoff: grace x 2^(attempts - 1)."""
    wait = grace * 2 ** min(max(attempts - 1, 0), REPUBLISH_DOUBLINGS_MAX)
    return _older(item, now - wait, "last_published_at")


def _older(item: dict[str, Any], before: float, field: str = "updated_at") -> bool:
    """Whether `item[field]` (an ISO time) is at or before `before`; an unreadable time
    is."""
    try:
        touched = datetime.fromisoformat(str(item.get(field)).replace("Z", "+00:00"))
    except ValueError:
        return True
    return touched.astimezone(UTC).timestamp() <= before


def _ctx(item: dict[str, Any]) -> dict[str, str]:
    return {"event_id": str(item.get("event_id", ""))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Repair events that AWS left behind.")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    args = parser.parse_args(argv)
    configure_logging("reconciler")
    settings = Settings()
    reconciler = Reconciler(settings, AwsClients(settings))
    if args.once:
        print(reconciler.run_pass())
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reconciler.run_forever(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())

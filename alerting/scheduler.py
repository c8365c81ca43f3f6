"""The rule scheduler: sends due rule runs to the evaluators, once each.

    python -m alerting.scheduler

Several may run. Each pass walks the minute buckets from the shared cursor (the oldest
minute that may still hold due runs) to now, and every shard of each: an empty shard
costs one Query; a shard with due runs is claimed (a lease, `alerting/due.py`), its rules'
versions are read (a due item of a changed, disabled or deleted rule is dropped), its runs
are sent to `<prefix>-rules-<lane>` with SendMessageBatch, and each run's item moves to its
next due time (BatchWriteItem). A minute's shards are worked in parallel, in a random order
per scheduler, so two schedulers mostly work different shards instead of waiting on each
other's leases.

Idle: no cursor means no rule was ever written (the API makes the cursor with the first
rule), and a pass is one GetItem. A pass that sent nothing lengthens the pause before the
next, doubling from HERALD_SCHEDULER_TICK_SECONDS up to HERALD_SCHEDULER_IDLE_MAX_SECONDS,
but never past the start of the next minute while rules exist (that minute's runs, the
usual cron times, go out on time); a pass that sent something goes back to the tick. A rule
written while the scheduler pauses (its due item is the API's write) is picked up by the
next pass: its first run is at most the idle maximum late. Before provisioning has made
the table the scheduler waits quietly, a log line per attempt and no traceback.

Catching up: a run found late (the schedulers were down) is sent as the latest due time not
after now, carrying how many due times it skipped; the evaluator records them. Nothing
fires a burst of stale runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from alerting.due import DueStore, bucket_of, bucket_time, due_pk, next_bucket
from alerting.schedule import catch_up, next_due
from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.catalogue.event_types import LANES, Lane
from core.catalogue.models import iso, utcnow
from core.platform import metrics
from core.platform.logs import configure_logging
from core.platform.settings import Settings
from listeners.batch import SQS_BATCH_MAX

log = logging.getLogger("herald.alerting.scheduler")

SHARD_THREADS = 8
CHUNK = 100  # due runs read, sent and moved together (one BatchGetItem's worth)
CURSOR_GRACE = timedelta(minutes=1)  # a minute is closed only once it is this far past
MAX_BUCKETS_PER_PASS = 24 * 60


@dataclass
class PassStats:
    rules: bool = True  # False: no cursor yet, so no rule was ever written
    sent: int = 0
    skipped_runs: int = 0
    behind: float = 0.0  # seconds the most overdue item waited past its due time
    lags: list[float] = field(default_factory=list)  # seconds from each run's time to its send


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        self.due = DueStore(clients.dynamodb, clients.names.table, self.owner)
        self.shards = settings.scheduler_shards
        self.clock = clock
        self._random = random.Random(self.owner)
        # Shards are independent partitions: worked in parallel, a busy minute's sends and
        # moves overlap instead of queueing behind one another.
        self._pool = ThreadPoolExecutor(min(self.shards, SHARD_THREADS), thread_name_prefix="shard")
        self._stats_lock = threading.Lock()

    def run_pass(self) -> PassStats:
        """One walk over the open minutes; returns what it sent."""
        stats = PassStats()
        now = self.clock()
        current = bucket_of(now)
        cursor = self.due.cursor()
        if cursor is None:  # no rule yet: the API makes the cursor with the first
            stats.rules = False
            metrics.scheduled(stats)
            return stats
        bucket, closing = cursor, True
        for _ in range(MAX_BUCKETS_PER_PASS):
            if bucket > current:
                break
            shards = list(range(self.shards))
            self._random.shuffle(shards)
            work = partial(self._work_shard, bucket, now=now, stats=stats)
            empty = all(list(self._pool.map(work, shards)))  # every shard done, not just one
            closed = bucket_time(bucket) + timedelta(minutes=1) + CURSOR_GRACE <= now
            if closing and empty and closed:
                self.due.advance_cursor(cursor, next_bucket(bucket))
                cursor = next_bucket(bucket)
            else:
                closing = False
            bucket = next_bucket(bucket)
        metrics.scheduled(stats)
        return stats

    def _work_shard(self, bucket: str, shard: int, *, now: datetime, stats: PassStats) -> bool:
        """Send and move the shard's due runs; True when it was (and is left) empty."""
        if not self.due.any_due(bucket, shard, now):
            return True
        # The lease runs from the claim's own time, not the pass's start (late in a long
        # catch-up pass that would be expired already), and is renewed before every chunk:
        # a scheduler that lost it (it was too slow) stops, leaving the rest to the owner.
        if not self._lease(bucket, shard):
            return False
        try:
            items = self.due.due_now(bucket, shard, now)
            # A chunk at a time, so the first runs leave while later ones are still read.
            for start in range(0, len(items), CHUNK):
                if start and not self._lease(bucket, shard):
                    log.warning("lost the lease of %s shard %d mid-way", bucket, shard)
                    return False
                self._work_chunk(items[start : start + CHUNK], shard, now, stats)
        finally:
            self.due.release(bucket, shard)
        return False

    def _lease(self, bucket: str, shard: int) -> bool:
        lease = self.settings.scheduler_lease_seconds
        return self.due.claim(bucket, shard, self.clock(), lease)

    def _work_chunk(
        self, items: list[dict[str, Any]], shard: int, now: datetime, stats: PassStats
    ) -> None:
        current = self.due.versions(sorted({item["rule_id"] for item in items}))
        messages: dict[Lane, list[dict[str, Any]]] = {lane: [] for lane in LANES}
        following: list[dict[str, Any]] = []
        for item in items:
            if current.get(item["rule_id"]) != item["version"]:
                continue  # the rule changed, was disabled or deleted: drop this item
            due_at = datetime.fromisoformat(item["due"])
            run, skipped = catch_up(item["schedule"], item["timezone"], due_at, now)
            following_at = next_due(item["schedule"], item["timezone"], run)
            following.append(
                {
                    **item,
                    dynamo.PK: due_pk(bucket_of(following_at), shard),
                    dynamo.SK: f"R#{iso(following_at)}#{item['rule_id']}",
                    "due": iso(following_at),
                }
            )
            lane: Lane = "critical" if item.get("lane") == "critical" else "normal"
            messages[lane].append(
                {
                    "rule_id": item["rule_id"],
                    "run": iso(run),
                    "due": item["due"],
                    "skipped": skipped,
                }
            )
        for lane, bodies in messages.items():
            self._send(lane, bodies)
        self.due.write(following, items)
        sent_at = self.clock()
        with self._stats_lock:
            stats.sent += len(following)
            stats.skipped_runs += sum(b["skipped"] for bodies in messages.values() for b in bodies)
            stats.behind = max(
                [stats.behind]
                + [
                    (sent_at - datetime.fromisoformat(b["due"])).total_seconds()
                    for bodies in messages.values()
                    for b in bodies
                ]
            )
            stats.lags += [
                (sent_at - datetime.fromisoformat(b["run"])).total_seconds()
                for bodies in messages.values()
                for b in bodies
            ]

    def _send(self, lane: Lane, bodies: list[dict[str, Any]]) -> None:
        url = self.clients.queue_url(self.clients.names.rules_queue(lane))
        for start in range(0, len(bodies), SQS_BATCH_MAX):
            chunk = bodies[start : start + SQS_BATCH_MAX]
            sent_at = iso(self.clock())
            for body in chunk:
                body["scheduled_at"] = sent_at  # the send, for the evaluation's lag
            resp = self.clients.sqs.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "MessageBody": json.dumps(body, separators=(",", ":"))}
                    for i, body in enumerate(chunk)
                ],
            )
            if resp.get("Failed"):  # the shard's lease lapses and the next pass resends
                raise RuntimeError(f"{len(resp['Failed'])} rule run(s) not sent")

    def pause(self, stats: PassStats | None, idle: float) -> float:
        """The pause after a pass: the tick after one that sent something (or failed),
        else twice the last idle pause up to the idle maximum, cut at the start of the next
        minute while rules exist."""
        tick = self.settings.scheduler_tick_seconds
        if stats is None or stats.sent:
            return tick
        wait = min(max(idle * 2, tick), max(self.settings.scheduler_idle_max_seconds, tick))
        if stats.rules:
            now = self.clock()
            minute = bucket_time(next_bucket(bucket_of(now)))
            wait = min(wait, max((minute - now).total_seconds(), tick))
        return wait

    def run(self, stop: threading.Event) -> None:
        idle = 0.0
        while not stop.is_set():
            stats: PassStats | None = None
            try:
                stats = self.run_pass()
                if stats.sent:
                    log.info(
                        "sent %d rule run(s), %d due time(s) skipped",
                        stats.sent,
                        stats.skipped_runs,
                        # how far behind the pass was (the most overdue item's wait past its
                        # due time, skipped runs included): the deployed scheduler-lag alarm
                        extra={"lag_seconds": round(stats.behind, 3)},
                    )
            except ClientError as exc:
                if aws_errors.error_code(exc) != "ResourceNotFoundException":
                    log.exception("scheduler pass failed")
                else:  # provisioning has not made the table yet: nothing to report
                    log.info("waiting for the table %s", self.clients.names.table)
                    stats = PassStats(rules=False)
            except Exception:  # AWS down, a bug: log and try again next tick
                log.exception("scheduler pass failed")
            wait = self.pause(stats, idle)
            idle = 0.0 if stats is None or stats.sent else wait
            stop.wait(wait)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description="Send due alert rule runs until SIGTERM.").parse_args(argv)
    configure_logging("scheduler")
    settings = Settings()
    clients = AwsClients(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("scheduling alert rules (%d shards per minute)", settings.scheduler_shards)
    Scheduler(settings, clients).run(stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

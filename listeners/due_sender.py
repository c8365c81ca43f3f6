"""The due sender: hands due work (deferred notifications, delayed events, ...) to its
handlers, once each.

    python -m listeners.due_sender

Several may run. Each pass walks the minute buckets of `core.timing` from the shared cursor
(the oldest minute that may still hold work) to now, every shard of each. A shard costs one
read of its first item, which tells an empty shard, a due one, and when its next item is
due. A due shard is claimed (a lease, renewed before every chunk); its due items are read a
chunk at a time, handed to `handlers[kind]` in parallel (a handler with `many` takes a
group of its kind in one call, sharing its reads and sends), and each is deleted only after
its handler returned; one whose handler raised is moved to a later minute with the error
(tried again, doubling, at most an hour apart) and does not hold up the rest. A sender
killed mid-claim leaves its lease to lapse and the next hands out again what it had not
deleted: nothing is lost, and the handlers' idempotence keeps nothing from happening twice.

Idle: no cursor means nothing was ever scheduled, and a pass is one GetItem. A pass that
handed out nothing lengthens the pause (doubling from HERALD_DUE_TICK_SECONDS up to
HERALD_DUE_IDLE_MAX_SECONDS), cut at the next due time it saw and just after the start of
the next minute (whose first items it then sees), so work scheduled ahead goes out on time;
work scheduled meanwhile for the current minute is at most a pause late. Idle with work
ever scheduled, that is about one pass a minute: the cursor's GetItem, a Query per shard
of the last three minutes (one closing, one open, the new one) and the cursor's move
(about 0.13 requests/s at 2 shards).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.catalogue.models import utcnow
from core.platform.logs import configure_logging
from core.platform.settings import Settings
from core.timing.due_claims import DueClaims
from core.timing.due_work import (
    CURSOR_GRACE,
    DueStore,
    DueWork,
    bucket_of,
    bucket_time,
    next_bucket,
    work_from_item,
)
from listeners.due_handlers import build_due_handlers

log = logging.getLogger("herald.due_sender")

CHUNK = 100  # due items read, handed out and deleted together
BATCH = 25  # items of one kind to a batch handler's call (its reads and sends share calls)
MINUTE_WAKE = timedelta(seconds=1)  # an idle sender wakes this long after a minute starts
MAX_BUCKETS_PER_PASS = 24 * 60
RETRY_MAX = timedelta(hours=1)

Handler = Callable[[DueWork], None]


@dataclass
class PassStats:
    work: bool = True  # False: no cursor yet, so nothing was ever scheduled
    handed: int = 0
    failed: int = 0
    next_due: datetime | None = None  # the earliest not-yet-due item seen
    lags: list[float] = field(default_factory=list)  # seconds from due time to hand-out


class DueSender:
    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        handlers: Mapping[str, Handler],
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.handlers = dict(handlers)
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        self.claims = DueClaims(clients.dynamodb, clients.names.table, self.owner, clock)
        self.shards = settings.due_shards
        self.clock = clock
        self._random = random.Random(self.owner)
        self._shard_pool = ThreadPoolExecutor(min(self.shards, 8), thread_name_prefix="shard")
        self._handler_pool = ThreadPoolExecutor(
            settings.due_handler_threads, thread_name_prefix="due"
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        self._shard_pool.shutdown(wait=True)
        self._handler_pool.shutdown(wait=True)

    def run_pass(self) -> PassStats:
        """One walk over the open minutes; returns what it handed out."""
        stats = PassStats()
        now = self.clock()
        current = bucket_of(now)
        cursor = self.claims.cursor()
        if cursor is None:
            stats.work = False
            return stats
        bucket, closing = cursor, True
        for _ in range(MAX_BUCKETS_PER_PASS):
            if bucket > current:
                break
            shards = list(range(self.shards))
            self._random.shuffle(shards)
            closed = bucket_time(bucket) + timedelta(minutes=1) + CURSOR_GRACE <= now
            work = partial(self._work_shard, bucket, now=now, stats=stats, closed=closed)
            empty = all(list(self._shard_pool.map(work, shards)))
            if closing and empty and closed:
                self.claims.advance_cursor(cursor, next_bucket(bucket))
                cursor = next_bucket(bucket)
            else:
                closing = False
            bucket = next_bucket(bucket)
        return stats

    def _work_shard(
        self, bucket: str, shard: int, *, now: datetime, stats: PassStats, closed: bool
    ) -> bool:
        """Hand out the shard's due items; True when it was (and is left) empty. The reads
        of a minute that may close are consistent: the cursor never passes an item."""
        first = self.claims.first(bucket, shard, consistent=closed)
        if first is None:
            return True
        if not self._due(first, now, stats):
            return False
        if not self._lease(bucket, shard):
            return False  # another sender works it
        try:
            while True:
                items = self.claims.due(bucket, shard, now, CHUNK)
                if not items:
                    break
                self._hand_out(items, stats)
                if len(items) < CHUNK:
                    break
                if not self._lease(bucket, shard):  # renewed before every further chunk
                    log.warning("lost the lease of %s shard %d mid-way", bucket, shard)
                    return False
        finally:
            self.claims.release(bucket, shard)
        following = self.claims.first(bucket, shard, consistent=closed)
        if following is not None:
            self._due(following, now, stats)
        return following is None

    def _due(self, item: Mapping[str, Any], now: datetime, stats: PassStats) -> bool:
        """Whether the item is due by `now`; if not, remember when it will be."""
        at = datetime.fromisoformat(str(item["SK"]).split("#", 2)[1].replace("Z", "+00:00"))
        if at <= now:
            return True
        with self._lock:
            if stats.next_due is None or at < stats.next_due:
                stats.next_due = at
        return False

    def _lease(self, bucket: str, shard: int) -> bool:
        return self.claims.claim(bucket, shard, self.clock(), self.settings.due_lease_seconds)

    def _hand_out(self, items: list[dict[str, Any]], stats: PassStats) -> None:
        outcomes = self._run_handlers(items)
        done = [item for item, error in zip(items, outcomes, strict=True) if error is None]
        self.claims.delete(done)
        now = self.clock()
        for item, error in zip(items, outcomes, strict=True):
            if error is None:
                continue
            attempts = int(item.get("attempts", 0))
            wait = min(
                timedelta(seconds=self.settings.due_retry_seconds * 2 ** min(attempts, 10)),
                RETRY_MAX,
            )
            self.claims.retry_later(item, now + wait, error)
        with self._lock:
            stats.handed += len(done)
            stats.failed += len(items) - len(done)
            for item in done:
                due_at = datetime.fromisoformat(str(item["due_at"]).replace("Z", "+00:00"))
                stats.lags.append((now - due_at).total_seconds())

    def _run_handlers(self, items: list[dict[str, Any]]) -> list[str | None]:
        """Every item's handler on the pool: one call per item, or, for a handler with
        `many` (one call for several, batching its reads and sends), one per group of
        BATCH of its kind. Per item None, or the error."""
        outcomes: list[str | None] = [None] * len(items)
        jobs: list[tuple[list[int], Callable[[], list[str | None]]]] = []
        by_kind: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            by_kind.setdefault(str(item.get("kind")), []).append(index)
        for kind, indexes in by_kind.items():
            many = getattr(self.handlers.get(kind), "many", None)
            if many is None:
                jobs += [([i], partial(self._handle_one, items[i])) for i in indexes]
                continue
            for start in range(0, len(indexes), BATCH):
                part = indexes[start : start + BATCH]
                jobs.append((part, partial(self._handle_many, many, [items[i] for i in part])))
        for (indexes, _), errors in zip(
            jobs, self._handler_pool.map(lambda job: job[1](), jobs), strict=True
        ):
            for index, error in zip(indexes, errors, strict=True):
                outcomes[index] = error
        return outcomes

    def _handle_one(self, item: dict[str, Any]) -> list[str | None]:
        return [self._handle(item)]

    def _handle_many(
        self, many: Callable[[list[DueWork]], list[str | None]], items: list[dict[str, Any]]
    ) -> list[str | None]:
        """A batch handler's errors per item; one that raises fails its whole group."""
        try:
            errors = many([work_from_item(item) for item in items])
        except Exception as exc:
            log.warning("due %s failed: %s: %s", items[0].get("kind"), type(exc).__name__, exc)
            errors = [f"{type(exc).__name__}: {exc}"] * len(items)
        for error in errors:
            if error is not None:
                log.warning("due %s failed: %s", items[0].get("kind"), error)
        return errors

    def _handle(self, item: dict[str, Any]) -> str | None:
        """Run the item's handler; None when it returned, else the error. Nothing a handler
        raises stops the sender: the item is tried again later."""
        try:
            work = work_from_item(item)
            handler = self.handlers.get(work.kind)
            if handler is None:
                return f"no handler for kind {work.kind!r}"
            handler(work)
        except Exception as exc:
            log.warning("due %s failed: %s: %s", item.get("kind"), type(exc).__name__, exc)
            return f"{type(exc).__name__}: {exc}"
        return None

    def pause(self, stats: PassStats | None, idle: float) -> float:
        """The pause after a pass: the tick after one that handed something out (or
        failed), else twice the last idle pause up to the idle maximum; cut at the next
        due time seen and at the start of the next minute."""
        tick = self.settings.due_tick_seconds
        if stats is None or stats.handed or stats.failed:
            return tick
        wait = min(max(idle * 2, tick), max(self.settings.due_idle_max_seconds, tick))
        if stats.work:
            now = self.clock()
            # Just after the minute's start: the pass sees the new minute's first items.
            minute = bucket_time(next_bucket(bucket_of(now))) + MINUTE_WAKE
            wait = min(wait, max((minute - now).total_seconds(), 0.05))
            if stats.next_due is not None:
                wait = min(wait, max((stats.next_due - now).total_seconds(), 0.05))
        return wait

    def run(self, stop: threading.Event) -> None:
        idle = 0.0
        while not stop.is_set():
            stats: PassStats | None = None
            try:
                stats = self.run_pass()
                if stats.handed or stats.failed:
                    log.info("handed out %d due item(s), %d failed", stats.handed, stats.failed)
            except ClientError as exc:
                if aws_errors.error_code(exc) != "ResourceNotFoundException":
                    log.exception("due pass failed")
                else:  # provisioning has not made the table yet
                    log.info("waiting for the table")
                    stats = PassStats(work=False)
            except Exception:  # AWS down, a bug: log and try again next tick
                log.exception("due pass failed")
            wait = self.pause(stats, idle)
            idle = 0.0 if stats is None or stats.handed or stats.failed else wait
            stop.wait(wait)


def build_sender(settings: Settings, clients: AwsClients, **kwargs: Any) -> DueSender:
    """The sender with the handlers of `listeners.due_handlers`."""
    due = DueStore(clients.dynamodb, clients.names.table, settings.due_shards)
    return DueSender(settings, clients, build_due_handlers(settings, clients, due), **kwargs)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description="Hand out due work until SIGTERM.").parse_args(argv)
    configure_logging("due_sender")
    settings = Settings()
    clients = AwsClients(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("handing out due work (%d shards per minute)", settings.due_shards)
    sender = build_sender(settings, clients)
    try:
        sender.run(stop)
    finally:
        sender.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A worker's settling checks: a topic's events checked at most once an interval each.

After a receive's outcomes are counted, the events they counted on are checked
(`core.ledger.settlement.Settlement.settle_events`): the one that counted an event's last
outcome sees it complete and settles it. A sharded tally's check reads every outcome shard,
so at 10,000 notifications a second from one topic a check per receive would hold each of
those keys at a third of its read limit. Here an event of a sharded tally is checked at
once when this worker has not checked it within `interval`, and otherwise once `interval`
has passed since its last check (a trailing check, for every outcome counted meanwhile).
Every outcome is still followed by a check that starts after it was counted, so the last
outcome's check sees the event complete; the event settles at most `interval` later than
it would have, and the reconciler stays the backstop for a worker that dies in between,
as it is for one that dies between counting and checking. Events with a single tally item
or counted from their records are checked at once, as before: their check reads one key,
or their own records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from core.catalogue.models import EventStatus

log = logging.getLogger("herald.delivery")

# event id -> its tally's shards; self-counted events' records; statuses known to the caller.
SettleEvents = Callable[
    [Mapping[str, int], Mapping[str, Sequence[str]], Mapping[str, Mapping[str, str]]],
    dict[str, EventStatus],
]

# How long after a check of a sharded event a worker checks it again: per worker, at most
# one check a second per event, whatever the rate; a topic settles at most this much later.
SETTLE_INTERVAL_SECONDS = 1.0
# Events whose last check time is kept before the ones past the interval are dropped.
_LAST_KEPT = 1024


class SettleChecks:
    """Runs `settle` for counted events: at once, or for a sharded event checked less than
    `interval` ago, on this object's thread once the interval is over."""

    def __init__(self, settle: SettleEvents, interval: float = SETTLE_INTERVAL_SECONDS) -> None:
        self._settle = settle
        self._interval = interval
        self._last: dict[str, float] = {}  # event id -> when its last check started
        self._owed: dict[str, int] = {}  # event id -> its shards: a trailing check is owed
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="settle-checks")
        self._thread.start()

    def check(
        self,
        counted: Mapping[str, int],
        listed: Mapping[str, Sequence[str]] | None = None,
        known: Mapping[str, Mapping[str, str]] | None = None,
    ) -> dict[str, EventStatus]:
        """Check the events whose outcomes the caller counted (`counted`: event id -> its
        tally's shards) now, or owe them a trailing check; returns those settled now."""
        listed = listed or {}
        now_checked: dict[str, int] = {}
        with self._cond:
            now = time.monotonic()
            for event_id, shards in counted.items():
                if shards <= 1 or event_id in listed or self._closed:
                    now_checked[event_id] = shards
                    continue
                last = self._last.get(event_id)
                if event_id in self._owed or (last is not None and now - last < self._interval):
                    # A check that started before this outcome was counted may miss it.
                    self._owed[event_id] = max(shards, self._owed.get(event_id, 0))
                    continue
                self._last[event_id] = now
                now_checked[event_id] = shards
            if self._owed:
                self._cond.notify()
        if not now_checked:
            return {}
        return self._checked(now_checked, listed, known or {})

    def flush(self) -> None:
        """Run every owed check now (a worker stopping; tests)."""
        with self._cond:
            owed, self._owed = self._owed, {}
            now = time.monotonic()
            for event_id in owed:
                self._last[event_id] = now
        if owed:
            self._checked(owed, {}, {})

    def close(self) -> None:
        """Run the owed checks, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._due_now()
                while not due and not self._closed:
                    wait = self._next_wait()
                    self._cond.wait(wait)
                    due = self._due_now()
                if not due and self._closed:
                    return
            self._checked(due, {}, {})

    def _due_now(self) -> dict[str, int]:
        """The owed checks whose interval is over (taken off the owed list), under the
        lock; the last-check times past the interval are dropped when many are kept."""
        now = time.monotonic()
        due = {
            e: n for e, n in self._owed.items() if now - self._last.get(e, 0.0) >= self._interval
        }
        for event_id in due:
            del self._owed[event_id]
            self._last[event_id] = now
        if len(self._last) > _LAST_KEPT:
            self._last = {
                e: t for e, t in self._last.items() if e in self._owed or now - t < self._interval
            }
        return due

    def _next_wait(self) -> float | None:
        """Until the first owed check is due; None (until told) when none is owed."""
        if not self._owed:
            return None
        now = time.monotonic()
        return max(0.0, min(self._last.get(e, 0.0) + self._interval - now for e in self._owed))

    def _checked(
        self,
        counted: Mapping[str, int],
        listed: Mapping[str, Sequence[str]],
        known: Mapping[str, Mapping[str, str]],
    ) -> dict[str, EventStatus]:
        try:
            settled = self._settle(counted, listed, known)
        except Exception as exc:  # the reconciler settles it from the records
            log.warning("could not settle events after counting: %s", exc)
            return {}
        for event_id, final in settled.items():
            log.info("event settled: %s", final.value, extra={"event_id": event_id})
        return settled

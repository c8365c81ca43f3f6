"""Settling an event: PROCESSING → SUCCESS or FAILED once every notification has settled.

The one place an event's final status and reason are decided (`final_status`), from
whichever counts are at hand: the running tally after outcomes were counted (`settle`,
`settle_events`), or a recount of the records themselves, the source of truth, when the
reconciler finds the tally could not be trusted (`settle_from_records`). Either way the
write is a conditional PROCESSING → final on the event item: whoever completes the event
first settles it, once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger import record_counts
from core.ledger.event_status import EventStatusChanges
from core.ledger.event_tally import EventTally, TallyAdds
from core.ledger.stale_events import StaleEvents

log = logging.getLogger("herald.notifications")


def final_status(counts: Mapping[str, int]) -> tuple[EventStatus, str | None]:
    """The status and reason of an event whose notifications have all settled: FAILED
    (saying how many) when any failed, else SUCCESS."""
    failed, total = int(counts.get("failed", 0)), int(counts.get("total", 0))
    if failed:
        return EventStatus.FAILED, f"{failed} of {total} notifications failed"
    return EventStatus.SUCCESS, None


def unsettled_at_creation(first: Mapping[str, Any]) -> int:
    """Of the records tally shard 0 (plain) counts, how many were not settled when they
    were created (queued or scheduled): its total less its sent, failed and skipped."""
    return int(first.get("total", 0)) - sum(
        int(first.get(k, 0)) for k in ("sent", "failed", "skipped")
    )


def complete_counts(tally: Mapping[str, Any]) -> dict[str, int] | None:
    """The tally's counts when its fan-out is complete and every notification counted has
    settled; None while anything is still moving (or the tally was counted twice, which
    the reconciler then settles from the records)."""
    counts = {k: int(tally.get(k, 0)) for k in dynamo.COUNT_FIELDS}
    done = counts["sent"] + counts["failed"] + counts["skipped"]
    if not tally.get("fanout_complete") or not tally.get("event_id"):
        return None
    if done > counts["total"]:
        log.warning("tally over its total", extra={"event_id": str(tally["event_id"])})
    return counts if done == counts["total"] else None


# Events whose tally shard 0 a settling process remembers (`Settlement._first`).
FIRST_SHARDS_KEPT = 4096


class Settlement:
    """Moves events to their final status from their tally or their records.

    A sharded tally's settling check after each outcome transaction reads the outcome
    shards (1..n-1) but not shard 0, which is in the event's own partition, while a copy
    of shard 0 read earlier proves the event incomplete (`_could_complete`): at 10,000
    notifications a second from one topic, one read of that key per outcome transaction
    would be a third of its read limit.
    """

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        tally: EventTally,
        status: EventStatusChanges,
        stale: StaleEvents,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._tally = tally
        self._status = status
        self._stale = stale
        # event id -> its tally shard 0 (plain) as last read here, oldest first.
        self._first: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._first_lock = threading.Lock()  # a worker settles from several threads

    def settle(self, tally: Mapping[str, Any]) -> EventStatus | None:
        """Settle the event if its tally (plain, shards merged) is complete; returns the
        final status when this call settled it."""
        counts = complete_counts(tally)
        if counts is None:
            return None
        final, reason = final_status(counts)
        attrs: dict[str, Any] = {"reason": reason} if reason else {}
        moved = self._status.transition(
            str(tally["event_id"]), EventStatus.PROCESSING, final, **attrs
        )
        return final if moved else None

    def add_and_settle(self, event_id: str, **adds: Unpack[TallyAdds]) -> EventStatus | None:
        """Count on the event's tally, then settle it if that completed it (read back
        whole: the outcomes count on the other shards too, or on the records that the event
        item lists); returns the final status if this call settled it."""
        self._tally.add(event_id, **adds)
        return self.settle(self._tally.tally_of(event_id))

    def settle_events(
        self,
        event_shards: Mapping[str, int],
        records: Mapping[str, Sequence[str]] | None = None,
        known: Mapping[str, Mapping[str, str]] | None = None,
    ) -> dict[str, EventStatus]:
        """Settle each event whose tally is complete (after outcomes were counted: the
        counting transaction returns no values, so the tallies, every shard of each, are
        read back, consistently, in one BatchGetItem, by whoever counted last). A
        self-counted event in `records` (its records' sort keys) is settled from those
        records instead, less the ones whose status the caller knows (`known`: its own
        outcomes), `core.ledger.record_counts.settling_tallies`. Returns the events this call
        settled."""
        listed = records or {}
        plain = [e for e in sorted(event_shards) if e not in listed and event_shards[e] <= 1]
        sharded = {e: n for e, n in event_shards.items() if e not in listed and n > 1}
        tallies: dict[str, dict[str, Any]] = {}
        if plain:
            tallies = aws_errors.retry(
                lambda: self._tally.tallies_of(plain, event_shards, listed=False)
            )
        if sharded:
            tallies.update(aws_errors.retry(lambda: self._sharded_tallies(sharded)))
        if listed:
            tallies.update(
                aws_errors.retry(
                    lambda: record_counts.settling_tallies(
                        self._db, self._table, listed, known or {}
                    )
                )
            )
        settled: dict[str, EventStatus] = {}
        for event_id, tally in tallies.items():
            final = aws_errors.retry(lambda tally=tally: self.settle(tally))  # type: ignore[misc]
            if final is not None:
                settled[event_id] = final
                with self._first_lock:
                    self._first.pop(event_id, None)
        return settled

    def _sharded_tallies(self, event_shards: Mapping[str, int]) -> dict[str, dict[str, Any]]:
        """The merged tallies of the sharded events that could be complete.

        Shard 0 is read with the others the first time, and again only when the outcome
        shards, read now, have caught up with the records a remembered copy of it left
        unsettled; an event the copy proves incomplete is left out. Sound because nothing
        but creation counts on shard 0 (`core.ledger.event_tally.tally_shard`): a created
        record adds to its total at least as much as to its settled counts, so the number
        it leaves unsettled never falls, and the event is complete only when the outcome
        shards have counted that many. A copy that shows outcome counts (a tally written
        before outcomes moved off shard 0) is not trusted: shard 0 is read every time. (While
        workers of that earlier version still run, in a rolling deploy, one may count on
        shard 0 after a copy was taken; a check that misses the last outcome so leaves the
        event to the reconciler, which settles it from its records.)"""
        with self._first_lock:
            kept = {e: self._first.get(e) for e in event_shards}
        known = {e for e, first in kept.items() if first is not None}
        shards = {
            e: max(n, int((kept[e] or {}).get("tally_shards", 1))) for e, n in event_shards.items()
        }
        found = self._tally.shard_items(shards, without_first=known)
        again = {
            e: shards[e] for e in known if self._could_complete(kept[e] or {}, found.get(e, []))
        }
        if again:  # shard 0 alone, and any shards it declares beyond those read
            for e, items in self._tally.shard_items(again, only_first=again).items():
                found.setdefault(e, []).extend(items)
        out: dict[str, dict[str, Any]] = {}
        for event_id, items in found.items():
            first = next((i for i in items if "tally_shard" not in i), None)
            if first is None:
                continue  # proved incomplete by its copy of shard 0, or no shard 0 yet
            self._remember(event_id, first)
            out[event_id] = dynamo.merge_tallies(items)
        return out

    @staticmethod
    def _could_complete(first: Mapping[str, Any], others: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the other shards (`others`, read now) have settled as many records as
        shard 0's copy (`first`) left unsettled at creation (each shard's settled counts
        less its total: a page's later chunks count their creation there); always, for a
        copy that shows outcome counts of its own."""
        if int(first.get("sent", 0)):
            return True
        counted = sum(-unsettled_at_creation(o) for o in others)
        return counted >= unsettled_at_creation(first)

    def _remember(self, event_id: str, first: dict[str, Any]) -> None:
        with self._first_lock:
            self._first[event_id] = first
            self._first.move_to_end(event_id)
            while len(self._first) > FIRST_SHARDS_KEPT:
                self._first.popitem(last=False)

    def settle_from_records(self, event_id: str) -> EventStatus | None:
        """Settle a PROCESSING event from its notification records, the source of truth.

        The running tally is a fast path that a lost or repeated counter update can leave
        wrong; this recounts every record and, when none is still in flight and the fan-out
        is complete, writes the true counts and the final status.
        """
        found = dynamo.batch_get(
            self._db,
            self._table,
            [dynamo.event_key(event_id), dynamo.tally_key(event_id)],
            consistent=True,
        )
        items = {i[dynamo.SK]["S"]: dynamo.from_item(i) for i in found}
        event = items.get(dynamo.EVENT_SK, {})
        tally = record_counts.with_event(items.get(dynamo.TALLY_SK, {}), event)
        if event.get("status") != EventStatus.PROCESSING or not (
            tally.get("fanout_complete") or event.get("fanout_complete")
        ):
            return None
        statuses = [
            str(item.get("status"))
            for item in self._stale.notification_states(event_id)
            if str(item.get(dynamo.SK, "")).startswith("NOTIF#")
        ]
        if any(s not in record_counts.SETTLED_BUCKETS for s in statuses):
            return None  # still queued, sending or retrying
        counts = record_counts.counts_of(statuses)
        self._write_true_counts(event_id, counts, int(tally.get("tally_shards", 1)))
        final, reason = final_status(counts)
        if statuses and all(s == NotificationStatus.CANCELLED for s in statuses):
            final, reason = EventStatus.CANCELLED, "every notification was cancelled"
        attrs: dict[str, Any] = {"reason": reason} if reason else {}
        moved = self._status.transition(event_id, EventStatus.PROCESSING, final, **attrs)
        return final if moved else None

    def _write_true_counts(self, event_id: str, counts: Mapping[str, int], shards: int) -> None:
        """The recounted totals on the tally (the source the API shows): shard 0 holds them
        all and the other shards none."""
        for shard in range(shards):
            shown: dict[str, Any] = dict(counts) if shard == 0 else dict.fromkeys(counts, 0)
            if shard:  # what marks a shard as one (dynamo.merge_tallies)
                shown["tally_shard"] = shard
            self._db.update_item(
                TableName=self._table,
                Key=dynamo.tally_key(event_id, shard),
                UpdateExpression="SET "
                + ", ".join(f"#{k} = :{k}" for k in shown)
                + ", event_id = :event_id",
                ExpressionAttributeNames={f"#{k}": k for k in shown},
                ExpressionAttributeValues={
                    **{f":{k}": {"N": str(v)} for k, v in shown.items()},
                    ":event_id": {"S": event_id},
                },
            )

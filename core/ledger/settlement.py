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


class Settlement:
    """Moves events to their final status from their tally or their records."""

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
        plain = [e for e in sorted(event_shards) if e not in listed]
        tallies: dict[str, dict[str, Any]] = {}
        if plain:
            tallies = aws_errors.retry(
                lambda: self._tally.tallies_of(plain, event_shards, listed=False)
            )
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
        return settled

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

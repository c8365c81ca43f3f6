"""The event's tally: records created and counted together, and the event settled when
its last notification is.

A record exists exactly when it is counted (`create_counted`, `create_routed`: conditional
puts and the counter update in one transaction), so a router that crashes anywhere and
runs a message again can neither miss a count nor count twice. The event settles when its
fan-out is complete and sent + failed + skipped = total.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core import dynamo, event_index, record_counts
from core.dynamo import TRANSACT_MAX
from core.models import EventStatus, NotificationMessage, NotificationStatus, iso, utcnow
from core.notification_records import (
    EventNotFound,
    NewNotification,
    RecordStore,
    is_condition_failure,
    log,
)

CHUNK_MAX = TRANSACT_MAX - 2  # records per counted chunk: the tally and the event check take two
# A topic's fan-out counts its outcomes on this many tally items, so that thousands of
# outcomes a second do not all write one partition key; creation counts, fan-out progress
# and the shard count stay on shard 0, and readers sum the shards. A transaction's outcomes
# of one event count together on the shard of the first of them: one counter update per
# event per transaction, as with a single tally.
TALLY_SHARDS = 8
# ... and keeps its records on this many partitions (core.dynamo.record_pk): creating,
# claiming and recording a notification take about six write units, so at 1,000
# notifications a second 32 partitions keep each under a fifth of its 1,000.
RECORD_SHARDS = 32


def tally_shard(message: NotificationMessage) -> int:
    """The tally shard a transaction whose first outcome of the event is `message`'s
    counts that event's outcomes on."""
    if message.tally_shards <= 1:
        return 0
    return zlib.crc32(message.recipient_id.encode()) % message.tally_shards


@dataclass(frozen=True)
class CountedCreation:
    """What `create_counted` did: records created (and counted) now, and records an
    earlier try had already created and counted, with their current status."""

    created: list[NewNotification]
    existing: dict[str, str]


class EventTally(RecordStore):
    def add_to_event(
        self,
        event_id: str,
        *,
        total: int = 0,
        sent: int = 0,
        failed: int = 0,
        skipped: int = 0,
        fanout_complete: bool = False,
    ) -> EventStatus | None:
        """Count settled notifications on the event's tally and settle the event when the
        last one lands; returns the event's final status if this call settled it."""
        adds = {"total": total, "sent": sent, "failed": failed, "skipped": skipped}
        kwargs = self._tally_kwargs(event_id, adds, complete=fanout_complete)
        resp = self._db.update_item(**kwargs, ReturnValues="ALL_NEW")
        tally = dynamo.from_item(resp["Attributes"])
        if int(tally.get("tally_shards", 1)) > 1:
            tally = self.tally_of(event_id)  # the outcomes count on the other shards too
        else:  # or on the records
            tallies = {event_id: tally}
            record_counts.read_and_apply(self._db, self._table, tallies, consistent=True)
            tally = tallies[event_id]
        return self._settle_event(tally)

    def _tally_kwargs(
        self,
        event_id: str,
        adds: dict[str, int],
        *,
        complete: bool = False,
        shard: int = 0,
        shards: int = 1,
        record_shards: int = 1,
        counted_records: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The update of tally `shard`: ADD the counts, and with `complete` mark the fan-out
        complete; on shard 0 of a sharded tally, how many shards it has; with
        `counted_records`, the records that are the event's counts (`core.record_counts`).
        Unconditional: the item is made by its first update."""
        present = [k for k in dynamo.COUNT_FIELDS if adds.get(k)]
        values: dict[str, Any] = {
            ":now": {"S": iso(utcnow())},
            ":ttl": {"N": str(int(time.time()) + self._retention_days * 86400)},
            ":event": {"S": event_id},
            **{f":{k}": {"N": str(adds[k])} for k in present},
        }
        sets = [
            "updated_at = :now",
            "event_id = :event",
            f"{dynamo.TTL_ATTRIBUTE} = if_not_exists({dynamo.TTL_ATTRIBUTE}, :ttl)",
        ]
        if complete:
            sets.append("fanout_complete = :true")
            values[":true"] = {"BOOL": True}
        if shard:
            sets.append("tally_shard = :shard")
            values[":shard"] = {"N": str(shard)}
        if shard == 0 and shards > 1:
            sets.append("tally_shards = :shards")
            values[":shards"] = {"N": str(shards)}
        if shard == 0 and record_shards > 1:
            sets.append("record_shards = :record_shards")
            values[":record_shards"] = {"N": str(record_shards)}
        if counted_records:
            sets.append(f"{record_counts.COUNTED_RECORDS} = :counted_records")
            values[":counted_records"] = record_counts.counted_records_value(counted_records)
        update = "SET " + ", ".join(sets)
        if present:
            update += " ADD " + ", ".join(f"#{k} :{k}" for k in present)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": dynamo.tally_key(event_id, shard),
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
        }
        if present:
            kwargs["ExpressionAttributeNames"] = {f"#{k}": k for k in present}
        return kwargs

    def _settle_event(self, tally: dict[str, Any]) -> EventStatus | None:
        """Settle the event if its tally is complete (a conditional PROCESSING → final on
        the event item: whoever completes the tally first settles it, once)."""
        counts = {k: int(tally.get(k, 0)) for k in dynamo.COUNT_FIELDS}
        done = counts["sent"] + counts["failed"] + counts["skipped"]
        event_id = str(tally.get("event_id", ""))
        if not tally.get("fanout_complete") or not event_id:
            return None
        if done != counts["total"]:
            if done > counts["total"]:
                # A count applied twice: the tally cannot be trusted, so the reconciler
                # settles this event from its records instead.
                log.warning("tally over its total", extra={"event_id": event_id})
            return None
        final = EventStatus.FAILED if counts["failed"] else EventStatus.SUCCESS
        reason = (
            f"{counts['failed']} of {counts['total']} notifications failed"
            if final is EventStatus.FAILED
            else None
        )
        values: dict[str, Any] = {
            ":final": {"S": final.value},
            ":processing": {"S": EventStatus.PROCESSING.value},
            ":now": {"S": iso(utcnow())},
        }
        sets = ["#s = :final", "updated_at = :now"]
        if reason:
            sets.append("reason = :reason")
            values[":reason"] = {"S": reason}
        update, index_values = event_index.update_expression(sets, event_id, final)
        values.update(index_values)
        try:
            self._db.update_item(
                TableName=self._table,
                Key=dynamo.event_key(event_id),
                UpdateExpression=update,
                ConditionExpression="#s = :processing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return final

    def create_counted(
        self, notifications: Sequence[NewNotification], *, redelivered: bool = False
    ) -> CountedCreation:
        """Create records of one event and count them on the event in the same transaction.

        Each chunk of up to CHUNK_MAX records is one TransactWriteItems: a conditional put
        per record plus the event's `ADD counts.total/skipped/failed`. Either all of it
        happens or none, so a record exists if and only if it was counted, and a router that
        crashes anywhere and runs the message again can neither miss a count nor count twice.
        When the transaction is cancelled because some records exist (a redelivery, or a
        concurrent router), those are reported in `existing` and the rest are retried without
        them; every round drops at least one record, so the loop ends.

        `redelivered` (the message was received before) reads the records first and only
        writes the missing ones: after a crash most exist, and a cancelled transaction
        costs as much write capacity as a committed one.
        """
        created: list[NewNotification] = []
        existing: dict[str, str] = {}
        listed = _counted_records(notifications)
        if redelivered and notifications:
            existing = self.statuses([n.message for n in notifications])
            notifications = [n for n in notifications if n.message.notification_id not in existing]
        for start in range(0, len(notifications), CHUNK_MAX):
            pending = list(notifications[start : start + CHUNK_MAX])
            while pending:
                clashes = self._create_counted_chunk(pending, listed)
                if clashes is None:
                    created.extend(pending)
                    break
                for index, status in clashes.items():
                    existing[pending[index].message.notification_id] = status
                pending = [n for i, n in enumerate(pending) if i not in clashes]
        return CountedCreation(created, existing)

    def _create_counted_chunk(
        self, chunk: list[NewNotification], listed: Sequence[str] = ()
    ) -> dict[int, str] | None:
        """None when the chunk was created and counted; else {index: status} of the records
        that already exist. Other cancellations (conflicts, throttling) raise."""
        event_id = chunk[0].message.event_id
        if any(n.message.event_id != event_id for n in chunk):
            raise ValueError("a counted chunk holds notifications of one event")
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._item(n),
                    "ConditionExpression": "attribute_not_exists(PK)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for n in chunk
        ]
        items.append({"Update": self._tally_update(event_id, chunk, listed=listed)})
        items.append(
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": dynamo.event_key(event_id),
                    "ConditionExpression": "attribute_exists(PK)",
                }
            }
        )
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if len(reasons) == len(items) and reasons[-1].get("Code") == "ConditionalCheckFailed":
                raise EventNotFound(event_id) from exc
            clashes = {
                i: str(r.get("Item", {}).get("status", {}).get("S", ""))
                for i, r in enumerate(reasons[: len(chunk)])
                if r.get("Code") == "ConditionalCheckFailed"
            }
            if not clashes:
                raise
            unknown = [chunk[i].message for i, status in clashes.items() if not status]
            if unknown:
                stored = self.statuses(unknown)
                for i in clashes:
                    if not clashes[i]:
                        clashes[i] = stored.get(chunk[i].message.notification_id, "")
            return clashes
        return None

    def create_routed(self, events: Sequence[Sequence[NewNotification]]) -> bool:
        """Route several single-page events at once: create every record, count them on
        their event, and move each event to PROCESSING with its fan-out complete, all in
        one TransactWriteItems (at most TRANSACT_MAX items: records plus one per event).

        True when all of it happened. False when the transaction was cancelled (a record
        exists already, or an event is missing or no longer START/PROCESSING): then nothing
        happened, and the caller routes those events one by one (`create_counted`), which
        sorts out each case. Fan-out complete is safe to set here because the records are
        created before any message is enqueued: no worker can count a notification before
        the event knows its total.
        """
        items: list[dict[str, Any]] = []
        for planned in events:
            if not planned:
                raise ValueError("an event routed here has at least one notification")
            event_id = planned[0].message.event_id
            if any(n.message.event_id != event_id for n in planned):
                raise ValueError("each group holds the notifications of one event")
            items += [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._item(n),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
                for n in planned
            ]
            items.append(
                {
                    "Update": self._tally_update(
                        event_id, planned, complete=True, listed=_counted_records(planned)
                    )
                }
            )
            items.append({"Update": self._processing_update(event_id)})
        if len(items) > TRANSACT_MAX:
            raise ValueError(f"{len(items)} items do not fit one transaction")
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise
        return True

    def _tally_update(
        self,
        event_id: str,
        chunk: Sequence[NewNotification],
        *,
        complete: bool = False,
        listed: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The tally's update for `chunk` (total, skipped and failed at creation); with
        `complete`, the fan-out is complete too; `listed`: every record of a self-counted
        event, set whole by each chunk (so a repeat sets the same)."""
        adds = {
            "total": len(chunk),
            "skipped": sum(n.status is NotificationStatus.SKIPPED for n in chunk),
            "failed": sum(n.status is NotificationStatus.FAILED for n in chunk),
        }
        shards = max((n.message.tally_shards for n in chunk), default=1)
        records = max((n.message.record_shards for n in chunk), default=1)
        return self._tally_kwargs(
            event_id,
            adds,
            complete=complete,
            shards=shards,
            record_shards=records,
            counted_records=listed,
        )

    def _processing_update(self, event_id: str) -> dict[str, Any]:
        """START|PROCESSING → PROCESSING on the event item (a routed event)."""
        update, index_values = event_index.update_expression(
            ["#s = :processing", "updated_at = :now"], event_id, EventStatus.PROCESSING
        )
        return {
            "TableName": self._table,
            "Key": dynamo.event_key(event_id),
            "UpdateExpression": update,
            "ConditionExpression": "#s IN (:start, :processing)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                **index_values,
                ":processing": {"S": EventStatus.PROCESSING.value},
                ":start": {"S": EventStatus.START.value},
                ":now": {"S": iso(utcnow())},
            },
        }

    def tallies_of(
        self,
        event_ids: Sequence[str],
        shards: Mapping[str, int] | None = None,
        *,
        consistent: bool = True,
    ) -> dict[str, dict[str, Any]]:
        """Tallies (plain, shards merged, a self-counted event's counts from its records)
        by event id, a hundred keys to a BatchGetItem. `shards[event_id]` says how many
        shards to read at once; the shards a tally's shard 0 declares beyond those are read
        after it."""
        ids = list(dict.fromkeys(event_ids))
        wanted = {e: (shards or {}).get(e, 1) for e in ids}
        found: dict[str, list[dict[str, Any]]] = {}

        def read(keys: list[dict[str, Any]]) -> None:
            for item in dynamo.batch_get(self._db, self._table, keys, consistent=consistent):
                tally = dynamo.from_item(item)
                found.setdefault(str(tally.get("event_id", "")), []).append(tally)

        read([dynamo.tally_key(e, k) for e, n in wanted.items() for k in range(n)])
        more = [
            dynamo.tally_key(e, k)
            for e, items in found.items()
            for k in range(
                wanted.get(e, 1), int(dynamo.merge_tallies(items).get("tally_shards", 1))
            )
        ]
        if more:
            read(more)
        merged = {e: dynamo.merge_tallies(items) for e, items in found.items()}
        record_counts.read_and_apply(self._db, self._table, merged, consistent=consistent)
        return merged

    def tally_of(self, event_id: str, consistent: bool = True) -> dict[str, Any]:
        """The event's tally as plain values, its shards merged (empty before the first
        count)."""
        return self.tallies_of([event_id], consistent=consistent).get(event_id, {})

    def continuation_sent(self, event_id: str, page: int) -> bool:
        """Whether the router already sent the message for fan-out page `page`."""
        resp = self._db.get_item(
            TableName=self._table,
            Key=dynamo.tally_key(event_id),
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": "continued_pages"},
            ConsistentRead=True,
        )
        pages = resp.get("Item", {}).get("continued_pages", {}).get("NS", [])
        return str(page) in pages

    def mark_continuation_sent(self, event_id: str, page: int) -> None:
        """Recorded after the send, so a crash in between repeats the send (harmless)
        rather than losing the rest of the fan-out."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=dynamo.tally_key(event_id),
                UpdateExpression="ADD #c :page",
                ExpressionAttributeNames={"#c": "continued_pages"},
                ExpressionAttributeValues={":page": {"NS": [str(page)]}},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise


def _counted_records(notifications: Sequence[NewNotification]) -> list[str]:
    """The sort keys of a self-counted event's records (all of them: the planner lists
    them only when its whole plan is at hand), else none."""
    if not notifications or not all(n.message.counted_records for n in notifications):
        return []
    return list(notifications[0].message.counted_records)

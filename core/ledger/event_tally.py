"""The event's tally: counts, fan-out progress and page markers.

The counts are written with the records they count (`core.ledger.record_creation` at
creation, `core.ledger.outcome_records` for outcomes), so a repeated write can never count
twice. Deciding from a tally that the event is done is `core.ledger.settlement`'s.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from core.aws import dynamo
from core.catalogue.models import NotificationMessage, iso, utcnow
from core.ledger import record_counts
from core.ledger.shard_layout import DEFAULT_LAYOUT

# A topic's fan-out counts its outcomes on this many tally items, so that thousands of
# outcomes a second do not all write one partition key; fan-out progress, the shard count
# and the creation counts of each page's first chunk stay on shard 0 (a page's other chunks
# count on the outcome shards), and readers sum the shards. Shard 0 shares the event item's
# partition key, which every creation chunk checks, so outcomes count on the others only
# (`tally_shard`). A transaction's outcomes of one event count together on the
# shard of the first of them: one counter update per event per transaction, as with a
# single tally.
TALLY_SHARDS = DEFAULT_LAYOUT.tally  # 8; `core.ledger.shard_layout` for other rates
# ... and keeps its records on this many partitions (core.aws.dynamo.record_pk): creating,
# claiming and recording a notification take about six write units, so at 1,000
# notifications a second 32 partitions keep each under a fifth of its 1,000.
RECORD_SHARDS = DEFAULT_LAYOUT.records  # 32
# Records created SCHEDULED (counted at creation, never taken back): at the end
# of a fan-out, all pending records SCHEDULED means the event waits (core.timing).
SCHEDULED_COUNT = "scheduled"


class TallyAdds(TypedDict, total=False):
    """What one count adds to a tally: counts (negative to take one back) and fan-out
    completion."""

    total: int
    sent: int
    failed: int
    skipped: int
    fanout_complete: bool


def tally_shard(message: NotificationMessage) -> int:
    """The tally shard a transaction whose first outcome of the event is `message`'s
    counts that event's outcomes on: of a sharded tally, one of shards 1..n-1, never shard
    0, which is in the event's own partition (`core.aws.dynamo.tally_key`) with the event
    item and the creation counts. Readers sum every shard, so a table whose earlier
    outcomes counted on shard 0 as well (events in flight when this changed) reads the
    same sums."""
    if message.tally_shards <= 1:
        return 0
    return 1 + zlib.crc32(message.recipient_id.encode()) % (message.tally_shards - 1)


class EventTally:
    """The tally items of one table: their updates (alone, or as items of the transactions
    that create or settle the records they count) and their reads."""

    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days

    def add(self, event_id: str, **adds: Unpack[TallyAdds]) -> None:
        """Count notifications on the event's tally outside a record's transaction (an
        empty fan-out's completion, a redriven dead letter's correction)."""
        counts = {
            "total": adds.get("total", 0),
            "sent": adds.get("sent", 0),
            "failed": adds.get("failed", 0),
            "skipped": adds.get("skipped", 0),
        }
        complete = adds.get("fanout_complete", False)
        self._db.update_item(**self.update(event_id, counts, complete=complete))

    def update(
        self,
        event_id: str,
        adds: dict[str, int],
        *,
        complete: bool = False,
        shard: int = 0,
        shards: int = 1,
        record_shards: int = 1,
    ) -> dict[str, Any]:
        """The update of tally `shard`: ADD the counts, and with `complete` mark the fan-out
        complete; on shard 0 of a sharded tally, how many shards it has. Unconditional:
        the item is made by its first update."""
        present = [k for k in (*dynamo.COUNT_FIELDS, SCHEDULED_COUNT) if adds.get(k)]
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

    def tallies_of(
        self,
        event_ids: Sequence[str],
        shards: Mapping[str, int] | None = None,
        *,
        consistent: bool = True,
        events: Mapping[str, Mapping[str, Any]] | None = None,
        listed: bool = True,
    ) -> dict[str, dict[str, Any]]:
        """Tallies (plain, shards merged, a self-counted event's counts from its records)
        by event id, a hundred keys to a BatchGetItem. `shards[event_id]` says how many
        shards to read at once; the shards a tally's shard 0 declares beyond those are read
        after it. A self-counted event keeps its list on the event item
        (`core.ledger.record_counts`): `events` gives the event items (plain) the caller has read
        already; the others are read with the tallies, in the same requests (not with
        `listed` False: the caller knows none of them is self-counted, and an event item
        may be large)."""
        ids = list(dict.fromkeys(event_ids))
        wanted = {e: (shards or {}).get(e, 1) for e in ids}
        found: dict[str, list[dict[str, Any]]] = {}
        event_items: dict[str, Mapping[str, Any]] = dict(events or {})

        def read(keys: list[dict[str, Any]]) -> None:
            for item in dynamo.batch_get(self._db, self._table, keys, consistent=consistent):
                values = dynamo.from_item(item)
                if values[dynamo.SK] == dynamo.EVENT_SK:
                    event_items[str(values.get("event_id", ""))] = values
                else:
                    found.setdefault(str(values.get("event_id", "")), []).append(values)

        read(
            [dynamo.tally_key(e, k) for e, n in wanted.items() for k in range(n)]
            + [dynamo.event_key(e) for e in ids if listed and e not in event_items]
        )
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
        for event_id, event in event_items.items():
            if event.get(record_counts.COUNTED_RECORDS) and event_id in wanted:
                merged[event_id] = record_counts.with_event(merged.get(event_id, {}), event)
        record_counts.read_and_apply(self._db, self._table, merged, consistent=consistent)
        return merged

    def shard_items(
        self,
        shards: Mapping[str, int],
        *,
        without_first: Collection[str] = (),
        only_first: Collection[str] = (),
    ) -> dict[str, list[dict[str, Any]]]:
        """The tally shards (plain, unmerged, consistently read) of each event of `shards`
        in one BatchGetItem: shards 0 .. `shards[event_id]` - 1, but not shard 0 of the
        events in `without_first`, and only shard 0 of those in `only_first`; the shards a
        shard 0 read here declares beyond `shards[event_id]` are read after it. Events
        with no shard yet are left out."""
        keys = [
            dynamo.tally_key(e, k)
            for e, n in shards.items()
            for k in range(1 if e in without_first else 0, 1 if e in only_first else n)
        ]
        found: dict[str, list[dict[str, Any]]] = {}

        def read(keys: list[dict[str, Any]]) -> None:
            for item in dynamo.batch_get(self._db, self._table, keys, consistent=True):
                values = dynamo.from_item(item)
                found.setdefault(str(values.get("event_id", "")), []).append(values)

        read(keys)
        more = [
            dynamo.tally_key(e, k)
            for e, items in found.items()
            for first in items
            if "tally_shard" not in first
            for k in range(shards.get(e, 1), int(first.get("tally_shards", 1)))
        ]
        if more:
            read(more)
        return found

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
        self._db.update_item(
            TableName=self._table,
            Key=dynamo.tally_key(event_id),
            UpdateExpression="ADD #c :page",
            ExpressionAttributeNames={"#c": "continued_pages"},
            ExpressionAttributeValues={":page": {"NS": [str(page)]}},
        )

"""What the reconciler looks for: events left too long in START or PROCESSING, oldest
first, a page at a time with a watermark; and an event's records as an audit sees them
(status and times from every partition, listed records not written yet included)."""

from __future__ import annotations

from typing import Any

from core.aws import dynamo
from core.catalogue.models import EventStatus
from core.ledger import event_index, event_listing, record_counts
from core.ledger.event_items import event_items_by_pk
from core.ledger.event_reads import all_records, tally_layout
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout

# The time an event of each open status was last touched: a START event's last publish (a
# router that took it moved it on), a PROCESSING one's last write.
TOUCHED = {EventStatus.START: "last_published_at", EventStatus.PROCESSING: "updated_at"}


class StaleEvents:
    """The reconciler's queries."""

    def __init__(self, dynamodb: Any, table: str, layout: ShardLayout = DEFAULT_LAYOUT) -> None:
        self._db = dynamodb
        self._table = table
        self._layout = layout

    def stale(
        self,
        status: EventStatus,
        cutoff: str,
        start_key: dict[str, Any] | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of `status` events created and last touched before `cutoff`, oldest
        first per shard, from the watermark `start_key` on; and the next watermark (None
        once every shard has been read to its end).

        The reconciler walks these pages with a watermark across passes: `Limit` applies
        before the filter, so a page of events that are stuck for good must not be all it
        ever reads."""
        return self._stale({status: TOUCHED[status]}, cutoff, start_key, limit)

    def stale_open(
        self, cutoff: str, start_key: dict[str, Any] | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """`stale` for START and PROCESSING at once: they share the status index's `OPEN`
        key, so one walk of its shards finds both (half the queries of two walks); the
        event items say which each is now."""
        kinds = {s: TOUCHED[s] for s in event_index.OPEN_STATUSES}
        return self._stale(kinds, cutoff, start_key, limit)

    def _stale(
        self,
        kinds: dict[EventStatus, str],
        cutoff: str,
        start_key: dict[str, Any] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        entries, nxt = event_listing.ShardedReader(self._db, self._table).oldest(
            kinds, cutoff, start_key, limit, self._layout.status_read
        )
        pks = [e[dynamo.PK]["S"] for e in entries]
        events = event_items_by_pk(self._db, self._table, pks, consistent=True)
        return [dynamo.from_item(events[pk]) for pk in pks if pk in events], nxt

    def notification_states(self, event_id: str) -> list[dict[str, Any]]:
        """The event's notification records, only what an audit needs (keys, status and
        times), page by page, from every partition that holds them."""
        layout = tally_layout(self._db, self._table, event_id, consistent=True)
        partitions = dynamo.record_partitions(event_id, int(layout.get("record_shards", 1)))
        states = [
            dynamo.from_item(i)
            for partition in partitions
            for i in all_records(
                self._db,
                self._table,
                partition,
                "PK, SK, #s, updated_at, lease_until",
                consistent=True,
            )
        ]
        present = {str(s[dynamo.SK]) for s in states}
        return states + record_counts.absent_records(event_id, layout, present)

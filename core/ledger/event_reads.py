"""Reading events: one event with a page of its notifications, every notification of one
(audits, the CLI), whether one exists and whose it is, and listings through the sharded
indexes. Every read the API makes is bounded: a page, a cursor for the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.aws import dynamo
from core.catalogue.models import EventRecord, EventStatus
from core.ledger import event_index, event_listing, record_counts
from core.ledger.event_items import event_items_by_pk, record_from_values, tally_among
from core.ledger.event_tally import EventTally
from core.ledger.record_counts import COUNTED_RECORDS, MASKED_RECIPIENTS
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout
from core.security.tenants import DEFAULT_TENANT


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def tally_layout(db: Any, table: str, event_id: str, consistent: bool = False) -> dict[str, Any]:
    """Where the event's records are (`record_shards`) and which its tally lists
    (`core.ledger.record_counts`: on the event item or the tally), with the tally's time: one
    Query of the two items, which sort next to each other."""
    resp = db.query(
        TableName=table,
        KeyConditionExpression="PK = :pk AND SK BETWEEN :event AND :tally",
        ExpressionAttributeValues={
            ":pk": {"S": dynamo.event_pk(event_id)},
            ":event": {"S": dynamo.EVENT_SK},
            ":tally": {"S": dynamo.TALLY_SK},
        },
        ProjectionExpression=f"SK, event_id, record_shards, {COUNTED_RECORDS}, "
        f"{MASKED_RECIPIENTS}, {record_counts.ROUTED_AT}, fanout_complete, updated_at",
        ConsistentRead=consistent,
    )
    return tally_among(resp.get("Items", []))


def all_records(
    db: Any, table: str, partition: str, projection: str | None = None, consistent: bool = False
) -> list[dict[str, Any]]:
    """Every record (typed) of one partition, page after page: for audits and repairs,
    never for the API."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :notif)",
        "ExpressionAttributeValues": {":pk": {"S": partition}, ":notif": {"S": "NOTIF#"}},
        "ConsistentRead": consistent,
    }
    if projection:
        kwargs["ProjectionExpression"] = projection
        kwargs["ExpressionAttributeNames"] = {"#s": "status"}
    items: list[dict[str, Any]] = []
    while True:
        resp = db.query(**kwargs)
        items += resp.get("Items", [])
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


class EventReads:
    """Reads of events and their notifications."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        tally: EventTally,
        retention_days: int = 30,
        layout: ShardLayout = DEFAULT_LAYOUT,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._tally = tally
        self._retention_days = retention_days
        self._layout = layout

    def get_page(
        self, event_id: str, limit: int, cursor: str | None = None
    ) -> tuple[EventRecord | None, list[dict[str, Any]], str | None]:
        """A bounded read of an event: without a cursor the event and its first `limit`
        notifications (one Query: the event item sorts before its records, unless a large
        fan-out keeps them on partitions of their own); with one, the next `limit`
        notifications only (the event is None). Returns the cursor of the rest. However
        many notifications a fan-out made, no request reads more than a page."""
        start = dynamo.decode_cursor(cursor, {dynamo.PK, dynamo.SK})
        main = dynamo.event_pk(event_id)
        if start is not None:
            pk = start[dynamo.PK]["S"]
            if pk == main:
                records, rest = self._records_from([main], start, limit)
                layout = self._tally_layout(event_id)
                return None, self._with_absent(event_id, layout, records, start, rest), rest
            if not pk.startswith(main + "#R"):
                raise dynamo.BadCursor("cursor is not one this API issued")
            partitions = dynamo.record_partitions(event_id, self._record_shards(event_id))
            if pk not in partitions:
                raise dynamo.BadCursor("cursor is not one this API issued")
            return (None, *self._records_from(partitions[partitions.index(pk) :], start, limit))
        resp = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": main}},
            Limit=limit + 2,  # the event, its tally, a page of records
        )
        items = resp.get("Items", [])
        if not items or items[0][dynamo.SK]["S"] != dynamo.EVENT_SK:
            return None, [], None
        record = self._with_tally(items[0], items[1:], "LastEvaluatedKey" not in resp)
        shards = self._shards_among(items)
        if shards > 1:
            partitions = dynamo.record_partitions(event_id, shards)
            return (record, *self._records_from(partitions, None, limit))
        records = [i for i in items if i[dynamo.SK]["S"].startswith("NOTIF#")]
        last = resp.get("LastEvaluatedKey")
        if len(records) > limit:  # the event had no tally yet: one record too many was read
            records = records[:limit]
            last = {dynamo.PK: records[-1][dynamo.PK], dynamo.SK: records[-1][dynamo.SK]}
        if last is not None and not records:
            last = None  # past the records (other items of the partition): nothing follows
        rest = dynamo.encode_cursor(last)
        plain = [dynamo.from_item(i) for i in records]
        return record, self._with_absent(event_id, tally_among(items), plain, None, rest), rest

    def _with_absent(
        self,
        event_id: str,
        layout: dict[str, Any],
        records: list[dict[str, Any]],
        start: dict[str, Any] | None,
        rest: str | None,
    ) -> list[dict[str, Any]]:
        """A page of the event's own partition with the listed records not written yet
        (`core.ledger.record_counts.absent_records`) that sort within it; `layout`: the event's
        tally (plain)."""
        if not layout.get(COUNTED_RECORDS):
            return records
        after = start[dynamo.SK]["S"] if start is not None else None
        upto = str(records[-1][dynamo.SK]) if rest is not None and records else None
        present = [str(r[dynamo.SK]) for r in records]
        absent = record_counts.absent_records(event_id, layout, present, after, upto)
        return sorted([*records, *absent], key=lambda r: str(r[dynamo.SK])) if absent else records

    @staticmethod
    def _shards_among(items: list[dict[str, Any]]) -> int:
        """The record partitions an event's tally (among typed `items`) says it has."""
        return int(tally_among(items).get("record_shards", 1))

    def _record_shards(self, event_id: str) -> int:
        return int(self._tally_layout(event_id).get("record_shards", 1))

    def _tally_layout(self, event_id: str, consistent: bool = False) -> dict[str, Any]:
        return tally_layout(self._db, self._table, event_id, consistent)

    def _records_from(
        self, partitions: list[str], start: dict[str, Any] | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` records, partition after partition (from `start` in the first),
        and the cursor of the rest (None once the last partition is read to its end)."""
        out: list[dict[str, Any]] = []
        index = 0
        while index < len(partitions) and len(out) < limit:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "PK = :pk AND begins_with(SK, :notif)",
                "ExpressionAttributeValues": {
                    ":pk": {"S": partitions[index]},
                    ":notif": {"S": "NOTIF#"},
                },
                "Limit": limit - len(out),
            }
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            resp = self._db.query(**kwargs)
            out += resp.get("Items", [])
            start = resp.get("LastEvaluatedKey")
            if start is None:
                index += 1
        cursor = None
        if index < len(partitions) and out:
            cursor = dynamo.encode_cursor({k: out[-1][k] for k in (dynamo.PK, dynamo.SK)})
        return [dynamo.from_item(i) for i in out], cursor

    def owner_of(self, event_id: str) -> tuple[bool, str | None]:
        """Whether the event exists, and its tenant (one small read)."""
        resp = self._db.get_item(
            TableName=self._table,
            Key={dynamo.PK: {"S": dynamo.event_pk(event_id)}, dynamo.SK: {"S": dynamo.EVENT_SK}},
            ProjectionExpression="PK, tenant",
        )
        item = resp.get("Item")
        if item is None:
            return False, None
        return True, item.get("tenant", {}).get("S")

    def get(self, event_id: str) -> tuple[EventRecord, list[dict[str, Any]]] | None:
        """The event and every notification, page after page (internal use: audits and
        tests; the API reads one page at a time, `get_page`)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": dynamo.event_pk(event_id)}},
        }
        while True:
            resp = self._db.query(**kwargs)
            items.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        event_item = next((i for i in items if i[dynamo.SK]["S"] == dynamo.EVENT_SK), None)
        if event_item is None:
            return None
        shards = self._shards_among(items)
        if shards > 1:
            for partition in dynamo.record_partitions(event_id, shards):
                items += all_records(self._db, self._table, partition)
        notifications = [
            dynamo.from_item(i) for i in items if i[dynamo.SK]["S"].startswith("NOTIF#")
        ]
        notifications = self._with_absent(event_id, tally_among(items), notifications, None, None)
        return self._with_tally(event_item, items, True), notifications

    def _with_tally(
        self, event_item: dict[str, Any], items: list[dict[str, Any]], whole: bool = False
    ) -> EventRecord:
        """The event with its tally (shard 0 among typed `items`, read with it; a sharded
        tally's other shards read by key) merged into its counts. `whole`: `items` are all
        of the event's partition, so a listed record not among them is absent, not unread."""
        tally = tally_among([event_item, *items])
        shards = int(tally.get("tally_shards", 1))
        listed = set(tally.get(COUNTED_RECORDS) or ())
        records = {
            i[dynamo.SK]["S"]: dynamo.from_item(i) for i in items if i[dynamo.SK]["S"] in listed
        }
        if listed and (whole or len(records) == len(listed)):  # counted from records read here
            tally = record_counts.apply(tally, records)
        elif shards > 1 or listed:
            event_id = str(tally["event_id"])
            tally = self._tally.tallies_of([event_id], {event_id: shards}, consistent=False)[
                event_id
            ]
        return record_from_values(dynamo.from_item(event_item), tally)

    def list_events(
        self,
        *,
        status: str | None = None,
        type_: str | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Newest first through one listing index (`core.ledger.event_index`), never a Scan: a
        user's, an in-flight or failed status's, a type's, a tenant's, or every event's, by
        the most selective filter given. The page's events and tallies are then read by
        key, and the other filters apply to them. With `tenant`, only that tenant's events
        (a user's are a tenant's too)."""
        wanted = {"user_id": user_id, "type": type_, "status": status}
        indexed = status is not None and EventStatus(status) in event_index.INDEXED_STATUSES
        if user_id is not None:
            source = event_listing.user_source(user_id)
        elif indexed:
            source = event_listing.status_source(EventStatus(str(status)), self._layout.status_read)
        elif type_ is not None:
            source = event_listing.day_source(
                event_index.BY_TYPE, f"{type_}#", self._retention_days, self._layout.listing_read
            )
        elif tenant is not None:
            source = event_listing.day_source(
                event_index.BY_TENANT, f"{tenant}#", self._retention_days, self._layout.listing_read
            )
        else:
            source = event_listing.day_source(
                event_index.BY_DAY, "", self._retention_days, self._layout.listing_read
            )

        def load(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            pks = [e[dynamo.PK]["S"] for e in entries]
            events = event_items_by_pk(self._db, self._table, pks, consistent=False)
            values_of = {pk: dynamo.from_item(item) for pk, item in events.items()}
            tallies = self._tally.tallies_of(
                [str(v["event_id"]) for v in values_of.values()],
                consistent=False,
                events={str(v["event_id"]): v for v in values_of.values()},
            )
            out = []
            for pk in pks:
                if pk not in values_of:
                    continue  # expired between the index read and this one
                values = values_of[pk]
                record = record_from_values(values, tallies.get(str(values["event_id"])))
                if tenant is not None and (record.tenant or DEFAULT_TENANT) != tenant:
                    continue
                shown = {"user_id": record.user_id, "type": record.type, "status": record.status}
                if any(v is not None and shown[k] != v for k, v in wanted.items()):
                    continue
                out.append(record.model_dump(mode="json"))
            return out

        items, next_cursor = event_listing.ShardedReader(self._db, self._table).newest(
            source, limit, cursor, load
        )
        return Page(items, next_cursor)

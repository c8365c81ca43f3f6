"""Event records in DynamoDB: the durable outbox behind every 202."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.dynamo import item_bytes, transact_chunks
from core.catalogue.models import Event, EventRecord, EventStatus, iso, utcnow
from core.ledger import event_index, event_listing, record_counts
from core.ledger.event_tally import EventTally
from core.ledger.record_counts import COUNTED_RECORDS, MASKED_RECIPIENTS, SETTLED_BUCKETS
from core.security.tenants import DEFAULT_TENANT

# A put cancelled only because another put of its transaction was refused goes again; a few
# rounds settle any batch (each round settles at least the puts that caused a cancellation).
TRANSACT_ROUNDS = 5


class EventExists(Exception):
    """The event id is taken; `existing` is the stored record."""

    def __init__(self, existing: EventRecord) -> None:
        super().__init__(existing.event_id)
        self.existing = existing


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _same_write(stored: dict[str, Any], item: dict[str, Any]) -> bool:
    token = item.get("accept_token")
    return token is not None and stored.get("accept_token") == token


def _retryable(outcome: EventExists | Exception | None) -> bool:
    return (
        isinstance(outcome, Exception)
        and not isinstance(outcome, EventExists)
        and (aws_errors.is_retryable(outcome))
    )


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


_LISTING_ATTRIBUTES = event_index.key_attributes()
# What the event item holds besides the record: its listing keys, and a self-counted
# event's list (`core.ledger.record_counts`), which readers merge into its tally.
_NOT_THE_RECORD = _LISTING_ATTRIBUTES | {
    COUNTED_RECORDS,
    MASKED_RECIPIENTS,
    record_counts.ROUTED_AT,
}


def event_to_item(record: EventRecord, retention_days: int) -> dict[str, Any]:
    # Counts live on the tally item (dynamo.TALLY_SK): counting never rewrites this one.
    values = record.model_dump(mode="json", exclude={"data", "counts", "fanout_complete"})
    values.update(
        event_index.listing_attributes(
            record.event_id,
            record.created_at,
            record.status,
            record.type,
            record.tenant,
            record.user_id,
        )
    )
    values.update(
        {
            dynamo.PK: dynamo.event_pk(record.event_id),
            dynamo.SK: dynamo.EVENT_SK,
            # JSON text keeps client data exact: DynamoDB numbers would turn floats into
            # Decimals and reject NaN-free but deep structures past 32 levels.
            "data_json": json.dumps(record.data, separators=(",", ":"), ensure_ascii=False),
            dynamo.TTL_ATTRIBUTE: int(time.time()) + retention_days * 86400,
        }
    )
    return dynamo.to_item(values)


def record_from_values(values: dict[str, Any], tally: dict[str, Any] | None = None) -> EventRecord:
    """An event record from an item already made plain (`dynamo.from_item`), with its
    counts and fan-out progress from the tally item when given."""
    values = {k: v for k, v in values.items() if k not in _NOT_THE_RECORD}
    values["data"] = json.loads(values.pop("data_json", "{}"))
    if tally:
        values["counts"] = {k: int(tally.get(k, 0)) for k in dynamo.COUNT_FIELDS}
        values["fanout_complete"] = bool(tally.get("fanout_complete")) or bool(
            values.get("fanout_complete")
        )
    return EventRecord.model_validate(values)


def item_to_event(item: dict[str, Any], tally: dict[str, Any] | None = None) -> EventRecord:
    return record_from_values(dynamo.from_item(item), dynamo.from_item(tally) if tally else None)


class EventStore:
    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days
        self._tally = EventTally(dynamodb, table, retention_days)

    def new_record(self, event: Event) -> EventRecord:
        now = event.created_at
        return EventRecord(
            **event.model_dump(),
            status=EventStatus.START,
            payload_hash=event.fingerprint(),
            updated_at=now,
            last_published_at=now,
        )

    def put_new(self, record: EventRecord) -> None:
        """Record an event once; a taken id raises EventExists with the stored record."""
        self._put_item(event_to_item(record, self._retention_days))

    def _put_item(self, item: dict[str, Any]) -> None:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _is_condition_failure(exc) and "Item" in exc.response:
                if _same_write(exc.response["Item"], item):
                    return  # a retry of our own put whose first answer was lost
                raise EventExists(item_to_event(exc.response["Item"])) from exc
            raise

    def put_new_batch(self, records: Sequence[EventRecord]) -> list[EventExists | Exception | None]:
        """Record several events with as few calls as their conditions allow; one outcome
        per record, in order: None (recorded), EventExists (the id was taken; the stored
        record inside) or the error that stopped it.

        Conditional puts cannot go in BatchWriteItem, so several go in one
        TransactWriteItems (at most `TRANSACT_MAX` items and `TRANSACT_MAX_BYTES`). A
        transaction is all or nothing: when one put finds its id taken, DynamoDB cancels
        the rest and says which one, and the rest go again without it. A lone record is a
        plain PutItem, which also costs one write unit where a transaction costs two.
        The same id twice in the batch is recorded once; the repeat is told it exists.

        Every item carries this call's `accept_token`. After an error that may hide an
        applied write (a 500, a lost answer) the items are read back: one holding our token
        was recorded by us, one holding another token was recorded by someone else (a
        concurrent repeat: EventExists), and a missing one is written again. Throttling and
        conflicts are tried again too, with backoff, for TRANSACT_ROUNDS rounds; only then
        is an error the outcome (the API answers 503: nothing was accepted).
        """
        outcomes: list[EventExists | Exception | None] = [None] * len(records)
        first: dict[str, int] = {}
        for index, record in enumerate(records):
            first.setdefault(record.event_id, index)
        pending = sorted(first.values())
        token = uuid.uuid4().hex
        items = {i: event_to_item(records[i], self._retention_days) for i in pending}
        for item in items.values():
            item["accept_token"] = {"S": token}
        for round_ in range(TRANSACT_ROUNDS):
            if not pending:
                break
            if round_:
                time.sleep(aws_errors.jittered(round_ - 1, 0.05, 1.0))
            retry: list[int] = []
            for chunk in transact_chunks(pending, lambda i: item_bytes(items[i])):
                if len(chunk) == 1:
                    outcomes[chunk[0]] = self._put_one(items[chunk[0]])
                    continue
                retry += self._put_transaction(chunk, items, outcomes)
            failed = [i for i in pending if i not in retry and _retryable(outcomes[i])]
            retry += self._read_back(failed, items, token, outcomes)
            pending = sorted(retry)
        for index in pending:  # still conflicting after every round
            if outcomes[index] is None:
                outcomes[index] = ClientError(
                    {"Error": {"Code": "TransactionConflict", "Message": "gave up retrying"}},
                    "TransactWriteItems",
                )
        for index, record in enumerate(records):
            original = first[record.event_id]
            if index != original:
                outcome = outcomes[original]
                outcomes[index] = EventExists(records[original]) if outcome is None else outcome
        return outcomes

    def _read_back(
        self,
        indexes: list[int],
        items: dict[int, dict[str, Any]],
        token: str,
        outcomes: list[EventExists | Exception | None],
    ) -> list[int]:
        """Settle failed puts from what is stored; returns those to write again."""
        if not indexes:
            return []
        keys = {
            items[i][dynamo.PK]["S"]: i
            for i in indexes
            if any(aws_errors.may_have_applied(e) for e in [outcomes[i]] if e is not None)
        }
        stored: dict[str, dict[str, Any]] = {}
        if keys:
            try:
                stored = self._get_events(list(keys))
            except (ClientError, BotoCoreError):
                return indexes  # cannot tell yet: the next round writes (or reads) again
        again: list[int] = []
        for i in indexes:
            found = stored.get(items[i][dynamo.PK]["S"])
            if found is None:
                again.append(i)
            elif found.get("accept_token", {}).get("S") == token:
                outcomes[i] = None  # our write went through; only its answer was lost
            else:
                outcomes[i] = EventExists(item_to_event(found))
        return again

    def _get_events(self, pks: list[str]) -> dict[str, dict[str, Any]]:
        """Event items by PK, read consistently."""
        return self._items_by_pk(pks, dynamo.EVENT_SK, consistent=True)

    def _items_by_pk(
        self, pks: list[str], sort_key: str, *, consistent: bool
    ) -> dict[str, dict[str, Any]]:
        """The items (PK, `sort_key`) by PK."""
        keys = [{dynamo.PK: {"S": pk}, dynamo.SK: {"S": sort_key}} for pk in pks]
        return {i[dynamo.PK]["S"]: i for i in self._items_by_key(keys, consistent=consistent)}

    def _items_by_key(
        self, keys: list[dict[str, Any]], *, consistent: bool
    ) -> list[dict[str, Any]]:
        return dynamo.batch_get(self._db, self._table, keys, consistent=consistent)

    def _put_one(self, item: dict[str, Any]) -> EventExists | Exception | None:
        try:
            self._put_item(item)
        except EventExists as exc:
            return exc
        except (ClientError, BotoCoreError) as exc:
            return exc
        return None

    def _put_transaction(
        self,
        chunk: list[int],
        items: dict[int, dict[str, Any]],
        outcomes: list[EventExists | Exception | None],
    ) -> list[int]:
        """One transaction of conditional puts; sets the outcomes it settles and returns the
        indexes to try again (cancelled through no fault of their own)."""
        for i in chunk:
            outcomes[i] = None  # unless this call says otherwise
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": items[i],
                            "ConditionExpression": "attribute_not_exists(PK)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                    for i in chunk
                ]
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            code = exc.response.get("Error", {}).get("Code")
            if code != "TransactionCanceledException" or len(reasons) != len(chunk):
                for i in chunk:
                    outcomes[i] = exc
                return []
            retry: list[int] = []
            for i, reason in zip(chunk, reasons, strict=True):
                reason_code = reason.get("Code")
                if reason_code == "ConditionalCheckFailed" and "Item" in reason:
                    if _same_write(reason["Item"], items[i]):
                        outcomes[i] = None  # applied by our earlier try
                    else:
                        outcomes[i] = EventExists(item_to_event(reason["Item"]))
                elif reason_code in (None, "None", "TransactionConflict", "ConditionalCheckFailed"):
                    retry.append(i)  # a put that would have gone in, or met a concurrent write
                else:
                    outcomes[i] = ClientError(
                        {"Error": {"Code": str(reason_code), "Message": reason.get("Message", "")}},
                        "TransactWriteItems",
                    )
            return retry
        except BotoCoreError as exc:
            for i in chunk:
                outcomes[i] = exc
        return []

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
        return record, self._with_absent(event_id, _tally_among(items), plain, None, rest), rest

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
        return int(_tally_among(items).get("record_shards", 1))

    def _record_shards(self, event_id: str) -> int:
        return int(self._tally_layout(event_id).get("record_shards", 1))

    def _tally_layout(self, event_id: str, consistent: bool = False) -> dict[str, Any]:
        """Where the event's records are (`record_shards`) and which its tally lists
        (`core.ledger.record_counts`: on the event item or the tally), with the tally's time: one
        Query of the two items, which sort next to each other."""
        resp = self._db.query(
            TableName=self._table,
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
        return _tally_among(resp.get("Items", []))

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
                items += self._all_records(partition)
        notifications = [
            dynamo.from_item(i) for i in items if i[dynamo.SK]["S"].startswith("NOTIF#")
        ]
        notifications = self._with_absent(event_id, _tally_among(items), notifications, None, None)
        return self._with_tally(event_item, items, True), notifications

    def _with_tally(
        self, event_item: dict[str, Any], items: list[dict[str, Any]], whole: bool = False
    ) -> EventRecord:
        """The event with its tally (shard 0 among typed `items`, read with it; a sharded
        tally's other shards read by key) merged into its counts. `whole`: `items` are all
        of the event's partition, so a listed record not among them is absent, not unread."""
        tally = _tally_among([event_item, *items])
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
            source = event_listing.status_source(EventStatus(str(status)))
        elif type_ is not None:
            source = event_listing.day_source(
                event_index.BY_TYPE, f"{type_}#", self._retention_days
            )
        elif tenant is not None:
            source = event_listing.day_source(
                event_index.BY_TENANT, f"{tenant}#", self._retention_days
            )
        else:
            source = event_listing.day_source(event_index.BY_DAY, "", self._retention_days)

        def load(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            pks = [e[dynamo.PK]["S"] for e in entries]
            events = self._items_by_pk(pks, dynamo.EVENT_SK, consistent=False)
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
        touched = "last_published_at" if status is EventStatus.START else "updated_at"
        entries, nxt = event_listing.ShardedReader(self._db, self._table).oldest(
            status, cutoff, touched, start_key, limit
        )
        pks = [e[dynamo.PK]["S"] for e in entries]
        events = self._items_by_pk(pks, dynamo.EVENT_SK, consistent=True)
        return [dynamo.from_item(events[pk]) for pk in pks if pk in events], nxt

    def stale_started(self, grace: timedelta, limit: int = 100) -> list[EventRecord]:
        """START events whose last publish is older than `grace` (the first page)."""
        items, _ = self.stale(EventStatus.START, iso(utcnow() - grace), limit=limit)
        return [record_from_values(i) for i in items]

    def stale_processing(self, grace: timedelta, limit: int = 50) -> list[EventRecord]:
        """PROCESSING events untouched for `grace` (the first page)."""
        items, _ = self.stale(EventStatus.PROCESSING, iso(utcnow() - grace), limit=limit)
        return [record_from_values(i) for i in items]

    def _all_records(
        self, partition: str, projection: str | None = None, consistent: bool = False
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :notif)",
            "ExpressionAttributeValues": {":pk": {"S": partition}, ":notif": {"S": "NOTIF#"}},
            "ConsistentRead": consistent,
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
            kwargs["ExpressionAttributeNames"] = {"#s": "status"}
        items: list[dict[str, Any]] = []
        while True:
            resp = self._db.query(**kwargs)
            items += resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def notification_states(self, event_id: str) -> list[dict[str, Any]]:
        """The event's notification records, only what an audit needs (keys, status and
        times), page by page, from every partition that holds them."""
        layout = self._tally_layout(event_id, consistent=True)
        partitions = dynamo.record_partitions(event_id, int(layout.get("record_shards", 1)))
        states = [
            dynamo.from_item(i)
            for partition in partitions
            for i in self._all_records(
                partition, "PK, SK, #s, updated_at, lease_until", consistent=True
            )
        ]
        present = {str(s[dynamo.SK]) for s in states}
        return states + record_counts.absent_records(event_id, layout, present)

    def mark_repaired(self, event_id: str) -> bool:
        """Count a repair and restart the event's clock; False if it left PROCESSING."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    dynamo.PK: {"S": dynamo.event_pk(event_id)},
                    dynamo.SK: {"S": dynamo.EVENT_SK},
                },
                UpdateExpression="SET updated_at = :now ADD repair_attempts :one",
                ConditionExpression="#s = :processing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":now": {"S": iso(utcnow())},
                    ":one": {"N": "1"},
                    ":processing": {"S": EventStatus.PROCESSING.value},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def settle_from_records(self, event_id: str) -> EventStatus | None:
        """Settle a PROCESSING event from its notification records, the source of truth.

        The running tally on the event is a fast path that a lost or repeated counter
        update can leave wrong; this recounts every record and, when none is still in
        flight and the fan-out is complete, writes the true counts and the final status.
        """
        found = self._items_by_key(
            [dynamo.event_key(event_id), dynamo.tally_key(event_id)], consistent=True
        )
        items = {i[dynamo.SK]["S"]: dynamo.from_item(i) for i in found}
        event = items.get(dynamo.EVENT_SK, {})
        tally = record_counts.with_event(items.get(dynamo.TALLY_SK, {}), event)
        if event.get("status") != EventStatus.PROCESSING or not (
            tally.get("fanout_complete") or event.get("fanout_complete")
        ):
            return None
        notifications = self.notification_states(event_id)
        counts = {"total": 0, "sent": 0, "failed": 0, "skipped": 0}
        for item in notifications:
            if not str(item.get(dynamo.SK, "")).startswith("NOTIF#"):
                continue
            bucket = SETTLED_BUCKETS.get(str(item.get("status")))
            if bucket is None:
                return None  # still queued, sending or retrying
            counts["total"] += 1
            counts[bucket] += 1
        final = EventStatus.FAILED if counts["failed"] else EventStatus.SUCCESS
        reason = (
            f"{counts['failed']} of {counts['total']} notifications failed"
            if counts["failed"]
            else None
        )
        # The true counts go on the tally (the source the API shows), shard 0 holding them
        # all and the other shards none; then the status.
        for shard in range(int(tally.get("tally_shards", 1))):
            shown: dict[str, Any] = counts if shard == 0 else dict.fromkeys(counts, 0)
            if shard:  # what marks a shard as one (dynamo.merge_tallies)
                shown = {**shown, "tally_shard": shard}
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
        attrs: dict[str, Any] = {"reason": reason} if reason else {}
        return final if self.transition(event_id, EventStatus.PROCESSING, final, **attrs) else None

    def mark_republished(self, event_id: str) -> bool:
        """Stamp a republish; False if the event left START meanwhile (nothing to do)."""
        now = iso(utcnow())
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    dynamo.PK: {"S": dynamo.event_pk(event_id)},
                    dynamo.SK: {"S": dynamo.EVENT_SK},
                },
                UpdateExpression="SET last_published_at = :now, updated_at = :now "
                "ADD publish_attempts :one",
                ConditionExpression="#s = :start",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":now": {"S": now},
                    ":one": {"N": "1"},
                    ":start": {"S": EventStatus.START.value},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def fail(self, event_id: str, reason: str) -> bool:
        """START|PROCESSING → FAILED with the reason (routing or publishing gave up);
        False when the event had settled or is gone."""
        update, index_values = event_index.update_expression(
            ["#s = :failed", "reason = :reason", "updated_at = :now"], event_id, EventStatus.FAILED
        )
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    dynamo.PK: {"S": dynamo.event_pk(event_id)},
                    dynamo.SK: {"S": dynamo.EVENT_SK},
                },
                UpdateExpression=update,
                ConditionExpression="#s IN (:start, :processing)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    **index_values,
                    ":failed": {"S": EventStatus.FAILED.value},
                    ":reason": {"S": reason},
                    ":now": {"S": iso(utcnow())},
                    ":start": {"S": EventStatus.START.value},
                    ":processing": {"S": EventStatus.PROCESSING.value},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def transition(
        self, event_id: str, expected: EventStatus, new: EventStatus, **attrs: Any
    ) -> bool:
        """Move the event from `expected` to `new`; False when it was not in `expected`."""
        now = iso(utcnow())
        sets = ["#s = :new", "updated_at = :now"]
        values: dict[str, Any] = {
            ":new": {"S": new.value},
            ":now": {"S": now},
            ":expected": {"S": expected.value},
        }
        for i, (name, value) in enumerate(attrs.items()):
            sets.append(f"{name} = :a{i}")
            values[f":a{i}"] = dynamo.to_value(value)
        update, index_values = event_index.update_expression(sets, event_id, new)
        values.update(index_values)
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    dynamo.PK: {"S": dynamo.event_pk(event_id)},
                    dynamo.SK: {"S": dynamo.EVENT_SK},
                },
                UpdateExpression=update,
                ConditionExpression="#s = :expected",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True


def _tally_among(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The tally (plain) among an event's typed items, with what its event item holds of
    it (`core.ledger.record_counts.with_event`), or {} when it has none yet."""
    wanted = (dynamo.EVENT_SK, dynamo.TALLY_SK)
    found = {i[dynamo.SK]["S"]: i for i in items if i[dynamo.SK]["S"] in wanted}
    tally = dynamo.from_item(found[dynamo.TALLY_SK]) if dynamo.TALLY_SK in found else {}
    event = dynamo.from_item(found[dynamo.EVENT_SK]) if dynamo.EVENT_SK in found else {}
    return record_counts.with_event(tally, event)

"""Event records in DynamoDB: the durable outbox behind every 202."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from core import dynamo
from core.dynamo import item_bytes, transact_chunks
from core.models import Event, EventRecord, EventStatus, iso, utcnow

# Notification statuses that are settled, and the tally bucket each counts in.
SETTLED_BUCKETS = {
    "SENT": "sent",
    "DELIVERED": "sent",
    "UNDELIVERED": "sent",
    "BOUNCED": "sent",
    "FAILED": "failed",
    "SKIPPED": "skipped",
}


# A put cancelled only because another put of its transaction was refused goes again; a few
# rounds settle any batch (each round settles at least the puts that caused a cancellation).
TRANSACT_ROUNDS = 4


class EventExists(Exception):
    """The event id is taken; `existing` is the stored record."""

    def __init__(self, existing: EventRecord) -> None:
        super().__init__(existing.event_id)
        self.existing = existing


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def event_to_item(record: EventRecord, retention_days: int) -> dict[str, Any]:
    values = record.model_dump(mode="json", exclude={"data"})
    values.update(
        {
            dynamo.PK: dynamo.event_pk(record.event_id),
            dynamo.SK: dynamo.EVENT_SK,
            "entity": dynamo.ENTITY_EVENT,
            dynamo.GSI_SORT: f"{record.created_at}#{record.event_id}",
            # JSON text keeps client data exact: DynamoDB numbers would turn floats into
            # Decimals and reject NaN-free but deep structures past 32 levels.
            "data_json": json.dumps(record.data, separators=(",", ":"), ensure_ascii=False),
            dynamo.TTL_ATTRIBUTE: int(time.time()) + retention_days * 86400,
        }
    )
    return dynamo.to_item(values)


def item_to_event(item: dict[str, Any]) -> EventRecord:
    values = dynamo.from_item(item)
    values["data"] = json.loads(values.pop("data_json", "{}"))
    return EventRecord.model_validate(values)


class EventStore:
    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days

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
        """
        outcomes: list[EventExists | Exception | None] = [None] * len(records)
        first: dict[str, int] = {}
        for index, record in enumerate(records):
            first.setdefault(record.event_id, index)
        pending = sorted(first.values())
        items = {i: event_to_item(records[i], self._retention_days) for i in pending}
        for _ in range(TRANSACT_ROUNDS):
            if not pending:
                break
            retry: list[int] = []
            for chunk in transact_chunks(pending, lambda i: item_bytes(items[i])):
                if len(chunk) == 1:
                    outcomes[chunk[0]] = self._put_one(items[chunk[0]])
                    continue
                retry += self._put_transaction(chunk, items, outcomes)
            pending = retry
        for index in pending:  # still conflicting after every round
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

    def get(self, event_id: str) -> tuple[EventRecord, list[dict[str, Any]]] | None:
        """The event and its notifications: one Query on the event's partition."""
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
        notifications = [dynamo.from_item(i) for i in items if i is not event_item]
        return item_to_event(event_item), notifications

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
        """Newest first through a GSI. The most selective filter picks the index; the
        others become a FilterExpression on that Query (never a Scan). With `tenant`, only
        that tenant's events: its own index, unless a user's (also a tenant's) is narrower."""
        filters = {"user_id": user_id, "tenant": tenant, "type": type_, "status": status}
        index, partition_attr = dynamo.GSI_BY_ENTITY, "entity"
        partition_value: str = dynamo.ENTITY_EVENT
        for name, attr in (
            (dynamo.GSI_BY_USER, "user_id"),
            (dynamo.GSI_BY_TENANT, "tenant"),
            (dynamo.GSI_BY_TYPE, "type"),
            (dynamo.GSI_BY_STATUS, "status"),
        ):
            value = filters[attr]
            if value is not None:
                index, partition_attr, partition_value = name, attr, value
                break
        names = {"#p": partition_attr}
        values: dict[str, Any] = {":p": {"S": partition_value}}
        conditions = []
        for i, (attr, value) in enumerate(filters.items()):
            if value is not None and attr != partition_attr:
                names[f"#f{i}"] = attr
                values[f":f{i}"] = {"S": value}
                conditions.append(f"#f{i} = :f{i}")
        key_names = {dynamo.PK, dynamo.SK, dynamo.GSI_SORT, partition_attr}
        start = dynamo.decode_cursor(cursor, key_names)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if conditions:
            kwargs["FilterExpression"] = " AND ".join(conditions)
        items: list[dict[str, Any]] = []
        last_key = None
        # With a filter a page can come back short; keep reading until it is full or done.
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = start
            kwargs["Limit"] = limit - len(items)
            resp = self._db.query(**kwargs)
            items.extend(resp.get("Items", []))
            last_key = resp.get("LastEvaluatedKey")
            if not last_key or len(items) >= limit:
                break
            start = last_key
        records = [item_to_event(i).model_dump(mode="json") for i in items]
        return Page(records, dynamo.encode_cursor(last_key))

    def stale_started(self, grace: timedelta, limit: int = 100) -> list[EventRecord]:
        """START events whose last publish is older than `grace`: the reconciler's work."""
        cutoff = iso(utcnow() - grace)
        resp = self._db.query(
            TableName=self._table,
            IndexName=dynamo.GSI_BY_STATUS,
            KeyConditionExpression="#s = :start AND created_key < :cutoff",
            FilterExpression="last_published_at < :cutoff",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":start": {"S": EventStatus.START.value},
                ":cutoff": {"S": cutoff},
            },
            Limit=limit,
        )
        return [item_to_event(i) for i in resp.get("Items", [])]

    def stale_processing(self, grace: timedelta, limit: int = 50) -> list[EventRecord]:
        """PROCESSING events untouched for `grace`: candidates for a settle audit."""
        cutoff = iso(utcnow() - grace)
        resp = self._db.query(
            TableName=self._table,
            IndexName=dynamo.GSI_BY_STATUS,
            KeyConditionExpression="#s = :processing AND created_key < :cutoff",
            FilterExpression="updated_at < :cutoff",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":processing": {"S": EventStatus.PROCESSING.value},
                ":cutoff": {"S": cutoff},
            },
            Limit=limit,
        )
        return [item_to_event(i) for i in resp.get("Items", [])]

    def settle_from_records(self, event_id: str) -> EventStatus | None:
        """Settle a PROCESSING event from its notification records, the source of truth.

        The running tally on the event is a fast path that a lost or repeated counter
        update can leave wrong; this recounts every record and, when none is still in
        flight and the fan-out is complete, writes the true counts and the final status.
        """
        found = self.get(event_id)
        if found is None:
            return None
        record, notifications = found
        if record.status is not EventStatus.PROCESSING or not record.fanout_complete:
            return None
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
        attrs: dict[str, Any] = {"counts": counts}
        if reason:
            attrs["reason"] = reason
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
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    dynamo.PK: {"S": dynamo.event_pk(event_id)},
                    dynamo.SK: {"S": dynamo.EVENT_SK},
                },
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :expected",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

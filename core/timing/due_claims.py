"""The due sender's side of due work (`core.timing.due_work`): the cursor, peeks at a
shard, leases on shards, and the deletes and retries of handled items.

A due sender takes a shard of a minute with a conditional write on the shard's claim item
(a lease, renewed between chunks), so two senders never work one shard at once; an item is
deleted only after its handler returned. A sender that dies mid-shard leaves the lease to
lapse, and the next one hands out again what was not deleted: nothing is lost, and the
handlers' idempotence keeps a second hand-out from doing anything twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow
from core.timing.due_work import (
    CLAIM_SK,
    CURSOR_KEY,
    ITEM_PREFIX,
    bucket_of,
    put_in_open_minutes,
    work_pk,
)


class DueClaims:
    """Reads and conditional writes of one table's due work, for one owner (a sender)."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        owner: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self.owner = owner
        self._clock = clock

    def cursor(self) -> str | None:
        """The oldest minute that may hold work; None before anything was scheduled."""
        resp = self._db.get_item(TableName=self._table, Key=CURSOR_KEY, ConsistentRead=True)
        return str(resp["Item"]["bucket"]["S"]) if "Item" in resp else None

    def advance_cursor(self, old: str, new: str) -> None:
        """Move the cursor past a closed, empty minute; losing a race costs nothing."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=CURSOR_KEY,
                UpdateExpression="SET #b = :new",
                ConditionExpression="#b = :old",
                ExpressionAttributeNames={"#b": "bucket"},
                ExpressionAttributeValues={":new": {"S": new}, ":old": {"S": old}},
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise

    def first(self, bucket: str, shard: int, *, consistent: bool = False) -> dict[str, Any] | None:
        """The shard's earliest item (due or not), keys and due time only: one read of
        one item tells an empty shard, a due one, and when the next is due. `consistent`
        for the read that lets a minute close: an eventually consistent one may miss an
        item put a moment before, which would be left behind the cursor."""
        resp = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :w)",
            ExpressionAttributeValues={
                ":pk": {"S": work_pk(bucket, shard)},
                ":w": {"S": ITEM_PREFIX},
            },
            ProjectionExpression="PK, SK, due_at",
            Limit=1,
            ConsistentRead=consistent,
        )
        items = resp.get("Items") or []
        return dynamo.from_item(items[0]) if items else None

    def due(self, bucket: str, shard: int, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` items of the shard due by `now`, oldest first, read consistently
        (an item a handler just deleted must not be handed out again)."""
        resp = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk AND SK BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": work_pk(bucket, shard)},
                ":lo": {"S": ITEM_PREFIX},
                ":hi": {"S": f"{ITEM_PREFIX}{iso(now)}#~"},
            },
            ConsistentRead=True,
            Limit=limit,
        )
        return [dynamo.from_item(i) for i in resp.get("Items", [])]

    def claim(self, bucket: str, shard: int, now: datetime, lease_seconds: float) -> bool:
        """Take (or renew) the shard's lease; False while another sender holds it."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._claim_key(bucket, shard),
                UpdateExpression="SET #o = :me, lease_until = :until, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(#o) OR lease_until < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":until": {"S": iso(now + timedelta(seconds=lease_seconds))},
                    ":now": {"S": iso(now)},
                    ":ttl": {"N": str(int(time.time()) + 7 * 86400)},
                },
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                return False
            raise
        return True

    def release(self, bucket: str, shard: int) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._claim_key(bucket, shard),
                UpdateExpression="REMOVE #o, lease_until",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise

    def delete(self, items: list[dict[str, Any]]) -> None:
        """Delete handled items (BatchWriteItem, 25 a call; unprocessed ones retried with
        backoff, then raised: the lease lapses and the next pass hands them out again)."""
        dynamo.batch_write(self._db, self._table, [], items)

    def retry_later(self, item: dict[str, Any], at: datetime, error: str) -> None:
        """Move an item whose handler failed to the minute of `at`, counting the failure:
        it comes due again then, and does not block its shard meanwhile. The copy is put
        (in a minute still open when the put returns) before the item is deleted, so a
        failure between the two leaves it twice, never nowhere."""
        rest = str(item[dynamo.SK]).split("#", 2)[2]
        shard = int(str(item[dynamo.PK]).rsplit("#", 1)[1])
        plain = {k: v for k, v in item.items() if k not in (dynamo.PK, dynamo.SK)}
        plain["attempts"] = int(item.get("attempts", 0)) + 1
        plain["last_error"] = error[:500]

        def moved(now: datetime) -> dict[str, Any]:
            when = max(at, now)
            return dynamo.to_item(
                {
                    **plain,
                    dynamo.PK: work_pk(bucket_of(when), shard),
                    dynamo.SK: f"{ITEM_PREFIX}{iso(at)}#{rest}",
                }
            )

        put_in_open_minutes(self._db, self._table, [moved], self._clock)
        self.delete([item])

    @staticmethod
    def _claim_key(bucket: str, shard: int) -> dict[str, Any]:
        return {dynamo.PK: {"S": work_pk(bucket, shard)}, dynamo.SK: {"S": CLAIM_SK}}

"""Due rule runs in DynamoDB, bucketed by minute and sharded, so no key is hot.

    PK DUE#<YYYY-MM-DDTHH:MM>#<shard>   SK R#<due time>#<rule id>   a due run
                                        SK #CLAIM                   who works this shard

A rule's shard is a hash of its id modulo HERALD_SCHEDULER_SHARDS: 10,000 rules every minute
spread over (shards) partitions per minute instead of one. A scheduler takes a shard with a
conditional write on its claim item (a lease), so two schedulers never work one shard at
the same time; within the lease it sends the shard's due runs and moves each to its next
due time. A scheduler that dies mid-shard leaves the lease to lapse; the next one resends
what was not moved, and the evaluators drop a run they have already recorded.

A due item carries the version of the rule it was scheduled for. The API never hunts for
a rule's due item: a changed rule gets a new one (the same key when the due time is the
same, so it replaces the old), and a scheduler drops a due item whose rule is gone,
disabled or of another version when it comes due (one consistent BatchGetItem per 100
runs). Moves are plain BatchWriteItem calls (delete this run, put the next), two writes a
run instead of a three-item transaction.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from alerting.rules import Rule
from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso

CLAIM_SK = "#CLAIM"


def bucket_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def bucket_time(bucket: str) -> datetime:
    return datetime.strptime(bucket, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)


def next_bucket(bucket: str) -> str:
    return bucket_of(bucket_time(bucket) + timedelta(minutes=1))


def shard_of(rule_id: str, shards: int) -> int:
    return int(hashlib.sha256(rule_id.encode()).hexdigest()[:8], 16) % shards


def due_pk(bucket: str, shard: int) -> str:
    return f"DUE#{bucket}#{shard}"


def due_item(rule: Rule, at: datetime, shards: int) -> dict[str, Any]:
    """Everything the scheduler needs to send this run and compute the next, so it never
    reads the rule itself."""
    return {
        dynamo.PK: due_pk(bucket_of(at), shard_of(rule.id, shards)),
        dynamo.SK: f"R#{iso(at)}#{rule.id}",
        "rule_id": rule.id,
        "due": iso(at),
        "version": rule.version,
        "schedule": rule.schedule,
        "timezone": rule.timezone,
        "lane": "critical" if rule.severity == "critical" else "normal",
    }


class DueStore:
    def __init__(self, dynamodb: Any, table: str, owner: str) -> None:
        self._db = dynamodb
        self._table = table
        self.owner = owner

    def due_now(self, bucket: str, shard: int, now: datetime) -> list[dict[str, Any]]:
        """Due runs of a shard up to `now`, oldest first (all of them, page by page)."""
        args: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": {"S": due_pk(bucket, shard)},
                ":lo": {"S": "R#"},
                ":hi": {"S": f"R#{iso(now)}#~"},
            },
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            resp = self._db.query(**args)
            items += [dynamo.from_item(i) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                return items
            args["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def any_due(self, bucket: str, shard: int, now: datetime) -> bool:
        """Whether the shard has a run due by `now`: one item read, before claiming it."""
        resp = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk AND SK BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": due_pk(bucket, shard)},
                ":lo": {"S": "R#"},
                ":hi": {"S": f"R#{iso(now)}#~"},
            },
            ProjectionExpression="PK",
            Limit=1,
        )
        return bool(resp.get("Items"))

    def claim(self, bucket: str, shard: int, now: datetime, lease_seconds: float) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={dynamo.PK: {"S": due_pk(bucket, shard)}, dynamo.SK: {"S": CLAIM_SK}},
                UpdateExpression="SET #o = :me, lease_until = :until",
                ConditionExpression="attribute_not_exists(#o) OR lease_until < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":until": {"S": iso(now + timedelta(seconds=lease_seconds))},
                    ":now": {"S": iso(now)},
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
                Key={dynamo.PK: {"S": due_pk(bucket, shard)}, dynamo.SK: {"S": CLAIM_SK}},
                UpdateExpression="REMOVE #o, lease_until",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise

    def versions(self, rule_ids: list[str]) -> dict[str, int]:
        """The current version of each rule (ids without repeats) that exists and is
        enabled, read consistently: a rule changed a moment ago must not run its old
        version."""
        keys = [{dynamo.PK: {"S": f"RULE#{r}"}, dynamo.SK: {"S": "RULE"}} for r in rule_ids]
        items = dynamo.batch_get(
            self._db, self._table, keys, consistent=True, projection="PK, version, enabled"
        )
        found: dict[str, int] = {}
        for plain in map(dynamo.from_item, items):
            if plain.get("enabled", True):
                found[plain[dynamo.PK].removeprefix("RULE#")] = int(plain["version"])
        return found

    def write(self, puts: list[dict[str, Any]], deletes: list[dict[str, Any]]) -> None:
        """Put the next runs and delete the done ones, 25 writes per BatchWriteItem; what
        DynamoDB hands back unprocessed is retried with a backoff, then raised (the lease
        lapses and the next pass redoes the shard)."""
        dynamo.batch_write(self._db, self._table, [dynamo.to_item(i) for i in puts], deletes)

    def cursor(self) -> str | None:
        resp = self._db.get_item(
            TableName=self._table,
            Key={dynamo.PK: {"S": "SCHEDULER"}, dynamo.SK: {"S": "CURSOR"}},
            ConsistentRead=True,
        )
        return str(resp["Item"]["bucket"]["S"]) if "Item" in resp else None

    def advance_cursor(self, old: str | None, new: str) -> None:
        """Move the oldest bucket worth scanning forward; losing a race costs nothing."""
        cond = "attribute_not_exists(PK)" if old is None else "#b = :old"
        values: dict[str, Any] = {":new": {"S": new}}
        if old is not None:
            values[":old"] = {"S": old}
        try:
            self._db.update_item(
                TableName=self._table,
                Key={dynamo.PK: {"S": "SCHEDULER"}, dynamo.SK: {"S": "CURSOR"}},
                UpdateExpression="SET #b = :new",
                ConditionExpression=cond,
                ExpressionAttributeNames={"#b": "bucket"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise

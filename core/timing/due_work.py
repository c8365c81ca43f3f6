"""Due work in DynamoDB: one small item per piece of waiting work, in minute buckets
spread over shards, so no key is hot however much comes due in one minute.

    PK WORK#<YYYY-MM-DDTHH:MM>#<shard>   SK W#<due>#<kind>#<ref>   one piece of due work
                                         SK #CLAIM                 who works this shard
    PK WORK#CURSOR                       SK CURSOR                 the oldest open minute

The prefix is not the alert rules' (`DUE#`, `alerting/due.py`): the two schedulers never
see each other's items. The shard is a hash of (kind, ref), so (kind, ref, due) always
makes the same key: scheduling twice is one item, and `unschedule` finds it without a read.
Work scheduled for a time already past goes in the current minute (the due sender has
closed older minutes), so a put never lands behind the cursor.

Who works the items is `core.timing.due_claims` and `listeners/due_sender.py`: handlers act
on `DueWork` and must be idempotent, since a lapsed lease hands an item out twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow

log = logging.getLogger("herald.timing")

PREFIX = "WORK#"
ITEM_PREFIX = "W#"
CLAIM_SK = "#CLAIM"
CURSOR_KEY = {dynamo.PK: {"S": "WORK#CURSOR"}, dynamo.SK: {"S": "CURSOR"}}
DATA_MAX_BYTES = 1024


@dataclass(frozen=True)
class DueWork:
    """A piece of work to hand to `handlers[kind]` at `due_at`."""

    kind: str  # "notification" | "event" | "cancel" | "digest" | ...
    ref: str  # the id the handler acts on
    due_at: datetime  # aware, UTC
    tenant: str
    data: Mapping[str, Any] = field(default_factory=dict)  # small (< 1 KB)


def bucket_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def bucket_time(bucket: str) -> datetime:
    return datetime.strptime(bucket, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)


def next_bucket(bucket: str) -> str:
    return bucket_of(bucket_time(bucket) + timedelta(minutes=1))


def shard_of(kind: str, ref: str, shards: int) -> int:
    digest = hashlib.sha256(f"{kind}#{ref}".encode()).hexdigest()
    return int(digest[:8], 16) % shards


def work_pk(bucket: str, shard: int) -> str:
    return f"{PREFIX}{bucket}#{shard}"


def work_sk(work: DueWork) -> str:
    return f"{ITEM_PREFIX}{iso(work.due_at)}#{work.kind}#{work.ref}"


def work_from_item(plain: Mapping[str, Any]) -> DueWork:
    """A stored item (plain values) as the work it holds."""
    return DueWork(
        kind=str(plain["kind"]),
        ref=str(plain["ref"]),
        due_at=datetime.fromisoformat(str(plain["due_at"]).replace("Z", "+00:00")),
        tenant=str(plain.get("tenant") or ""),
        data=json.loads(str(plain.get("data_json") or "{}")),
    )


class DueStore:
    """Puts and deletes due work; built once per process (`shards` from the settings) and
    handed to whoever schedules."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        shards: int,
        *,
        clock: Callable[[], datetime] = utcnow,
        retention_days: int = 400,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self.shards = shards
        self._clock = clock
        self._retention = timedelta(days=retention_days)
        self._cursor_made = False

    def key_of(self, work: DueWork, now: datetime | None = None) -> dict[str, Any]:
        """The item's key: its due minute, or the current one when that is past."""
        at = max(work.due_at, now or self._clock())
        pk = work_pk(bucket_of(at), shard_of(work.kind, work.ref, self.shards))
        return {dynamo.PK: {"S": pk}, dynamo.SK: {"S": work_sk(work)}}

    def item_of(self, work: DueWork) -> dict[str, Any]:
        """The typed item, for a caller that puts it in its own transaction (a delayed
        event is recorded with its due item in one write)."""
        if work.due_at.tzinfo is None:
            raise ValueError("due_at must be timezone-aware")
        data_json = json.dumps(dict(work.data), separators=(",", ":"), sort_keys=True)
        if len(data_json.encode()) > DATA_MAX_BYTES:
            raise ValueError(f"due work data over {DATA_MAX_BYTES} bytes: {work.kind}")
        expires = int((work.due_at + self._retention).timestamp())
        return {
            **self.key_of(work),
            **dynamo.to_item(
                {
                    "kind": work.kind,
                    "ref": work.ref,
                    "due_at": iso(work.due_at),
                    "tenant": work.tenant,
                    "data_json": data_json,
                    dynamo.TTL_ATTRIBUTE: expires,
                }
            ),
        }

    def schedule(self, work: DueWork) -> None:
        """Put the work (idempotent: the same work is the same key, and a repeat rewrites
        the same item). Retried on throttling and errors; raises when AWS keeps failing."""
        self.ensure_cursor()
        item = self.item_of(work)
        aws_errors.retry(lambda: self._db.put_item(TableName=self._table, Item=item))

    def schedule_many(self, works: Sequence[DueWork]) -> None:
        """`schedule` for many at once: BatchWriteItem, 25 puts a call (a fan-out's due
        items in a few calls, not one each); unprocessed puts retried, then raised."""
        if not works:
            return
        self.ensure_cursor()
        dynamo.batch_write(self._db, self._table, [self.item_of(w) for w in works])

    def unschedule(self, work: DueWork) -> None:
        """Delete the work if it is still there: best effort (a handler re-checks the state
        it acts on anyway), so a failure is logged, not raised."""
        key = self.key_of(work)
        try:
            aws_errors.retry(lambda: self._db.delete_item(TableName=self._table, Key=key))
        except Exception as exc:  # best effort by contract: a handler re-checks anyway
            log.warning("could not unschedule %s %s: %s", work.kind, work.ref, exc)

    def ensure_cursor(self) -> None:
        """The due senders walk minutes from the cursor; the first schedule of a table
        makes it (once per process), at the current minute, so no put lands behind it."""
        if self._cursor_made:
            return
        try:
            aws_errors.retry(
                lambda: self._db.put_item(
                    TableName=self._table,
                    Item={**CURSOR_KEY, "bucket": {"S": bucket_of(self._clock())}},
                    ConditionExpression="attribute_not_exists(PK)",
                )
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise
        self._cursor_made = True

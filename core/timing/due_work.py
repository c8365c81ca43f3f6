"""Due work in DynamoDB: one small item per piece of waiting work, in minute buckets
spread over shards, so no key is hot however much comes due in one minute.

    PK WORK#<YYYY-MM-DDTHH:MM>#<shard>   SK W#<due>#<kind>#<ref>   one piece of due work
                                         SK #CLAIM                 who works this shard
    PK WORK#CURSOR                       SK CURSOR                 the oldest open minute

The prefix is not the alert rules' (`DUE#`, `alerting/due.py`): the two schedulers never
see each other's items. The shard is a hash of (kind, ref), so (kind, ref, due) always
makes the same key: scheduling twice is one item, and `unschedule` finds it without a read.
Work scheduled for a time already past goes in the current minute (the due sender has
closed older minutes). A put must also *land* before its minute closes, and a put is slow
now and then (throttled, retried, its answer lost after it applied): a put that returns
after its minute ended is made again from the clock then, so it lands in a minute still
open (`put_in_open_minutes`). The due sender closes a minute only `CURSOR_GRACE` after it
ended, and reads it consistently before it does, so a put that returned before the end
is always seen; one that returned later may be in both minutes, and handed out twice,
which handlers take (they are idempotent).

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
from functools import partial
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
# A minute is closed (the cursor moves past it) only this long after it ended: work put
# by a scheduler whose clock is up to this much behind still lands in an open minute.
CURSOR_GRACE = timedelta(seconds=5)
# How long a process trusts that the cursor exists before a schedule checks again (one
# conditional put a minute at most, and only while it schedules).
CURSOR_RECHECK = timedelta(minutes=1)
# Tries at putting work in a minute that is still open when the put returns; each try
# takes its minute from the clock, so a second is late only if a put is slow twice over.
LANDING_TRIES = 5

ItemAt = Callable[[datetime], dict[str, Any]]


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


def minute_end(item: Mapping[str, Any]) -> datetime:
    """When the minute a typed due item is keyed in ends (its PK names the minute)."""
    bucket = str(item[dynamo.PK]["S"])[len(PREFIX) :].rsplit("#", 1)[0]
    return bucket_time(bucket) + timedelta(minutes=1)


def put_in_open_minutes(
    dynamodb: Any, table: str, makers: Sequence[ItemAt], clock: Callable[[], datetime]
) -> None:
    """Put the items `makers` make from the clock's time, and make and put again each one
    whose minute ended before its put returned: such a put may have landed after the due
    sender read the minute for the last time. A put that returned in its minute landed
    in it, and the sender's closing read sees it. Raises when AWS keeps failing, or when a
    put is late `LANDING_TRIES` times."""
    pending = list(makers)
    for _ in range(LANDING_TRIES):
        now = clock()
        items = [make(now) for make in pending]
        if len(items) == 1:
            aws_errors.retry(partial(dynamodb.put_item, TableName=table, Item=items[0]))
        else:
            dynamo.batch_write(dynamodb, table, items)
        returned = clock()
        late = [m for m, item in zip(pending, items, strict=True) if minute_end(item) <= returned]
        if not late:
            return
        log.warning("%d due item(s) put after their minute ended: putting them again", len(late))
        pending = late
    raise ClientError(
        {"Error": {"Code": "RequestTimeout", "Message": "due work put late every try"}},
        "PutItem",
    )


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
        self._cursor_seen: datetime | None = None  # when ensure_cursor last found or made it

    def key_of(self, work: DueWork, now: datetime | None = None) -> dict[str, Any]:
        """The item's key: its due minute, or the current one when that is past."""
        at = max(work.due_at, now or self._clock())
        pk = work_pk(bucket_of(at), shard_of(work.kind, work.ref, self.shards))
        return {dynamo.PK: {"S": pk}, dynamo.SK: {"S": work_sk(work)}}

    def item_of(self, work: DueWork, now: datetime | None = None) -> dict[str, Any]:
        """The typed item, for a caller that puts it in its own transaction (a delayed
        event is recorded with its due item in one write: it calls `landed` after)."""
        if work.due_at.tzinfo is None:
            raise ValueError("due_at must be timezone-aware")
        data_json = json.dumps(dict(work.data), separators=(",", ":"), sort_keys=True)
        if len(data_json.encode()) > DATA_MAX_BYTES:
            raise ValueError(f"due work data over {DATA_MAX_BYTES} bytes: {work.kind}")
        expires = int((work.due_at + self._retention).timestamp())
        return {
            **self.key_of(work, now),
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
        self.schedule_many([work])

    def schedule_many(self, works: Sequence[DueWork]) -> None:
        """`schedule` for many at once: BatchWriteItem, 25 puts a call (a fan-out's due
        items in a few calls, not one each); unprocessed puts retried, then raised. Each
        lands in a minute still open when it does (`put_in_open_minutes`)."""
        if not works:
            return
        self.ensure_cursor()
        makers = [partial(self.item_of, work) for work in works]
        put_in_open_minutes(self._db, self._table, makers, self._clock)

    def landed(self, work: DueWork, item: Mapping[str, Any]) -> None:
        """After a caller's own write of `item` (`item_of`) returned: when its minute had
        ended by then, put the work again in an open one."""
        if minute_end(item) <= self._clock():
            self.schedule(work)

    def unschedule(self, work: DueWork) -> None:
        """Delete the work if it is still there: best effort (a handler re-checks the state
        it acts on anyway), so a failure is logged, not raised."""
        key = self.key_of(work)
        try:
            aws_errors.retry(lambda: self._db.delete_item(TableName=self._table, Key=key))
        except Exception as exc:  # best effort by contract: a handler re-checks anyway
            log.warning("could not unschedule %s %s: %s", work.kind, work.ref, exc)

    def ensure_cursor(self) -> None:
        """The due senders walk minutes from the cursor; a schedule makes it when it is
        missing, at the current minute, so no put lands behind it. Checked again at most
        every `CURSOR_RECHECK`, not only once per process: a cursor that went away (a table
        emptied under running processes) would otherwise leave every later put where no
        sender looks."""
        now = self._clock()
        if self._cursor_seen is not None and now - self._cursor_seen < CURSOR_RECHECK:
            return
        try:
            aws_errors.retry(
                lambda: self._db.put_item(
                    TableName=self._table,
                    Item={**CURSOR_KEY, "bucket": {"S": bucket_of(now)}},
                    ConditionExpression="attribute_not_exists(PK)",
                )
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise
        self._cursor_seen = now

"""Reading the listing indexes (`core.ledger.event_index`): newest first across shards and days,
within a read budget per request.

One listing partition is one day's shard (or one status's shard, or one user): a page is
the newest entries of every shard of the current day merged, then of the day before, and
so on back to the retention period. Each round asks every shard of one day for at most the
entries still missing from the page, so no round reads more than shards times the page
size; a request has a read budget (`LIST_QUERY_BUDGET`, `LIST_READ_PAGES`) and past it
answers a short page with a cursor ("more may follow"). The cursor names the day and the
last key returned, which is all the next page needs: every shard resumes below that key.

The shard counts are the layout's (`core.ledger.shard_layout`): a reader covers the largest
count any layout whose entries may still be read had, so a table whose layout changed is
read whole. A round's queries go out in parallel (at most `FAN_OUT_THREADS` at once), so a
round over a hundred shards takes a few round trips, not a hundred; the query budget is two
rounds over the widest group, so it grows with the shards and no further.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from core.aws import dynamo
from core.catalogue.models import EventStatus, utcnow
from core.ledger import event_index
from core.security.tenants import DEFAULT_TENANT

T = TypeVar("T")
R = TypeVar("R")

# What one listing request may read: at most this many queries (four rounds over every
# shard of a day, so a request walks back past at most four empty days; two rounds over
# every shard of a status), and no new round once it has read `LIST_READ_PAGES` pages'
# worth of entries. A filter that matches nothing reads that much, not the whole index.
LIST_QUERY_BUDGET = 2 * event_index.STATUS_SHARDS
LIST_READ_PAGES = 3
# Queries of one round in flight at once.
FAN_OUT_THREADS = 16
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ALL_GROUP = "all"


@dataclass(frozen=True)
class Source:
    """An index and the partition groups to read in order, newest group first."""

    index: str
    groups: list[tuple[str, list[str]]]
    # Only entries of this status (the status index's `OPEN` key holds two); a listing
    # filters the events it loads anyway, a count filters in the query.
    status: str | None = None

    @property
    def attr(self) -> str:
        return event_index.INDEXES[self.index][0]


def day_source(
    index: str, prefix: str, retention_days: int, shards: int = event_index.LISTING_SHARDS
) -> Source:
    today = utcnow()
    days = [(today - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(retention_days + 1)]
    return Source(index, [(day, event_index.day_partitions(prefix, day, shards)) for day in days])


def status_source(status: EventStatus, shards: int = event_index.STATUS_SHARDS) -> Source:
    partitions = [event_index.status_partition(status, s) for s in range(shards)]
    return Source(event_index.BY_STATUS, [(ALL_GROUP, partitions)], status.value)


def fan_out(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`work` of every item, in order, up to `FAN_OUT_THREADS` at once (boto3 clients are
    thread-safe); one item is done in the caller's thread."""
    if len(items) <= 1:
        return [work(i) for i in items]
    with ThreadPoolExecutor(min(FAN_OUT_THREADS, len(items))) as pool:
        return list(pool.map(work, items))


def query_budget(source: Source) -> int:
    """Two rounds over the widest group of `source` (at least `LIST_QUERY_BUDGET`)."""
    widest = max((len(p) for _, p in source.groups), default=0)
    return max(LIST_QUERY_BUDGET, 2 * widest)


def user_source(user_id: str) -> Source:
    return Source(event_index.BY_USER, [(ALL_GROUP, [user_id])])


def encode_cursor(group: str, key: str | None) -> str:
    raw = json.dumps({"g": group, "k": key or ""}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str | None]:
    """Opaque to clients; checked here so a forged cursor is a 4xx, not a DynamoDB error."""
    try:
        values = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise dynamo.BadCursor("cursor is not one this API issued") from exc
    if (
        not isinstance(values, dict)
        or set(values) != {"g", "k"}
        or not all(isinstance(v, str) and len(v) <= 300 for v in values.values())
        or not (values["g"] == ALL_GROUP or _DAY.match(values["g"]))
    ):
        raise dynamo.BadCursor("cursor is not one this API issued")
    return values["g"], values["k"] or None


# Loads a run of index entries (newest first) and returns the listed items they stand for
# that pass the request's filters, in the same order.
Loader = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class ShardedReader:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def _query(self, source: Source, partition: str, *, below: str | None, limit: int) -> dict:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": source.index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": source.attr},
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if below is not None:
            kwargs["KeyConditionExpression"] += " AND #k < :k"
            kwargs["ExpressionAttributeNames"]["#k"] = event_index.EVENT_SORT
            kwargs["ExpressionAttributeValues"][":k"] = {"S": below}
        return dict(self._db.query(**kwargs))

    def newest(
        self,
        source: Source,
        limit: int,
        cursor: str | None,
        load: Loader,
        budget: int | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of up to `limit` listed items, newest first, and the cursor of the rest
        (None when nothing older exists)."""
        budget = query_budget(source) if budget is None else budget
        labels = [label for label, _ in source.groups]
        group, below = 0, None
        if cursor:
            label, below = decode_cursor(cursor)
            if label not in labels:
                return [], None  # a day past the retention period: nothing is left there
            group = labels.index(label)
        out: list[dict[str, Any]] = []
        queries = read = 0
        while group < len(source.groups) and len(out) < limit:
            partitions = source.groups[group][1]
            if queries and (queries + len(partitions) > budget or read >= LIST_READ_PAGES * limit):
                break
            need = limit - len(out)
            entries: list[dict[str, Any]] = []
            more = False
            answers = fan_out(partial(self._query, source, below=below, limit=need), partitions)
            queries += len(partitions)
            for resp in answers:
                entries.extend(resp.get("Items", []))
                more = more or "LastEvaluatedKey" in resp
            read += len(entries)
            entries.sort(key=lambda e: e[event_index.EVENT_SORT]["S"], reverse=True)
            taken = entries[:need]
            more = more or len(entries) > need
            if taken:
                below = taken[-1][event_index.EVENT_SORT]["S"]
                out.extend(load(taken))
            if not more:
                group, below = group + 1, None
        if group >= len(source.groups):
            return out, None
        return out, encode_cursor(source.groups[group][0], below)

    def oldest(
        self,
        kinds: Mapping[EventStatus, str],
        cutoff: str,
        watermark: dict[str, Any] | None,
        limit: int,
        shards: int = event_index.STATUS_SHARDS,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Up to `limit` status index entries of the statuses in `kinds` created and last
        touched (`kinds[status]`: the attribute that says when) before `cutoff`, shard after
        shard (oldest first within each) of `shards` (the most any layout still read has),
        from `watermark` on (a shard and a key); and the next watermark, None once every
        shard has been read to its end. The statuses must share their index key (`OPEN`
        holds START and PROCESSING): one query per shard reads them all. `Limit` applies
        before the filter, so one call reads at most `limit` entries per shard it reaches."""
        first, *_ = kinds
        partition = event_index.status_partition(first, 0).rsplit("#", 1)[0]
        if any(event_index.status_partition(s, 0) != f"{partition}#0" for s in kinds):
            raise ValueError("oldest: the statuses must share one index key")
        names = {"#p": event_index.STATUS_ATTR, "#k": event_index.EVENT_SORT, "#st": "status"}
        values: dict[str, Any] = {":cutoff": {"S": cutoff}}
        terms = []
        for i, (status, touched) in enumerate(sorted(kinds.items())):
            names[f"#t{i}"] = touched
            values[f":s{i}"] = {"S": status.value}
            terms.append(f"(#st = :s{i} AND #t{i} < :cutoff)")
        shard = int((watermark or {}).get("shard", 0))
        start = (watermark or {}).get("key")
        found: list[dict[str, Any]] = []
        while shard < shards and len(found) < limit:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": event_index.BY_STATUS,
                "KeyConditionExpression": "#p = :p AND #k < :cutoff",
                "FilterExpression": " OR ".join(terms),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {**values, ":p": {"S": f"{partition}#{shard}"}},
                "Limit": limit - len(found),
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            resp = self._db.query(**kwargs)
            found.extend(resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if start is None:
                shard += 1
            elif resp.get("Count", 0) == 0:
                break  # a page of entries the filter dropped: the next call reads on
        if shard >= shards:
            return found, None
        return found, {"shard": shard, "key": start}

    def count(
        self,
        source: Source,
        since: str,
        tenant: str | None,
        max_pages: int,
    ) -> tuple[int, bool]:
        """Entries of `source` created at or after `since` (`Select=COUNT`, so the keys are
        counted where they lie, not sent back); True when `max_pages` per partition did not
        reach the end."""
        total, truncated = 0, False
        for _, partitions in source.groups:
            for partition in partitions:
                kwargs: dict[str, Any] = {
                    "TableName": self._table,
                    "IndexName": source.index,
                    "KeyConditionExpression": "#p = :p AND #k >= :since",
                    "ExpressionAttributeNames": {
                        "#p": source.attr,
                        "#k": event_index.EVENT_SORT,
                    },
                    "ExpressionAttributeValues": {
                        ":p": {"S": partition},
                        ":since": {"S": since},
                    },
                    "Select": "COUNT",
                }
                filters = []
                if tenant is not None:
                    kwargs["ExpressionAttributeNames"]["#t"] = "tenant"
                    kwargs["ExpressionAttributeValues"][":tenant"] = {"S": tenant}
                    filters.append(
                        "(#t = :tenant OR attribute_not_exists(#t))"
                        if tenant == DEFAULT_TENANT
                        else "#t = :tenant"
                    )
                if source.status is not None:
                    kwargs["ExpressionAttributeNames"]["#st"] = "status"
                    kwargs["ExpressionAttributeValues"][":st"] = {"S": source.status}
                    filters.append("#st = :st")
                if filters:
                    kwargs["FilterExpression"] = " AND ".join(filters)
                for _ in range(max_pages):
                    resp = self._db.query(**kwargs)
                    total += int(resp.get("Count", 0))
                    last = resp.get("LastEvaluatedKey")
                    if not last:
                        break
                    kwargs["ExclusiveStartKey"] = last
                else:
                    truncated = True
        return total, truncated


def days_since(since: str) -> list[str]:
    """The UTC days from `since`'s to today's, newest first."""
    first = since[:10]
    days, day = [], utcnow()
    while True:
        label = day.strftime("%Y-%m-%d")
        days.append(label)
        if label <= first:
            return days
        day -= timedelta(days=1)


def recent_day_source(since: str, shards: int = event_index.LISTING_SHARDS) -> Source:
    return Source(
        event_index.BY_DAY,
        [(d, event_index.day_partitions("", d, shards)) for d in days_since(since)],
    )

"""Key layout of Herald's single DynamoDB table and (de)serialisation of its items.

| item         | PK                 | SK                          |
|--------------|--------------------|-----------------------------|
| event        | EVENT#<event_id>   | EVENT                       |
| notification | EVENT#<event_id>   | NOTIF#<channel>#<recipient> |
| user         | USER#<user_id>     | PROFILE                     |
| subscription | TOPIC#<topic>      | USER#<user_id>              |

Events are listed through sharded indexes of their own (`core.ledger.event_index`); the
`created_key` indexes below hold the low-volume entities only.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from core.aws import errors as aws_errors
from core.aws.chunking import sized_chunks

T = TypeVar("T")

PK = "PK"
SK = "SK"
EVENT_SK = "EVENT"
# The event's tally and fan-out progress: a small item of its own, beside the event, so
# the counter updates of a fan-out never rewrite the payload or the listing indexes. Its
# sort key sorts right after the event's and before the records', so one Query reads the
# event, its tally and the first records.
TALLY_SK = "EVENT#TALLY"
COUNT_FIELDS = ("total", "sent", "failed", "skipped")
ENTITY_EVENT = "EVENT"

# The low-volume entities (API keys, alerts, rules, silences) list through these two,
# sorted on `created_key`; events have their own sharded indexes (core.ledger.event_index).
GSI_BY_ENTITY = "by_entity"
GSI_BY_STATUS = "by_status"
GSI_PARTITIONS: dict[str, str] = {
    GSI_BY_ENTITY: "entity",
    GSI_BY_STATUS: "status",
}
GSI_SORT = "created_key"
# Subscribers of a topic are read by PK; the reverse (a user's topics) by this GSI.
GSI_BY_SUBSCRIBER = "by_subscriber"
TTL_ATTRIBUTE = "expires_at"

BATCH_GET_MAX = 100  # keys per BatchGetItem
# Rounds of a BatchGetItem's unprocessed keys (throttling) before the read is given up.
BATCH_GET_ROUNDS = 8
BATCH_WRITE_MAX = 25  # writes per BatchWriteItem
#: BatchWriteItem rounds for unprocessed items before they are raised as a throttle.
BATCH_WRITE_ROUNDS = 5
TRANSACT_MAX = 100  # items per TransactWriteItems
# Rounds of a transaction that AWS cancelled for reasons other than a refusal (a conflict
# with another writer, throttling) or answered with an error, tried again with backoff
# before the error is raised: every transaction of Herald's has this one budget.
TRANSACT_ROUNDS = 8
TRANSACT_MAX_BYTES = 4 * 1024 * 1024  # all items of one TransactWriteItems together

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def event_pk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def record_pk(event_id: str, recipient_id: str, shards: int = 1) -> str:
    """A notification record's partition: the event's own, or for a large fan-out one of
    `shards` partitions by recipient (`EVENT#<id>#R<nn>`), so that its creation, claims and
    outcomes do not all write one partition key."""
    if shards <= 1:
        return event_pk(event_id)
    return f"{event_pk(event_id)}#R{zlib.crc32(recipient_id.encode()) % shards:02d}"


def record_partitions(event_id: str, shards: int = 1) -> list[str]:
    """Every partition that holds the event's records, in reading order."""
    if shards <= 1:
        return [event_pk(event_id)]
    return [f"{event_pk(event_id)}#R{k:02d}" for k in range(shards)]


def tally_key(event_id: str, shard: int = 0) -> dict[str, Any]:
    """Shard 0 is the tally proper, in the event's partition; a large fan-out's outcomes
    also count on shards 1..n, each in a partition of its own (`EVENT#<id>#T<n>`): shards
    that shared the event's partition key would share its write limit too."""
    pk = event_pk(event_id) if shard == 0 else f"{event_pk(event_id)}#T{shard}"
    return {PK: {"S": pk}, SK: {"S": TALLY_SK}}


def merge_tallies(tallies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One event's tally shards (plain values) as one tally: the counts summed, the rest
    (fan-out progress, `tally_shards`) from shard 0, the latest `updated_at` of any."""
    if not tallies:
        return {}
    first = next((t for t in tallies if "tally_shard" not in t), tallies[0])
    merged = dict(first)
    for field in (*COUNT_FIELDS, "scheduled"):  # creation may count on any shard
        merged[field] = sum(int(t.get(field, 0)) for t in tallies)
    times = [str(t["updated_at"]) for t in tallies if t.get("updated_at")]
    if times:
        merged["updated_at"] = max(times)
    if any(t.get("fanout_complete") for t in tallies):
        merged["fanout_complete"] = True
    return merged


def event_key(event_id: str) -> dict[str, Any]:
    return {PK: {"S": event_pk(event_id)}, SK: {"S": EVENT_SK}}


def notification_sk(channel: str, recipient_id: str) -> str:
    return f"NOTIF#{channel}#{recipient_id}"


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def topic_pk(topic: str) -> str:
    return f"TOPIC#{topic}"


def item_bytes(item: dict[str, Any]) -> int:
    """An upper bound of DynamoDB's size of a typed item: names plus the text of values
    (numbers count as text; nested values by their JSON)."""
    size = 0
    for name, typed in item.items():
        size += len(name.encode())
        ((_, value),) = typed.items()
        size += (
            len(value.encode())
            if isinstance(value, str)
            else len(json.dumps(value, default=str)) + 16
        )
    return size


def transact_chunks(items: Sequence[T], size_of: Callable[[T], int]) -> list[list[T]]:
    """Runs of items each within one TransactWriteItems' item and size limits."""
    return sized_chunks(items, size_of, TRANSACT_MAX, TRANSACT_MAX_BYTES)


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain Python values to DynamoDB's typed form; None values are left out."""
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def to_value(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(value))


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed form to plain values, with whole-number Decimals as ints."""
    out: dict[str, Any] = {}
    for key, typed in item.items():
        out[key] = _plain(_deserializer.deserialize(typed))
    return out


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


class BadCursor(ValueError):
    """A pagination cursor that this service did not issue."""


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(from_item(last_key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected_keys: set[str]) -> dict[str, Any] | None:
    """Opaque to clients; validated here so a forged cursor is a 4xx, not a DynamoDB error."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this API issued") from exc
    if (
        not isinstance(values, dict)
        or set(values) != expected_keys
        or not all(isinstance(v, str) for v in values.values())
    ):
        raise BadCursor("cursor is not one this API issued")
    return to_item(values)


def batch_get(
    db: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    *,
    consistent: bool,
    projection: str | None = None,
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The items (typed) of `keys` that exist: BatchGetItem a hundred keys a call, asking
    again for the keys DynamoDB leaves unprocessed after a backoff, as AWS asks; raises a
    ThrottlingException when they stay unprocessed, rather than answer without them."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX):
        spec: dict[str, Any] = {
            "Keys": list(keys[start : start + BATCH_GET_MAX]),
            "ConsistentRead": consistent,
        }
        if projection:
            spec["ProjectionExpression"] = projection
        if names:
            spec["ExpressionAttributeNames"] = names
        request: dict[str, Any] = {table: spec}
        rounds = 0
        while request:
            resp = db.batch_get_item(RequestItems=request)
            out += resp.get("Responses", {}).get(table, [])
            request = resp.get("UnprocessedKeys") or {}
            if request:
                rounds += 1
                if rounds >= BATCH_GET_ROUNDS:
                    raise ClientError(
                        {"Error": {"Code": "ThrottlingException", "Message": "unprocessed"}},
                        "BatchGetItem",
                    )
                time.sleep(aws_errors.jittered(rounds - 1, 0.05, 2.0))
    return out


def batch_write(
    db: Any,
    table: str,
    puts: Sequence[dict[str, Any]] = (),
    deletes: Sequence[dict[str, Any]] = (),
) -> None:
    """Put `puts` (typed items) and delete `deletes` (plain keys), 25 writes a
    BatchWriteItem; what DynamoDB leaves unprocessed is sent again after a backoff, as AWS
    asks, and raised when it stays so (a caller's lease lapses and the work is redone)."""
    ops: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in puts]
    ops += [
        {"DeleteRequest": {"Key": {PK: {"S": str(k[PK])}, SK: {"S": str(k[SK])}}}} for k in deletes
    ]
    for start in range(0, len(ops), BATCH_WRITE_MAX):
        request: dict[str, Any] = {table: ops[start : start + BATCH_WRITE_MAX]}
        for attempt in range(BATCH_WRITE_ROUNDS):
            if attempt:
                time.sleep(aws_errors.jittered(attempt, 0.05, 1.0))
            resp = aws_errors.retry(
                lambda request=request: db.batch_write_item(RequestItems=request)  # type: ignore[misc]
            )
            request = resp.get("UnprocessedItems") or {}
            if not request:
                break
        if request:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "unprocessed"}},
                "BatchWriteItem",
            )


def query_page(
    db: Any,
    query: dict[str, Any],
    limit: int,
    start: dict[str, Any] | None,
    cursor_keys: Sequence[str],
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `limit` items (typed) of a Query from `start`, and the cursor of the
    next page (its `cursor_keys` of the page's last item). It reads one item past the page
    to know whether another exists, so the last page has no cursor: a client never asks
    for an empty page, and a router never sends a continuation for one."""
    kwargs = dict(query)
    items: list[dict[str, Any]] = []
    while len(items) <= limit:
        if start:
            kwargs["ExclusiveStartKey"] = start
        kwargs["Limit"] = limit + 1 - len(items)
        resp = db.query(**kwargs)
        items.extend(resp.get("Items", []))
        start = resp.get("LastEvaluatedKey")
        if not start:
            break
    page = items[:limit]
    if len(items) <= limit:
        return page, None
    return page, encode_cursor({k: page[-1][k] for k in cursor_keys})

"""Where events are listed: the keys that put an event in its listing indexes, and the
indexes themselves.

DynamoDB throttles one partition key at about 1,000 write units per second, in an index as
in the table, and a throttled index throttles the writes to the table. One partition value
for every event (`EVENT`, or one per status) caps the whole service at that rate, whatever
the table's capacity. So every listing key is spread:

| index              | partition key               | sort key    | projection                   |
|--------------------|-----------------------------|-------------|------------------------------|
| `events_by_day`    | `<yyyy-mm-dd>#<shard>`      | `event_key` | keys, `tenant`               |
| `events_by_status` | `<OPEN or FAILED>#<shard>`  | `event_key` | keys, status, tenant, times  |
| `events_by_type`   | `<type>#<yyyy-mm-dd>#<shard>` | `event_key` | keys                       |
| `events_by_tenant` | `<tenant>#<yyyy-mm-dd>#<shard>` | `event_key` | keys                     |
| `events_by_user`   | `<user_id>`                 | `event_key` | keys                         |

`event_key` is `<created_at>#<event_id>` (newest first when read backwards); the shard is
a hash of the event id, so an event's keys never change but its status's. A user's events
are not sharded: one user's rate is a product's, not the service's.

Only the status key changes after the accept, and only the unsettled statuses and `FAILED`
are indexed: the reconciler walks the first, operators ask for the second, and the common
end, `SUCCESS`, leaves the index (one delete) instead of entering it. `START` and
`PROCESSING` share one key, `OPEN`, with the status projected: routing an event then
rewrites its entry in place (one write unit) instead of moving it to another key (a delete
and a put). The indexes project keys and immutable attributes (plus the status and the two
times the reconciler filters on), so the payload never rewrites an index entry; listings
read the page's events from the table by key.
"""

from __future__ import annotations

import zlib
from typing import Any

from core.catalogue.models import EventStatus
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout
from core.security.tenants import DEFAULT_TENANT

# The counts of the default layout (1,000 notifications a second; `core.ledger.shard_layout`
# gives them for any rate). 8 listing shards: at 1,000 events per second (1,000
# single-channel notifications) a day's shard takes 125 write units per second, an eighth
# of DynamoDB's per-partition limit.
LISTING_SHARDS = DEFAULT_LAYOUT.listing
# 16 for the status index: an event is put, rewritten and deleted there, so at 1,000 events
# per second a status shard takes 3,000 / 16 = 188 write units per second, with room for
# the uneven spread of a hash over few keys.
STATUS_SHARDS = DEFAULT_LAYOUT.status

EVENT_SORT = "event_key"
BY_DAY = "events_by_day"
BY_STATUS = "events_by_status"
BY_TYPE = "events_by_type"
BY_TENANT = "events_by_tenant"
BY_USER = "events_by_user"

# index -> (partition attribute, attributes projected besides the keys)
INDEXES: dict[str, tuple[str, tuple[str, ...]]] = {
    BY_DAY: ("day_shard", ("tenant",)),
    BY_STATUS: ("status_shard", ("status", "tenant", "updated_at", "last_published_at")),
    BY_TYPE: ("type_shard", ()),
    BY_TENANT: ("tenant_shard", ()),
    BY_USER: ("user_key", ()),
}
# SCHEDULED (waiting: GET /events?status=SCHEDULED) and CANCELLED have keys of their own,
# apart from `OPEN`, so the reconciler never walks an event that is only waiting.
INDEXED_STATUSES = frozenset(
    {
        EventStatus.START,
        EventStatus.PROCESSING,
        EventStatus.FAILED,
        EventStatus.SCHEDULED,
        EventStatus.CANCELLED,
    }
)
STATUS_ATTR = INDEXES[BY_STATUS][0]


def shard_of(event_id: str, shards: int = LISTING_SHARDS) -> int:
    return zlib.crc32(event_id.encode()) % shards


def status_shard_of(event_id: str, shards: int = STATUS_SHARDS) -> int:
    return zlib.crc32(event_id.encode()) % shards


def day_of(created_at: str) -> str:
    return created_at[:10]


def event_sort_key(created_at: str, event_id: str) -> str:
    return f"{created_at}#{event_id}"


# The statuses that share the status index's `OPEN` key (the projected status tells them
# apart): an event's routing does not move its entry.
OPEN_STATUSES = frozenset({EventStatus.START, EventStatus.PROCESSING})
OPEN = "OPEN"


def status_partition(status: EventStatus | str, shard: int) -> str:
    value = EventStatus(status)
    return f"{OPEN if value in OPEN_STATUSES else value.value}#{shard}"


def day_partitions(prefix: str, day: str, shards: int = LISTING_SHARDS) -> list[str]:
    """Every shard of one day's bucket under `prefix` ("" for all events); `shards`: the
    most any layout whose entries may be read has (`ShardLayout.listing_read`)."""
    return [f"{prefix}{day}#{s}" for s in range(shards)]


def listing_attributes(
    event_id: str,
    created_at: str,
    status: EventStatus,
    type_: str,
    tenant: str | None,
    user_id: str | None,
    layout: ShardLayout = DEFAULT_LAYOUT,
) -> dict[str, Any]:
    """The attributes that place a new event in its indexes (None ones are left out)."""
    shard, day = shard_of(event_id, layout.listing), day_of(created_at)
    return {
        EVENT_SORT: event_sort_key(created_at, event_id),
        "day_shard": f"{day}#{shard}",
        STATUS_ATTR: (
            status_partition(status, status_shard_of(event_id, layout.status))
            if status in INDEXED_STATUSES
            else None
        ),
        "type_shard": f"{type_}#{day}#{shard}",
        "tenant_shard": f"{tenant or DEFAULT_TENANT}#{day}#{shard}",
        "user_key": user_id,
    }


def status_update(
    event_id: str, status: EventStatus, layout: ShardLayout = DEFAULT_LAYOUT
) -> tuple[str | None, str | None, dict]:
    """What an update that moves the event to `status` adds: a SET clause, or a REMOVE
    clause (the event leaves the status index), and its values. The shard is the current
    layout's: an event written under an older one moves to its new shard here, which a
    reader covering both layouts finds either way."""
    if status in INDEXED_STATUSES:
        value = status_partition(status, status_shard_of(event_id, layout.status))
        return f"{STATUS_ATTR} = :status_key", None, {":status_key": {"S": value}}
    return None, STATUS_ATTR, {}


def update_expression(
    sets: list[str], event_id: str, status: EventStatus, layout: ShardLayout = DEFAULT_LAYOUT
) -> tuple[str, dict]:
    """`SET ...` for an update that sets the event's status to `status`, with the status
    index key moved along; and the values that adds."""
    set_clause, remove, values = status_update(event_id, status, layout)
    clauses = [*sets, set_clause] if set_clause else list(sets)
    expression = "SET " + ", ".join(clauses)
    if remove:
        expression += f" REMOVE {remove}"
    return expression, values


def index_specs() -> list[dict[str, Any]]:
    """The listing indexes as CreateTable / UpdateTable take them."""
    specs = []
    for name, (attr, projected) in INDEXES.items():
        projection: dict[str, Any] = (
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(projected)}
            if projected
            else {"ProjectionType": "KEYS_ONLY"}
        )
        specs.append(
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": attr, "KeyType": "HASH"},
                    {"AttributeName": EVENT_SORT, "KeyType": "RANGE"},
                ],
                "Projection": projection,
            }
        )
    return specs


def key_attributes() -> set[str]:
    return {EVENT_SORT} | {attr for attr, _ in INDEXES.values()}

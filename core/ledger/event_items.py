"""An event's items as stored: the event item (the record, its listing keys and a
self-counted event's list) and the tally item beside it, and the record read back from
them. Shared by the event stores (writes, reads, the reconciler's queries)."""

from __future__ import annotations

import json
import time
from typing import Any

from core.aws import dynamo
from core.catalogue.models import EventRecord
from core.ledger import event_index, record_counts
from core.ledger.record_counts import COUNTED_RECORDS, MASKED_RECIPIENTS
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout


class EventExists(Exception):
    """The event id is taken; `existing` is the stored record."""

    def __init__(self, existing: EventRecord) -> None:
        super().__init__(existing.event_id)
        self.existing = existing


_LISTING_ATTRIBUTES = event_index.key_attributes()
# What the event item holds besides the record: its listing keys, and a self-counted
# event's list (`core.ledger.record_counts`), which readers merge into its tally.
_NOT_THE_RECORD = _LISTING_ATTRIBUTES | {
    COUNTED_RECORDS,
    MASKED_RECIPIENTS,
    record_counts.ROUTED_AT,
}


def event_to_item(
    record: EventRecord, retention_days: int, layout: ShardLayout = DEFAULT_LAYOUT
) -> dict[str, Any]:
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
            layout,
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


def tally_among(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The tally (plain) among an event's typed items, with what its event item holds of
    it (`core.ledger.record_counts.with_event`), or {} when it has none yet."""
    wanted = (dynamo.EVENT_SK, dynamo.TALLY_SK)
    found = {i[dynamo.SK]["S"]: i for i in items if i[dynamo.SK]["S"] in wanted}
    tally = dynamo.from_item(found[dynamo.TALLY_SK]) if dynamo.TALLY_SK in found else {}
    event = dynamo.from_item(found[dynamo.EVENT_SK]) if dynamo.EVENT_SK in found else {}
    return record_counts.with_event(tally, event)


def event_items_by_pk(
    db: Any, table: str, pks: list[str], *, consistent: bool
) -> dict[str, dict[str, Any]]:
    """The event items (typed) of `pks` that exist, by PK, in batched reads."""
    keys = [{dynamo.PK: {"S": pk}, dynamo.SK: {"S": dynamo.EVENT_SK}} for pk in pks]
    found = dynamo.batch_get(db, table, keys, consistent=consistent)
    return {i[dynamo.PK]["S"]: i for i in found}

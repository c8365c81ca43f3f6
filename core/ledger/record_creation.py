"""Records created and counted together: a record exists exactly when it is counted.

`create_counted` (one event, chunk by chunk) and `create_routed` (a receive's single-user
events at once) put the records with conditions and count them on the event's tally in
the same transaction, so a router that crashes anywhere and runs a message again can
neither miss a count nor count twice. Counting outcomes is `core.ledger.outcome_records`,
settling `core.ledger.settlement`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.dynamo import TRANSACT_MAX, TRANSACT_ROUNDS
from core.catalogue.models import EventStatus, NotificationStatus, iso, utcnow
from core.ledger import event_index, record_counts
from core.ledger.event_tally import SCHEDULED_COUNT, EventTally, tally_shard
from core.ledger.notification_records import (
    NewNotification,
    RecordWrites,
    claim_creates,
    closed_or_missing,
    refused_items,
)
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout
from core.platform.masking import mask_address

CHUNK_MAX = TRANSACT_MAX - 2  # records per counted chunk: the tally and the event check take two


@dataclass(frozen=True)
class CountedCreation:
    """What `create_counted` did: records created (and counted) now, and records an
    earlier try had already created and counted, with their current status."""

    created: list[NewNotification]
    existing: dict[str, str]


class RecordCreation:
    """The router's writes: records created with their counts, and events moved to
    PROCESSING with them."""

    def __init__(
        self,
        table: str,
        records: RecordWrites,
        tally: EventTally,
        layout: ShardLayout = DEFAULT_LAYOUT,
    ) -> None:
        self._table = table
        self._records = records
        self._tally = tally
        self._layout = layout

    def create_counted(
        self, notifications: Sequence[NewNotification], *, redelivered: bool = False
    ) -> CountedCreation:
        """Create records of one event and count them on the event in the same transaction.

        Each chunk of up to CHUNK_MAX records is one TransactWriteItems: a conditional put
        per record plus the event's `ADD counts.total/skipped/failed`. Either all of it
        happens or none, so a record exists if and only if it was counted, and a router that
        crashes anywhere and runs the message again can neither miss a count nor count twice.
        When the transaction is cancelled because some records exist (a redelivery, or a
        concurrent router), those are reported in `existing` and the rest are retried without
        them; every round drops at least one record, so the loop ends.

        `redelivered` (the message was received before) reads the records first and only
        writes the missing ones: after a crash most exist, and a cancelled transaction
        costs as much write capacity as a committed one.
        """
        created: list[NewNotification] = []
        existing: dict[str, str] = {}
        listed = _counted_records(notifications)
        event_id = notifications[0].message.event_id if notifications else ""
        if redelivered and notifications:
            existing = self._records.statuses([n.message for n in notifications])
            notifications = [n for n in notifications if n.message.notification_id not in existing]
        if listed:  # its queued records are created by their claims: listed, not put
            created = [n for n in notifications if _claim_creates(n)]
            notifications = [n for n in notifications if not _claim_creates(n)]
            # Nothing to put: the list alone (with the event check), unless a record exists,
            # which only the routing that wrote the list (or a claim after it) could make.
            if not notifications and not existing:
                self._create_counted_chunk([], listed, event_id=event_id)
        for start in range(0, len(notifications), CHUNK_MAX):
            pending = list(notifications[start : start + CHUNK_MAX])
            while pending:
                # A page's first chunk counts on tally shard 0 (which declares the shard
                # counts readers look for), the rest on outcome shards: the event's own key
                # is written once a page, not once a chunk.
                clashes = self._create_counted_chunk(pending, listed, first=start == 0)
                if clashes is None:
                    created.extend(pending)
                    break
                for index, status in clashes.items():
                    existing[pending[index].message.notification_id] = status
                pending = [n for i, n in enumerate(pending) if i not in clashes]
        return CountedCreation(created, existing)

    def _create_counted_chunk(
        self,
        chunk: list[NewNotification],
        listed: Mapping[str, str] | None = None,
        event_id: str = "",
        first: bool = True,
    ) -> dict[int, str] | None:
        """None when the chunk was created and counted; else {index: status} of the records
        that already exist. Other cancellations (conflicts, throttling) raise. Not `first`:
        counted on the tally shard its first record's outcome would take."""
        event_id = event_id or chunk[0].message.event_id
        if any(n.message.event_id != event_id for n in chunk):
            raise ValueError("a counted chunk holds notifications of one event")
        items = [self._records.new_record(n, old_on_failure=True) for n in chunk]
        if listed:  # the list on the event item, which must exist (`core.ledger.record_counts`)
            items.append({"Update": self._listed_update(event_id, listed)})
        else:
            shard = 0 if first else tally_shard(chunk[0].message)
            items.append({"Update": self._tally_update(event_id, chunk, shard=shard)})
            items.append({"ConditionCheck": {"TableName": self._table, **_open_event(event_id)}})
        try:
            self._records.write(items)  # the list alone is one write, not a transaction's two
        except ClientError as exc:
            refused = refused_items(exc, list(range(len(items))))
            if len(items) - 1 in refused:  # the event's own item: gone, or settled
                raise closed_or_missing(event_id, refused[len(items) - 1][1]) from exc
            clashes = {i: str(stored.get("status", "")) for i, (_, stored) in refused.items()}
            if not clashes:
                raise
            unknown = [chunk[i].message for i, status in clashes.items() if not status]
            if unknown:
                stored = self._records.statuses(unknown)
                for i in clashes:
                    if not clashes[i]:
                        clashes[i] = stored.get(chunk[i].message.notification_id, "")
            return clashes
        return None

    def create_routed(self, events: Sequence[Sequence[NewNotification]]) -> set[int]:
        """Route several single-page events at once: create every record, count them on
        their event, and move each event to PROCESSING with its fan-out complete, all in
        one TransactWriteItems (at most TRANSACT_MAX items, `routed_items` per event).

        Returns the indexes of the events that were not routed here because one of their
        writes was refused (a record exists already, the event is missing or no longer
        START/PROCESSING); the caller routes those one by one (`create_counted`), which
        sorts out each case. The others are routed together again at once: one refused
        event does not send a whole receive down the slower path. A cancellation with no
        refusal in it (conflicts, throttling) changed nothing and is tried again, with
        backoff, up to TRANSACT_ROUNDS times; then it raises. A lone event whose records
        its claims create is one item: a plain UpdateItem, at half a transaction's units
        (a receive of one event is the common case at a low rate). Fan-out complete is safe to
        set here because the records are created before any message is enqueued: no
        worker can count a notification before the event knows its total.
        """
        refused: set[int] = set()
        pending = list(range(len(events)))
        rounds = 0
        while pending:
            items, owners = self._routed_items([events[i] for i in pending])
            try:
                self._records.write(items)  # one event's list and status alone: a plain write
                return refused
            except ClientError as exc:
                clashes = {pending[owners[j]] for j in refused_items(exc, list(range(len(items))))}
                if clashes:
                    refused |= clashes
                    pending = [i for i in pending if i not in clashes]
                    continue
                rounds += 1
                aws_errors.back_off_or_raise(exc, rounds, TRANSACT_ROUNDS, cap=1.0)
        return refused

    def _routed_items(
        self, events: Sequence[Sequence[NewNotification]]
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """`create_routed`'s transaction items, and for each the index of its event."""
        items: list[dict[str, Any]] = []
        owners: list[int] = []
        for index, planned in enumerate(events):
            if not planned:
                raise ValueError("an event routed here has at least one notification")
            event_id = planned[0].message.event_id
            if any(n.message.event_id != event_id for n in planned):
                raise ValueError("each group holds the notifications of one event")
            listed = _counted_records(planned)
            puts = [
                self._records.new_record(n) for n in planned if not (listed and _claim_creates(n))
            ]
            items += puts
            if not listed:
                items.append({"Update": self._tally_update(event_id, planned, complete=True)})
            items.append({"Update": self._processing_update(event_id, listed)})
            owners += [index] * (len(items) - len(owners))
        if len(items) > TRANSACT_MAX:
            raise ValueError(f"{len(items)} items do not fit one transaction")
        return items, owners

    def _tally_update(
        self,
        event_id: str,
        chunk: Sequence[NewNotification],
        *,
        complete: bool = False,
        shard: int = 0,
    ) -> dict[str, Any]:
        """The tally's update for `chunk` (total, skipped and failed at creation); with
        `complete`, the fan-out is complete too."""
        adds = {
            "total": len(chunk),
            "skipped": sum(n.status is NotificationStatus.SKIPPED for n in chunk),
            "failed": sum(n.status is NotificationStatus.FAILED for n in chunk),
            SCHEDULED_COUNT: sum(n.status is NotificationStatus.SCHEDULED for n in chunk),
        }
        shards = max((n.message.tally_shards for n in chunk), default=1)
        records = max((n.message.record_shards for n in chunk), default=1)
        return self._tally.update(
            event_id,
            adds,
            complete=complete,
            shard=shard,
            shards=shards,
            record_shards=records,
        )

    def _listed_update(self, event_id: str, listed: Mapping[str, str]) -> dict[str, Any]:
        """A self-counted event's list (every record, set whole, so a repeat sets the same)
        on its event item, which must exist."""
        sets, values = record_counts.list_expression(listed)
        check = _open_event(event_id)
        return {
            "TableName": self._table,
            "UpdateExpression": "SET " + ", ".join(sets),
            **check,
            "ExpressionAttributeValues": {**values, **check["ExpressionAttributeValues"]},
        }

    def _processing_update(
        self, event_id: str, listed: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """START|PROCESSING → PROCESSING on the event item (a routed event); a self-counted
        event's list goes in the same write (`core.ledger.record_counts`)."""
        sets = ["#s = :processing", "updated_at = :now"]
        values: dict[str, Any] = {}
        if listed:
            more, values = record_counts.list_expression(listed)
            sets += more
        update, index_values = event_index.update_expression(
            sets, event_id, EventStatus.PROCESSING, self._layout
        )
        return {
            "TableName": self._table,
            "Key": dynamo.event_key(event_id),
            "UpdateExpression": update,
            "ConditionExpression": "#s IN (:start, :processing)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                **index_values,
                **values,
                ":processing": {"S": EventStatus.PROCESSING.value},
                ":start": {"S": EventStatus.START.value},
                ":now": {"S": iso(utcnow())},
            },
        }


def _open_event(event_id: str) -> dict[str, Any]:
    """The condition every record creation puts on its event: it exists and is still open
    (START or PROCESSING). A settled event, FAILED above all, gets no new records: a router
    that kept retrying after the reconciler gave up, or a redriven message, cannot send
    while the event says it failed. A refusal returns the event item, which tells a missing
    event from a settled one."""
    return {
        "Key": dynamo.event_key(event_id),
        "ConditionExpression": "attribute_exists(PK) AND #es IN (:open_start, :open_processing)",
        "ExpressionAttributeNames": {"#es": "status"},
        "ExpressionAttributeValues": {
            ":open_start": {"S": EventStatus.START.value},
            ":open_processing": {"S": EventStatus.PROCESSING.value},
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def routed_items(notifications: Sequence[NewNotification]) -> int:
    """How many items one event takes in `create_routed`'s transaction: its records but
    those its claims create, its tally unless it lists them, its status."""
    listed = _counted_records(notifications)
    puts = sum(not (listed and _claim_creates(n)) for n in notifications)
    return puts + (1 if listed else 2)


def _counted_records(notifications: Sequence[NewNotification]) -> dict[str, str]:
    """The sort keys of a self-counted event's records (all of them: the planner lists
    them only when its whole plan is at hand), each with its masked recipient, which the
    API shows for a record no claim has written yet; else none."""
    if not notifications or not all(n.message.counted_records for n in notifications):
        return {}
    masked = {
        dynamo.notification_sk(n.message.channel, n.message.recipient_id): ", ".join(
            mask_address(a) for a in n.message.addresses
        )
        for n in notifications
    }
    return {sk: masked.get(sk, "") for sk in notifications[0].message.counted_records}


def _claim_creates(notification: NewNotification) -> bool:
    """A queued record of a self-counted event: its first claim creates it."""
    return notification.status is NotificationStatus.QUEUED and claim_creates(notification.message)

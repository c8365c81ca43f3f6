"""The event's tally: records created and counted together, and the event settled when
its last notification is.

A record exists exactly when it is counted (`create_counted`, `create_routed`: conditional
puts and the counter update in one transaction), so a router that crashes anywhere and
runs a message again can neither miss a count nor count twice. The event settles when its
fan-out is complete and sent + failed + skipped = total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core import dynamo
from core.dynamo import TRANSACT_MAX
from core.models import EventStatus, NotificationStatus, iso, utcnow
from core.notification_records import (
    EventNotFound,
    NewNotification,
    RecordStore,
    is_condition_failure,
    log,
)

CHUNK_MAX = TRANSACT_MAX - 1  # records per counted chunk: one slot is the event's tally


@dataclass(frozen=True)
class CountedCreation:
    """What `create_counted` did: records created (and counted) now, and records an
    earlier try had already created and counted, with their current status."""

    created: list[NewNotification]
    existing: dict[str, str]


class EventTally(RecordStore):
    def add_to_event(
        self,
        event_id: str,
        *,
        total: int = 0,
        sent: int = 0,
        failed: int = 0,
        skipped: int = 0,
        fanout_complete: bool = False,
    ) -> EventStatus | None:
        """Count settled notifications on the event and settle the event when the last one
        lands; returns the event's final status if this call settled it."""
        adds = {"total": total, "sent": sent, "failed": failed, "skipped": skipped}
        names = {f"#{k}": k for k in adds if adds[k]}
        values: dict[str, Any] = {f":{k}": {"N": str(v)} for k, v in adds.items() if v}
        parts = [f"counts.#{k} :{k}" for k in adds if adds[k]]
        update = ("ADD " + ", ".join(parts)) if parts else ""
        sets = ["updated_at = :now"]
        values[":now"] = {"S": iso(utcnow())}
        if fanout_complete:
            sets.append("fanout_complete = :true")
            values[":true"] = {"BOOL": True}
        update = f"SET {', '.join(sets)} {update}".strip()
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {dynamo.PK: {"S": dynamo.event_pk(event_id)}, dynamo.SK: {"S": dynamo.EVENT_SK}},
            "UpdateExpression": update,
            "ConditionExpression": "attribute_exists(PK)",
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        resp = self._db.update_item(**kwargs)
        event = dynamo.from_item(resp["Attributes"])
        return self._settle_event(event)

    def _settle_event(self, event: dict[str, Any]) -> EventStatus | None:
        counts = event.get("counts", {})
        total = int(counts.get("total", 0))
        done = (
            int(counts.get("sent", 0))
            + int(counts.get("failed", 0))
            + int(counts.get("skipped", 0))
        )
        if not event.get("fanout_complete") or event.get("status") != EventStatus.PROCESSING:
            return None
        if done != total:
            if done > total:
                # A counter update was applied twice (its answer was lost and it was
                # retried): the tally cannot be trusted, so the reconciler settles this
                # event from its records instead.
                log.warning("tally over its total", extra={"event_id": event.get("event_id")})
            return None
        final = EventStatus.FAILED if int(counts.get("failed", 0)) else EventStatus.SUCCESS
        reason = (
            f"{counts.get('failed', 0)} of {total} notifications failed"
            if final is EventStatus.FAILED
            else None
        )
        values: dict[str, Any] = {
            ":final": {"S": final.value},
            ":processing": {"S": EventStatus.PROCESSING.value},
            ":now": {"S": iso(utcnow())},
        }
        update = "SET #s = :final, updated_at = :now"
        if reason:
            update += ", reason = :reason"
            values[":reason"] = {"S": reason}
        try:
            self._db.update_item(
                TableName=self._table,
                Key={dynamo.PK: {"S": event[dynamo.PK]}, dynamo.SK: {"S": dynamo.EVENT_SK}},
                UpdateExpression=update,
                ConditionExpression="#s = :processing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return final

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
        if redelivered and notifications:
            existing = self.statuses([n.message for n in notifications])
            notifications = [n for n in notifications if n.message.notification_id not in existing]
        for start in range(0, len(notifications), CHUNK_MAX):
            pending = list(notifications[start : start + CHUNK_MAX])
            while pending:
                clashes = self._create_counted_chunk(pending)
                if clashes is None:
                    created.extend(pending)
                    break
                for index, status in clashes.items():
                    existing[pending[index].message.notification_id] = status
                pending = [n for i, n in enumerate(pending) if i not in clashes]
        return CountedCreation(created, existing)

    def _create_counted_chunk(self, chunk: list[NewNotification]) -> dict[int, str] | None:
        """None when the chunk was created and counted; else {index: status} of the records
        that already exist. Other cancellations (conflicts, throttling) raise."""
        event_id = chunk[0].message.event_id
        if any(n.message.event_id != event_id for n in chunk):
            raise ValueError("a counted chunk holds notifications of one event")
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._item(n),
                    "ConditionExpression": "attribute_not_exists(PK)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for n in chunk
        ]
        items.append({"Update": self._tally_update(event_id, chunk)})
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if len(reasons) == len(items) and reasons[-1].get("Code") == "ConditionalCheckFailed":
                raise EventNotFound(event_id) from exc
            clashes = {
                i: str(r.get("Item", {}).get("status", {}).get("S", ""))
                for i, r in enumerate(reasons[: len(chunk)])
                if r.get("Code") == "ConditionalCheckFailed"
            }
            if not clashes:
                raise
            unknown = [chunk[i].message for i, status in clashes.items() if not status]
            if unknown:
                stored = self.statuses(unknown)
                for i in clashes:
                    if not clashes[i]:
                        clashes[i] = stored.get(chunk[i].message.notification_id, "")
            return clashes
        return None

    def create_routed(self, events: Sequence[Sequence[NewNotification]]) -> bool:
        """Route several single-page events at once: create every record, count them on
        their event, and move each event to PROCESSING with its fan-out complete, all in
        one TransactWriteItems (at most TRANSACT_MAX items: records plus one per event).

        True when all of it happened. False when the transaction was cancelled (a record
        exists already, or an event is missing or no longer START/PROCESSING): then nothing
        happened, and the caller routes those events one by one (`create_counted`), which
        sorts out each case. Fan-out complete is safe to set here because the records are
        created before any message is enqueued: no worker can count a notification before
        the event knows its total.
        """
        items: list[dict[str, Any]] = []
        for planned in events:
            if not planned:
                raise ValueError("an event routed here has at least one notification")
            event_id = planned[0].message.event_id
            if any(n.message.event_id != event_id for n in planned):
                raise ValueError("each group holds the notifications of one event")
            items += [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._item(n),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
                for n in planned
            ]
            items.append({"Update": self._tally_update(event_id, planned, complete=True)})
        if len(items) > TRANSACT_MAX:
            raise ValueError(f"{len(items)} items do not fit one transaction")
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise
        return True

    def _tally_update(
        self, event_id: str, chunk: Sequence[NewNotification], *, complete: bool = False
    ) -> dict[str, Any]:
        """The event's counter update for `chunk`; with `complete`, the last chunk of a
        single-page event: START|PROCESSING → PROCESSING with the fan-out complete."""
        adds = {
            "total": len(chunk),
            "skipped": sum(n.status is NotificationStatus.SKIPPED for n in chunk),
            "failed": sum(n.status is NotificationStatus.FAILED for n in chunk),
        }
        present = [k for k, v in adds.items() if v]
        names = {f"#{k}": k for k in present}
        values: dict[str, Any] = {f":{k}": {"N": str(adds[k])} for k in present}
        values[":now"] = {"S": iso(utcnow())}
        sets = "SET updated_at = :now"
        condition = "attribute_exists(PK)"
        if complete:
            sets += ", #s = :processing, fanout_complete = :true"
            condition = "#s IN (:start, :processing)"
            names["#s"] = "status"
            values[":processing"] = {"S": EventStatus.PROCESSING.value}
            values[":start"] = {"S": EventStatus.START.value}
            values[":true"] = {"BOOL": True}
        return {
            "TableName": self._table,
            "Key": {dynamo.PK: {"S": dynamo.event_pk(event_id)}, dynamo.SK: {"S": dynamo.EVENT_SK}},
            "UpdateExpression": f"{sets} ADD " + ", ".join(f"counts.#{k} :{k}" for k in present),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def continuation_sent(self, event_id: str, page: int) -> bool:
        """Whether the router already sent the message for fan-out page `page`."""
        resp = self._db.get_item(
            TableName=self._table,
            Key={dynamo.PK: {"S": dynamo.event_pk(event_id)}, dynamo.SK: {"S": dynamo.EVENT_SK}},
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": "continued_pages"},
            ConsistentRead=True,
        )
        pages = resp.get("Item", {}).get("continued_pages", {}).get("NS", [])
        return str(page) in pages

    def mark_continuation_sent(self, event_id: str, page: int) -> None:
        """Recorded after the send, so a crash in between repeats the send (harmless)
        rather than losing the rest of the fan-out."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    dynamo.PK: {"S": dynamo.event_pk(event_id)},
                    dynamo.SK: {"S": dynamo.EVENT_SK},
                },
                UpdateExpression="ADD #c :page",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#c": "continued_pages"},
                ExpressionAttributeValues={":page": {"NS": [str(page)]}},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

"""An event's status changes: each one conditional update of the event item that names
the status it expects, so a change that finds the event elsewhere does nothing and says
so (False): START → PROCESSING → SUCCESS | FAILED, a republish stamp while START, a repair
count while PROCESSING, and giving up (START|PROCESSING → FAILED)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import EventStatus, iso, utcnow
from core.ledger import event_index
from core.ledger.notification_records import closed_or_missing
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout

# Set on an event the router gave up on: its message is in the events DLQ, and a redrive
# of that message may reopen it.
ROUTING_FAILED = "routing_failed"


class EventStatusChanges:
    """The conditional writes that move an event item between statuses."""

    def __init__(self, dynamodb: Any, table: str, layout: ShardLayout = DEFAULT_LAYOUT) -> None:
        self._db = dynamodb
        self._table = table
        self._layout = layout

    def transition(
        self, event_id: str, expected: EventStatus, new: EventStatus, **attrs: Any
    ) -> bool:
        """Move the event from `expected` to `new` (with `attrs` set); False when it was
        not in `expected`."""
        sets = ["#s = :new", "updated_at = :now"]
        values: dict[str, Any] = {":new": {"S": new.value}, ":expected": {"S": expected.value}}
        for i, (name, value) in enumerate(attrs.items()):
            sets.append(f"{name} = :a{i}")
            values[f":a{i}"] = dynamo.to_value(value)
        update, index_values = event_index.update_expression(sets, event_id, new, self._layout)
        return self._conditional(event_id, update, "#s = :expected", {**values, **index_values})

    def open_for_routing(self, event_id: str) -> None:
        """START → PROCESSING as the router takes the event, or nothing if it is PROCESSING
        already (a redelivery). Raises `EventClosed` for a settled event (the router must
        not route it: a FAILED event stays failed, whatever retried) and `EventNotFound`
        for a missing one; the refused write returns the stored item, so no second read."""
        update, index_values = event_index.update_expression(
            ["#s = :processing", "updated_at = :now"],
            event_id,
            EventStatus.PROCESSING,
            self._layout,
        )
        values = {
            **index_values,
            ":processing": {"S": EventStatus.PROCESSING.value},
            ":start": {"S": EventStatus.START.value},
        }
        try:
            self._db.update_item(
                TableName=self._table,
                Key=dynamo.event_key(event_id),
                UpdateExpression=update,
                ConditionExpression="#s = :start",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":now": {"S": iso(utcnow())}, **values},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise
            stored = dynamo.from_item(exc.response.get("Item") or {})
            if stored.get("status") != EventStatus.PROCESSING.value:
                raise closed_or_missing(event_id, stored) from exc

    def fail(
        self,
        event_id: str,
        reason: str,
        *,
        routing: bool = False,
        expected: EventStatus | None = None,
        unchanged: tuple[str, str] | None = None,
    ) -> bool:
        """START|PROCESSING → FAILED with the reason (routing or publishing gave up);
        False when the event had settled or is gone. `routing`: the router gave up on its
        message, which goes to the events DLQ; only such an event may be reopened by that
        message's redrive (`reopen_routing`). `expected` narrows the statuses it may fail
        from, and `unchanged` (attribute, value) requires what the caller judged by to be
        as it saw it: the reconciler fails only the event it looked at, not one a router
        took in between."""
        sets = ["#s = :failed", "reason = :reason", "updated_at = :now"]
        if routing:
            sets.append(f"{ROUTING_FAILED} = :true")
        update, index_values = event_index.update_expression(
            sets, event_id, EventStatus.FAILED, self._layout
        )
        values = {
            **index_values,
            ":failed": {"S": EventStatus.FAILED.value},
            ":reason": {"S": reason},
            ":start": {"S": EventStatus.START.value},
            ":processing": {"S": EventStatus.PROCESSING.value},
        }
        if routing:
            values[":true"] = {"BOOL": True}
        condition = "#s IN (:start, :processing)"
        if expected is not None:
            condition = "#s = :start" if expected is EventStatus.START else "#s = :processing"
            values.pop(":processing" if expected is EventStatus.START else ":start")
        if unchanged is not None:
            attribute, seen = unchanged
            condition += f" AND {attribute} = :seen"
            values[":seen"] = {"S": seen}
        return self._conditional(event_id, update, condition, values)

    def reopen_routing(self, event_id: str) -> bool:
        """FAILED → PROCESSING for an event the router gave up on (`fail(routing=True)`),
        as an operator redrives its message from the events DLQ: one conditional write,
        before the message goes back, so the router finds it open. An event that failed
        any other way (its notifications failed, it was never routed at all) stays FAILED
        and this is False."""
        update, index_values = event_index.update_expression(
            ["#s = :processing", "updated_at = :now"],
            event_id,
            EventStatus.PROCESSING,
            self._layout,
        )
        values = {
            **index_values,
            ":processing": {"S": EventStatus.PROCESSING.value},
            ":failed": {"S": EventStatus.FAILED.value},
            ":true": {"BOOL": True},
        }
        removed = f"reason, {ROUTING_FAILED}"
        update += f", {removed}" if " REMOVE " in update else f" REMOVE {removed}"
        return self._conditional(
            event_id,
            update,
            f"#s = :failed AND {ROUTING_FAILED} = :true",
            values,
        )

    def reopened_update(self, event_id: str) -> dict[str, Any]:
        """A transaction's Update that reopens the event for a redriven notification:
        FAILED (that failure had settled it) or PROCESSING → PROCESSING, its reason gone."""
        update, index_values = event_index.update_expression(
            ["#s = :processing", "updated_at = :now"],
            event_id,
            EventStatus.PROCESSING,
            self._layout,
        )
        update += ", reason" if " REMOVE " in update else " REMOVE reason"
        return {
            "TableName": self._table,
            "Key": dynamo.event_key(event_id),
            "UpdateExpression": update,
            "ConditionExpression": "#s IN (:failed, :processing)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                **index_values,
                ":now": {"S": iso(utcnow())},
                ":processing": {"S": EventStatus.PROCESSING.value},
                ":failed": {"S": EventStatus.FAILED.value},
            },
        }

    def status_of(self, event_id: str) -> str | None:
        """The event's status, read consistently; None when there is no such event."""
        resp = self._db.get_item(
            TableName=self._table,
            Key=dynamo.event_key(event_id),
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return None if item is None else str(item["status"]["S"])

    def mark_republished(self, event_id: str) -> bool:
        """Stamp a republish; False if the event left START meanwhile (nothing to do)."""
        update = "SET last_published_at = :now, updated_at = :now ADD publish_attempts :one"
        values = {":one": {"N": "1"}, ":start": {"S": EventStatus.START.value}}
        return self._conditional(event_id, update, "#s = :start", values)

    def mark_repaired(self, event_id: str) -> bool:
        """Count a repair and restart the event's clock; False if it left PROCESSING."""
        update = "SET updated_at = :now ADD repair_attempts :one"
        values = {":one": {"N": "1"}, ":processing": {"S": EventStatus.PROCESSING.value}}
        return self._conditional(event_id, update, "#s = :processing", values)

    def _conditional(
        self, event_id: str, update: str, condition: str, values: dict[str, Any]
    ) -> bool:
        """One conditional update of the event item (`:now` and `#s` supplied here);
        False when its condition refused it."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=dynamo.event_key(event_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":now": {"S": iso(utcnow())}, **values},
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                return False
            raise
        return True

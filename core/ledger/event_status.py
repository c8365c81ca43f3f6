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


class EventStatusChanges:
    """The conditional writes that move an event item between statuses."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

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
        update, index_values = event_index.update_expression(sets, event_id, new)
        return self._conditional(event_id, update, "#s = :expected", {**values, **index_values})

    def fail(self, event_id: str, reason: str) -> bool:
        """START|PROCESSING → FAILED with the reason (routing or publishing gave up);
        False when the event had settled or is gone."""
        update, index_values = event_index.update_expression(
            ["#s = :failed", "reason = :reason", "updated_at = :now"], event_id, EventStatus.FAILED
        )
        values = {
            **index_values,
            ":failed": {"S": EventStatus.FAILED.value},
            ":reason": {"S": reason},
            ":start": {"S": EventStatus.START.value},
            ":processing": {"S": EventStatus.PROCESSING.value},
        }
        return self._conditional(event_id, update, "#s IN (:start, :processing)", values)

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

"""An event's waiting states, each one conditional write of the event item:

    accept with send_at/delay ──▶ SCHEDULED ──due──▶ START ──router──▶ PROCESSING ...
    routed, every pending record SCHEDULED: PROCESSING ──park──▶ SCHEDULED
    a record released (listeners/deferral.py): SCHEDULED|PROCESSING ──▶ PROCESSING, `released`
    cancel: SCHEDULED ──▶ CANCELLED

Cancel and release race on the event item alone: a release writes `released` and moves
the event to PROCESSING in the transaction that moves its record SCHEDULED → QUEUED, and
cancel requires SCHEDULED; park requires that nothing was released. So either the cancel
lands first (every later release is refused, nothing is sent) or a release does (the
cancel is refused: 409), never both.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.dynamo import TRANSACT_ROUNDS
from core.catalogue.models import EventRecord, EventStatus, iso, utcnow
from core.ledger import event_index
from core.ledger.event_items import EventExists, event_to_item, item_to_event
from core.ledger.event_status import EventStatusChanges
from core.timing.due_work import DueStore, DueWork

RELEASED = "released"


class WaitingEvents:
    """The event item's writes for waiting: recording a delayed event with its due item,
    publishing it when due, parking, releasing and cancelling."""

    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days
        self._status = EventStatusChanges(dynamodb, table)

    def record_delayed(self, record: EventRecord, due: DueStore, work: DueWork) -> None:
        """The event, SCHEDULED, and its due item in one transaction: a delayed event
        never exists without the work that publishes it. Raises EventExists (the stored
        record) when its id is taken; a retry after a lost answer recognises its own
        write by the record's `accept_token`."""
        item = event_to_item(record, self._retention_days)
        token = record.payload_hash + "#" + record.created_at
        item["accept_token"] = {"S": token}
        due_item = due.item_of(work)
        items = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(PK)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {"Put": {"TableName": self._table, "Item": due_item}},
        ]
        due.ensure_cursor()
        for rounds in range(1, TRANSACT_ROUNDS + 1):
            try:
                self._db.transact_write_items(TransactItems=items)
                break
            except ClientError as exc:
                refused = aws_errors.refused_items(exc)
                if 0 in refused:
                    stored = refused[0]
                    if stored.get("accept_token", {}).get("S") == token:
                        break  # our own write, whose answer was lost
                    raise EventExists(item_to_event(stored)) from exc
                aws_errors.back_off_or_raise(exc, rounds, TRANSACT_ROUNDS)
        due.landed(work, due_item)

    def publishable(self, event_id: str) -> EventRecord | None:
        """SCHEDULED → START for a delayed event that came due (its clock restarts, so the
        reconciler's grace counts from now); the record to publish, also when an earlier
        hand-out moved it and may not have published (a second publish is harmless), or
        None when it is gone, cancelled or already routed."""
        now = iso(utcnow())
        self._status.transition(
            event_id, EventStatus.SCHEDULED, EventStatus.START, last_published_at=now
        )
        stored = self.read(event_id)
        if stored is None or stored.status is not EventStatus.START:
            return None
        return stored

    def read(self, event_id: str) -> EventRecord | None:
        resp = self._db.get_item(
            TableName=self._table, Key=dynamo.event_key(event_id), ConsistentRead=True
        )
        return item_to_event(resp["Item"]) if "Item" in resp else None

    def item(self, event_id: str) -> dict[str, Any] | None:
        """The event item, plain, read consistently."""
        resp = self._db.get_item(
            TableName=self._table, Key=dynamo.event_key(event_id), ConsistentRead=True
        )
        return dynamo.from_item(resp["Item"]) if "Item" in resp else None

    def park(self, event_id: str) -> bool:
        """PROCESSING → SCHEDULED for a routed event whose every pending record is
        SCHEDULED, unless one was released already; False when refused."""
        update, values = event_index.update_expression(
            ["#s = :scheduled", "updated_at = :now"], event_id, EventStatus.SCHEDULED
        )
        return self._conditional(
            event_id,
            update,
            f"#s = :processing AND attribute_not_exists({RELEASED})",
            {
                **values,
                ":scheduled": {"S": EventStatus.SCHEDULED.value},
                ":processing": {"S": EventStatus.PROCESSING.value},
            },
        )

    def release_update(self, event_id: str) -> dict[str, Any]:
        """A transaction's Update that marks the event released and moves it to
        PROCESSING (from SCHEDULED, or staying PROCESSING); refused once CANCELLED."""
        update, values = event_index.update_expression(
            ["#s = :processing", "updated_at = :now", f"{RELEASED} = :true"],
            event_id,
            EventStatus.PROCESSING,
        )
        return {
            "TableName": self._table,
            "Key": dynamo.event_key(event_id),
            "UpdateExpression": update,
            "ConditionExpression": "#s IN (:scheduled, :processing)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                **values,
                ":now": {"S": iso(utcnow())},
                ":true": {"BOOL": True},
                ":scheduled": {"S": EventStatus.SCHEDULED.value},
                ":processing": {"S": EventStatus.PROCESSING.value},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def cancel(self, event_id: str) -> str | None:
        """SCHEDULED → CANCELLED. None when cancelled (now, or by an earlier try of this
        cancel); else the status that refused it ("" when there is no such event)."""
        update, values = event_index.update_expression(
            ["#s = :cancelled", "updated_at = :now", "reason = :reason"],
            event_id,
            EventStatus.CANCELLED,
        )
        values[":reason"] = {"S": "cancelled before anything was sent"}
        values[":cancelled"] = {"S": EventStatus.CANCELLED.value}
        values[":scheduled"] = {"S": EventStatus.SCHEDULED.value}
        if aws_errors.retry(lambda: self._conditional(event_id, update, "#s = :scheduled", values)):
            return None
        stored = self.item(event_id)
        status = str(stored.get("status", "")) if stored else ""
        return None if status == EventStatus.CANCELLED else status

    def _conditional(
        self, event_id: str, update: str, condition: str, values: dict[str, Any]
    ) -> bool:
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

"""Delivery receipts applied once: each receipt id is kept while a replay of it could verify.

A signed webhook proves who sent it, not that it is new: a captured Twilio callback (signed
without a timestamp) verifies forever, a SendGrid post for its ten minutes. So each receipt
has an id (SendGrid's `sg_event_id`, Twilio's `MessageSid` with the status) and is applied
in one transaction with a conditional put of that id: the first copy changes the
notification and records the id, every later copy finds the id and changes nothing. Several
API processes share the table, so the seen ids live there (TTL'd), not in memory.

| item | PK | SK |
|---|---|---|
| seen receipt | `RECEIPT#<provider>#<sha256 of the id>` | `RECEIPT` |
"""

from __future__ import annotations

import enum
import hashlib
import time
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import NotificationStatus, iso, utcnow
from core.ledger.notification_records import HISTORY_MAX, history_entry, record_key

ENTITY = "RECEIPT"


class Outcome(enum.Enum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # no such notification, or not in a state a receipt moves
    REPLAY = "replay"  # this receipt was applied before
    # The notification is still before SENT (its worker is writing the outcome): nothing
    # is applied or remembered, and the webhook answers an error so the provider retries.
    EARLY = "early"


# A receipt finding its notification in one of these came before the SENT write.
BEFORE_SENT = ("QUEUED", "SENDING", "RETRYING")


def receipt_key(provider: str, receipt_id: str) -> dict[str, Any]:
    digest = hashlib.sha256(receipt_id.encode()).hexdigest()
    return {dynamo.PK: {"S": f"RECEIPT#{provider}#{digest}"}, dynamo.SK: {"S": ENTITY}}


class ReceiptLedger:
    """Receipts applied to the records they name, each once."""

    # Events whose record layout this process has read (a receipt names its notification
    # by event, channel and recipient, not by partition): a layout never changes.
    _LAYOUTS_KEPT = 10_000

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table
        self._layouts: dict[str, int] = {}

    def apply(
        self,
        provider: str,
        receipt_id: str,
        keep_seconds: float,
        notification: tuple[str, str, str],
        status: NotificationStatus,
        detail: str | None,
    ) -> Outcome:
        """Move the notification (event id, channel, recipient id) to `status` unless this
        receipt was applied before; the id is kept `keep_seconds` (a DynamoDB TTL)."""
        seen = {
            **receipt_key(provider, receipt_id),
            dynamo.TTL_ATTRIBUTE: {"N": str(int(time.time() + keep_seconds))},
        }
        full = False
        while True:
            update = self.receipt_update(*notification, status, detail, history_full=full)
            try:
                self._db.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": seen,
                                "ConditionExpression": "attribute_not_exists(PK)",
                            }
                        },
                        {"Update": {"TableName": self._table, **update}},
                    ]
                )
            except ClientError as exc:
                codes = aws_errors.cancellation_reasons(exc)
                if codes[:1] == [aws_errors.REFUSED_REASON]:
                    return Outcome.REPLAY
                if codes[1:2] == [aws_errors.REFUSED_REASON]:
                    stored = exc.response["CancellationReasons"][1].get("Item")
                    if not full and receipt_history_full(stored):
                        full = True  # the status allows it; only the history is full
                        continue
                    if dynamo.from_item(stored or {}).get("status") in BEFORE_SENT:
                        return Outcome.EARLY
                    return Outcome.UNCHANGED
                raise
            return Outcome.UPDATED

    def record_shards_of(self, event_id: str) -> int:
        """How many partitions hold the event's records (its tally says; one read, then
        remembered)."""
        layouts = self._layouts
        if event_id not in layouts:
            resp = self._db.get_item(
                TableName=self._table,
                Key=dynamo.tally_key(event_id),
                ProjectionExpression="record_shards",
            )
            if len(layouts) >= self._LAYOUTS_KEPT:
                layouts.clear()
            layouts[event_id] = int(resp.get("Item", {}).get("record_shards", {}).get("N", "1"))
        return layouts[event_id]

    def receipt_update(
        self,
        event_id: str,
        channel: str,
        recipient_id: str,
        status: NotificationStatus,
        detail: str | None,
        *,
        history_full: bool = False,
    ) -> dict[str, Any]:
        """The conditional update of a receipt, also as the Update of a transaction
        (`core.ledger.receipts` pairs it with the receipt's seen-id).

        Receipts are the one thing a record takes without bound (a provider may report a
        delivered message opened or clicked any number of times), so they append to
        `history` only while it has fewer than HISTORY_MAX entries; past that (a refusal
        with the stored item says so, then `history_full`), the receipt still moves the
        status and is kept as `last_receipt`, and `history_dropped` counts it."""
        entry = history_entry(status.value, detail)
        values: dict[str, Any] = {
            ":new": {"S": status.value},
            ":now": {"S": iso(utcnow())},
            ":sent": {"S": NotificationStatus.SENT.value},
            ":delivered": {"S": NotificationStatus.DELIVERED.value},
        }
        condition = "attribute_exists(PK) AND #s IN (:sent, :delivered)"
        if history_full:
            update = (
                "SET #s = :new, updated_at = :now, last_receipt = :entry ADD history_dropped :one"
            )
            values.update({":entry": entry, ":one": {"N": "1"}})
        else:
            update = "SET #s = :new, updated_at = :now, history = list_append(history, :h)"
            condition += " AND size(history) < :max"
            values.update({":h": {"L": [entry]}, ":max": {"N": str(HISTORY_MAX)}})
        return {
            "Key": record_key(event_id, channel, recipient_id, self.record_shards_of(event_id)),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


def receipt_history_full(stored: dict[str, Any] | None) -> bool:
    """Whether a refused receipt met a record that takes receipts (SENT, DELIVERED) but
    whose history is full, from the stored item the refusal returned."""
    if not stored:
        return False
    values = dynamo.from_item(stored)
    receiving = {NotificationStatus.SENT.value, NotificationStatus.DELIVERED.value}
    return values.get("status") in receiving and len(values.get("history", [])) >= HISTORY_MAX

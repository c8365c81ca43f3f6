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
from core.catalogue.models import NotificationStatus
from core.ledger.notification_store import NotificationStore, receipt_history_full

ENTITY = "RECEIPT"


class Outcome(enum.Enum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # no such notification, or not in a state a receipt moves
    REPLAY = "replay"  # this receipt was applied before


def receipt_key(provider: str, receipt_id: str) -> dict[str, Any]:
    digest = hashlib.sha256(receipt_id.encode()).hexdigest()
    return {dynamo.PK: {"S": f"RECEIPT#{provider}#{digest}"}, dynamo.SK: {"S": ENTITY}}


class ReceiptLedger:
    def __init__(self, dynamodb: Any, table: str, notifications: NotificationStore) -> None:
        self._db = dynamodb
        self._table = table
        self._notifications = notifications

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
            update = self._notifications.receipt_update(
                *notification, status, detail, history_full=full
            )
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
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                codes = [r.get("Code") for r in reasons]
                if codes[:1] == ["ConditionalCheckFailed"]:
                    return Outcome.REPLAY
                if codes[1:2] == ["ConditionalCheckFailed"]:
                    if not full and receipt_history_full(reasons[1].get("Item")):
                        full = True  # the status allows it; only the history is full
                        continue
                    return Outcome.UNCHANGED
                raise
            return Outcome.UPDATED

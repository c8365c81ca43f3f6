"""Claims and the workers' transitions of notification records.

The state machine is drawn in `core.ledger.notification_records`. A claim takes a lease and a
token: a SENDING record whose lease has run out (its worker died) may be claimed again,
one whose lease holds may not, so a redelivered message cannot send twice; only the
claim's holder extends its lease or records its outcome.

The store is layered by idea: `core.ledger.notification_records` (creation and transitions),
`core.ledger.event_tally` (counted creation and settling), `core.ledger.outcome_records` (outcomes
with their counts); this module adds the claims and the workers' other transitions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import (
    NotificationMessage,
    NotificationStatus,
    iso,
    notification_id,
    utcnow,
)
from core.ledger.notification_records import (
    CLAIMABLE,
    DELIVERED_STATUSES,
    HISTORY_DETAIL_MAX,
    HISTORY_MAX,
    SETTLED,
    TRANSACT_ROUNDS,
    EventNotFound,
    NewNotification,
    history_entry,
    is_condition_failure,
    key_of,
    record_key,
    written_if_absent,
)
from core.ledger.outcome_records import (
    ALREADY,
    FAILED_UNCLAIMED,
    LOST,
    RECORDED,
    Outcome,
    OutcomeRecords,
)
from core.ledger.record_creation import CHUNK_MAX, CountedCreation
from core.platform.masking import mask_text


@dataclass(frozen=True)
class Claim:
    """A successful claim: the attempt number this send is (None when claimed in a batch,
    whose transaction returns no values; `attempts_of` reads it when a failure needs it),
    and the claim's token, stored as `lease_owner`: only its holder may extend the lease or
    record the outcome, and a claim retried after a lost answer recognises itself."""

    attempt: int | None
    token: str = ""


def new_token() -> str:
    return uuid.uuid4().hex


class NotificationStore(OutcomeRecords):
    """Every transition of a notification record, the event's tally and outcomes."""

    # Events whose record layout this process has read (a receipt names its notification
    # by event, channel and recipient, not by partition): a layout never changes.
    _LAYOUTS_KEPT = 10_000

    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        super().__init__(dynamodb, table, retention_days)
        self._layouts: dict[str, int] = {}

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

    def claim(
        self, message: NotificationMessage, lease_seconds: float, token: str | None = None
    ) -> Claim | None:
        """QUEUED|RETRYING (or SENDING with a lapsed lease) → SENDING; None if not ours."""
        outcome = self.try_claim(message, lease_seconds, token)
        return outcome if isinstance(outcome, Claim) else None

    @staticmethod
    def _claim(lease_seconds: float, token: str) -> dict[str, Any]:
        now = time.time()
        return {
            "sets": {
                "status": NotificationStatus.SENDING.value,
                "lease_until": int(now + lease_seconds),
                "lease_owner": token,
            },
            "allowed": [s.value for s in CLAIMABLE],
            "history": (NotificationStatus.SENDING.value, None),
            "extra_condition": "#s = :sending AND lease_until < :now_epoch",
            "extra_values": {
                ":sending": {"S": NotificationStatus.SENDING.value},
                ":now_epoch": {"N": str(int(now))},
            },
            "add_attempt": True,
        }

    def try_claim(
        self, message: NotificationMessage, lease_seconds: float, token: str | None = None
    ) -> Claim | str | None:
        """Like `claim`, whatever happens: the Claim, or the status that refused it
        (SENDING, SENT, ...), or None when there is no record at all."""
        return self.claim_many([message], lease_seconds, token)[0]

    def claim_many(
        self,
        messages: Sequence[NotificationMessage],
        lease_seconds: float,
        token: str | None = None,
    ) -> list[Claim | str | None]:
        """`try_claim` for the distinct notifications of a batch in one transaction (one
        call; two when some record had moved on). A claim refused because the record holds
        this very token was applied by an earlier try whose answer was lost: it is ours."""
        token = token or new_token()
        claim = self._claim(lease_seconds, token)
        if len(messages) == 1:  # a plain UpdateItem, which also says which attempt this is
            old: dict[str, Any] = {}
            item = aws_errors.retry(
                lambda: self._update(messages[0], returns=True, old_on_failure=old, **claim)
            )
            if item is not None:
                return [Claim(attempt=int(item.get("attempts", 1)), token=token)]
            refused = {0: (aws_errors.REFUSED_REASON, old)}
        else:
            refused = self._transact([self._transition(m, **claim) for m in messages])
        out: list[Claim | str | None] = []
        for index in range(len(messages)):
            if index not in refused:
                out.append(Claim(attempt=None, token=token))
                continue
            _, stored = refused[index]
            if (
                stored.get("status") == NotificationStatus.SENDING
                and stored.get("lease_owner") == token
            ):
                out.append(Claim(attempt=int(stored.get("attempts", 1)), token=token))
            else:
                out.append(str(stored["status"]) if "status" in stored else None)
        return out

    def extend_lease(self, message: NotificationMessage, token: str, lease_seconds: float) -> bool:
        """Keep a claim alive while its message is kept invisible (the heartbeat does both);
        False when the claim is no longer this token's or the record moved on."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key_of(message),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="#s = :sending AND lease_owner = :owner",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":until": {"N": str(int(time.time() + lease_seconds))},
                    ":sending": {"S": NotificationStatus.SENDING.value},
                    ":owner": {"S": token},
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def attempts_of(self, message: NotificationMessage) -> int:
        resp = self._db.get_item(
            TableName=self._table,
            Key=key_of(message),
            ProjectionExpression="attempts",
            ConsistentRead=True,
        )
        return int(resp.get("Item", {}).get("attempts", {}).get("N", "1"))

    def status_of(self, message: NotificationMessage) -> str | None:
        resp = self._db.get_item(
            TableName=self._table,
            Key=key_of(message),
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return None if item is None else str(item["status"]["S"])

    def mark_sent(
        self,
        message: NotificationMessage,
        provider: str,
        provider_message_id: str | None,
        token: str | None = None,
    ) -> bool:
        return self.mark_sent_many([(message, provider, provider_message_id)], token)[0]

    def mark_sent_many(
        self, sent: Sequence[tuple[NotificationMessage, str, str | None]], token: str | None = None
    ) -> list[bool]:
        """SENT marks without counting (`record_outcomes` counts too); False for a record
        that was no longer SENDING under this claim."""
        refused = self._transact(
            [self._transition(m, owner=token, **self._sent(p, i)) for m, p, i in sent]
        )
        return [index not in refused for index in range(len(sent))]

    def mark_retrying(
        self, message: NotificationMessage, error: str, delay: int, token: str | None = None
    ) -> bool:
        refused = self._transact(
            [
                self._transition(
                    message,
                    owner=token,
                    sets={
                        "status": NotificationStatus.RETRYING.value,
                        "last_error": mask_text(error),
                        "lease_until": 0,
                    },
                    allowed=[NotificationStatus.SENDING.value],
                    history=(NotificationStatus.RETRYING.value, f"{error} (next try in {delay}s)"),
                )
            ]
        )
        return not refused

    def mark_failed(self, message: NotificationMessage, error: str) -> bool:
        item = self._update(
            message,
            sets={
                "status": NotificationStatus.FAILED.value,
                "last_error": mask_text(error),
                "lease_until": 0,
            },
            allowed=[NotificationStatus.SENDING.value, *[s.value for s in CLAIMABLE]],
            history=(NotificationStatus.FAILED.value, error),
        )
        return item is not None

    def fail_stranded(
        self,
        event_id: str,
        sort_key: str,
        reason: str,
        partition: str | None = None,
        absent: bool = False,
    ) -> bool:
        """The reconciler gives up on a record whose message is lost for good: FAILED with
        the reason, from any unsettled status (the event is then settled from its records).
        `partition`: the record's PK when not the event's own (a large fan-out's).
        `absent`: a listed record no claim has created (`core.ledger.record_counts`): created
        FAILED here, unless a claim creates it first."""
        pk = partition or dynamo.event_pk(event_id)
        now = iso(utcnow())
        names = {"#s": "status"}
        values = {
            ":failed": {"S": NotificationStatus.FAILED.value},
            ":reason": {"S": reason},
            ":now": {"S": now},
            ":zero": {"N": "0"},
            ":h": {"L": [history_entry(NotificationStatus.FAILED.value, reason)]},
            ":queued": {"S": NotificationStatus.QUEUED.value},
            ":retrying": {"S": NotificationStatus.RETRYING.value},
            ":sending": {"S": NotificationStatus.SENDING.value},
        }
        clauses = [
            "#s = :failed",
            "last_error = :reason",
            "updated_at = :now",
            "lease_until = :zero",
        ]
        condition = "#s IN (:queued, :retrying, :sending)"
        if absent:
            _, channel, recipient = sort_key.split("#", 2)
            fixed = {
                "event_id": event_id,
                "notification_id": notification_id(event_id, channel, recipient),
                "channel": channel,
                "recipient_id": recipient,
                "created_at": now,
                dynamo.TTL_ATTRIBUTE: int(time.time()) + self._retention_days * 86400,
            }
            clauses += written_if_absent(dynamo.to_item(fixed), names, values)
            condition = f"attribute_not_exists(PK) OR ({condition})"
        else:
            clauses.append("history = list_append(history, :h)")
        try:
            self._db.update_item(
                TableName=self._table,
                Key={dynamo.PK: {"S": pk}, dynamo.SK: {"S": sort_key}},
                UpdateExpression="SET " + ", ".join(clauses),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def requeue(self, message: NotificationMessage, detail: str) -> bool:
        """A redriven notification goes back to QUEUED with its history kept."""
        item = self._update(
            message,
            sets={"status": NotificationStatus.QUEUED.value, "attempts": 0},
            allowed=[NotificationStatus.FAILED.value, NotificationStatus.RETRYING.value],
            history=(NotificationStatus.QUEUED.value, detail),
        )
        return item is not None

    def record_receipt(
        self,
        event_id: str,
        channel: str,
        recipient_id: str,
        status: NotificationStatus,
        detail: str | None,
    ) -> bool:
        """A provider's delivery receipt: SENT (or an earlier receipt) → DELIVERED etc."""
        for full in (False, True):
            try:
                self._db.update_item(
                    TableName=self._table,
                    **self.receipt_update(
                        event_id, channel, recipient_id, status, detail, history_full=full
                    ),
                )
            except ClientError as exc:
                if is_condition_failure(exc):
                    if not full and receipt_history_full(exc.response.get("Item")):
                        continue
                    return False
                raise
            return True
        return False

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


__all__ = [
    "ALREADY",
    "CHUNK_MAX",
    "CLAIMABLE",
    "DELIVERED_STATUSES",
    "FAILED_UNCLAIMED",
    "HISTORY_DETAIL_MAX",
    "HISTORY_MAX",
    "LOST",
    "RECORDED",
    "SETTLED",
    "TRANSACT_ROUNDS",
    "Claim",
    "CountedCreation",
    "EventNotFound",
    "NewNotification",
    "NotificationStore",
    "Outcome",
    "new_token",
    "receipt_history_full",
]

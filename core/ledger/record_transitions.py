"""Claims and the other transitions of a notification record between its creation and its
outcome (the state machine is drawn in `core.ledger.notification_records`).

A claim takes a lease and a token: a SENDING record whose lease has run out (its worker
died) may be claimed again, one whose lease holds may not, so a redelivered message cannot
send twice; only the claim's holder extends its lease or records its outcome
(`core.ledger.outcome_records`). The reconciler fails records whose message is lost, and a
redrive puts a record back in the queue.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    RecordWrites,
    history_entry,
    key_of,
    written_if_absent,
)
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


class RecordTransitions:
    """A record's claims, leases, retries and the repairs of operators and the
    reconciler."""

    def __init__(self, dynamodb: Any, table: str, records: RecordWrites) -> None:
        self._db = dynamodb
        self._table = table
        self._records = records

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
                lambda: self._records.update(messages[0], returns=True, old_on_failure=old, **claim)
            )
            if item is not None:
                return [Claim(attempt=int(item.get("attempts", 1)), token=token)]
            refused = {0: (aws_errors.REFUSED_REASON, old)}
        else:
            refused = self._records.transact(
                [self._records.transition(m, **claim) for m in messages]
            )
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
            if aws_errors.is_refusal(exc):
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

    def mark_retrying(
        self, message: NotificationMessage, error: str, delay: int, token: str | None = None
    ) -> bool:
        refused = self._records.transact(
            [
                self._records.transition(
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

    def fail_stranded(
        self,
        event_id: str,
        sort_key: str,
        reason: str,
        partition: str | None = None,
        absent: bool = False,
        judged_before: float | None = None,
    ) -> bool:
        """The reconciler gives up on a record whose message is lost for good: FAILED with
        the reason, from any unsettled status (the event is then settled from its records).
        `judged_before` (epoch seconds) is the time the reconciler judged it stranded by:
        the record is failed only if it still is — QUEUED or RETRYING untouched since then,
        or SENDING with a lease that lapsed before it — so a claim taken in between (a
        fresh lease) is never failed under its worker, whose SENT would then be lost.
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
        if judged_before is not None:
            values[":judged_at"] = {"S": iso(datetime.fromtimestamp(judged_before, UTC))}
            values[":judged_epoch"] = {"N": str(int(judged_before))}
            condition = (
                "(#s IN (:queued, :retrying) AND updated_at <= :judged_at)"
                " OR (#s = :sending AND lease_until < :judged_epoch)"
            )
        if absent:
            _, channel, recipient = sort_key.split("#", 2)
            fixed = {
                "event_id": event_id,
                "notification_id": notification_id(event_id, channel, recipient),
                "channel": channel,
                "recipient_id": recipient,
                "created_at": now,
                dynamo.TTL_ATTRIBUTE: self._records.expires_at(),
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
            if aws_errors.is_refusal(exc):
                return False
            raise
        return True

    def requeue(self, message: NotificationMessage, detail: str) -> bool:
        """A redriven notification goes back to QUEUED with its history kept."""
        item = self._records.update(
            message,
            sets={"status": NotificationStatus.QUEUED.value, "attempts": 0},
            allowed=[NotificationStatus.FAILED.value, NotificationStatus.RETRYING.value],
            history=(NotificationStatus.QUEUED.value, detail),
        )
        return item is not None

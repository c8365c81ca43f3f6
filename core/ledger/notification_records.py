"""Notification records in the event's partition: creation and conditional transitions.

    QUEUED ──claim──▶ SENDING ──▶ SENT ──receipt──▶ DELIVERED | UNDELIVERED | BOUNCED
      ▲                  │  └───▶ FAILED (permanent error or last attempt)
      │                  └──────▶ RETRYING ──claim──▶ SENDING ...
      └── redrive (FAILED → QUEUED)
    SKIPPED (opted out, quiet hours, no contact): created settled, never queued
    SCHEDULED ──due (core.timing)──▶ QUEUED | SKIPPED | FAILED; ──event cancelled──▶ CANCELLED

Every transition is one conditional update naming the statuses it may start from; a
transition that finds another status changes nothing and says so (returns None/False).
A batch's claims, and its SENT marks, go as the Updates of one TransactWriteItems
(`claim_many`, `mark_sent_many`): a refused one cancels the transaction and is reported
with the stored status, and the others are applied again without it.
A claim also takes a lease: a SENDING record whose lease has run out (its worker died) may
be claimed again, one whose lease holds may not, so a redelivered message cannot send twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.dynamo import TRANSACT_MAX, TRANSACT_ROUNDS
from core.catalogue.models import NotificationMessage, NotificationStatus, iso, utcnow
from core.platform.masking import mask_address, mask_text

log = logging.getLogger("herald.notifications")


HISTORY_DETAIL_MAX = 500
# Entries a record's history may reach by receipts; transitions are bounded by the attempt
# and receive budgets, receipts by this (core.ledger.receipts keeps the rest as a count).
HISTORY_MAX = 40


CLAIMABLE = (NotificationStatus.QUEUED, NotificationStatus.RETRYING)


SETTLED = (NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.SKIPPED)


# SENT and the receipts that may follow it: the provider took the message.
DELIVERED_STATUSES = (
    NotificationStatus.SENT,
    NotificationStatus.DELIVERED,
    NotificationStatus.UNDELIVERED,
    NotificationStatus.BOUNCED,
)


@dataclass(frozen=True)
class NewNotification:
    """A notification the router decided on: queued with its message, or skipped."""

    message: NotificationMessage
    status: NotificationStatus = NotificationStatus.QUEUED
    reason: str | None = None
    # SCHEDULED: when it is due (ISO, UTC); `reason` says why it waits (history only).
    deliver_at: str | None = None


class EventNotFound(Exception):
    """The event item is gone (expired or never recorded): its notifications cannot count."""


class EventClosed(Exception):
    """The event has settled (SUCCESS or FAILED): nothing more is routed or created for it.
    A FAILED event is final until an operator reopens it (`reopen_routing`), so a retry
    after the reconciler gave up, or a client's own retry of the failed event, never sends
    behind a status that says nothing was sent."""

    def __init__(self, event_id: str, status: str, reason: str = "") -> None:
        super().__init__(f"event {event_id} is {status}" + (f" ({reason})" if reason else ""))
        self.event_id = event_id
        self.status = status
        self.reason = reason


def closed_or_missing(event_id: str, stored: dict[str, Any]) -> Exception:
    """What a refused open-event condition means: the event is gone (`stored` empty, as a
    plain item) or settled."""
    if not stored:
        return EventNotFound(event_id)
    return EventClosed(event_id, str(stored.get("status", "")), str(stored.get("reason") or ""))


def record_key(event_id: str, channel: str, recipient_id: str, shards: int = 1) -> dict[str, Any]:
    return {
        dynamo.PK: {"S": dynamo.record_pk(event_id, recipient_id, shards)},
        dynamo.SK: {"S": dynamo.notification_sk(channel, recipient_id)},
    }


def key_of(message: NotificationMessage) -> dict[str, Any]:
    return record_key(
        message.event_id, message.channel, message.recipient_id, message.record_shards
    )


def refused_items(exc: BaseException, chunk: list[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """The items of `chunk` (the positions of a write's items) whose condition failed,
    with their stored item made plain; empty when the call failed for any other reason."""
    return {
        chunk[j]: (aws_errors.REFUSED_REASON, dynamo.from_item(stored))
        for j, stored in aws_errors.refused_items(exc).items()
        if j < len(chunk)
    }


def claim_creates(message: NotificationMessage) -> bool:
    """Whether the record of `message` is created by its first write rather than by the
    router: a self-counted event's (`core.ledger.record_counts`), whose queued records the router
    only lists. Until then the record is absent, and absent means QUEUED."""
    return bool(message.counted_records)


def written_if_absent(
    attrs: dict[str, Any], names: dict[str, str], values: dict[str, Any]
) -> list[str]:
    """SET clauses for the first write of a record nobody put (`claim_creates`): `attrs`
    (typed) where the record has none yet, and `:h` appended to a history that starts
    QUEUED. Adds their names and values to `names` and `values`."""
    values[":h0"] = {"L": [history_entry(NotificationStatus.QUEUED.value)]}
    clauses = ["history = list_append(if_not_exists(history, :h0), :h)"]
    for i, (attr, value) in enumerate(attrs.items()):
        names[f"#c{i}"] = attr
        values[f":c{i}"] = value
        clauses.append(f"#c{i} = if_not_exists(#c{i}, :c{i})")
    return clauses


def history_entry(status: str, detail: str | None = None) -> dict[str, Any]:
    # Masked here, where it is stored, whoever wrote it: provider receipts and errors quote
    # the recipient, and history is shown by GET /events/{id}.
    entry: dict[str, Any] = {"status": {"S": status}, "at": {"S": iso(utcnow())}}
    if detail:
        entry["detail"] = {"S": mask_text(detail)[:HISTORY_DETAIL_MAX]}
    return {"M": entry}


class RecordWrites:
    """The conditional writes of notification records: the one place a record's item,
    its transition and a batch of transitions are written. Composed into each store that
    moves records (creation, claims, outcomes), never subclassed."""

    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days

    def write(self, items: Sequence[dict[str, Any]]) -> None:
        """Write transaction items together: one alone as its plain write (an Update as an
        UpdateItem, at half a transaction's write units, refused as a single write is),
        more as one TransactWriteItems."""
        if len(items) == 1 and "Update" in items[0]:
            self._db.update_item(**items[0]["Update"])
        else:
            self._db.transact_write_items(TransactItems=list(items))

    def item(self, new: NewNotification) -> dict[str, Any]:
        m = new.message
        now = iso(utcnow())
        values = {
            dynamo.PK: dynamo.record_pk(m.event_id, m.recipient_id, m.record_shards),
            dynamo.SK: dynamo.notification_sk(m.channel, m.recipient_id),
            "status": new.status.value,
            "attempts": 0,
            "last_error": new.reason and mask_text(new.reason),
            "updated_at": now,
        }
        if new.deliver_at is not None:  # waiting is not an error: the reason is history only
            values["deliver_at"] = new.deliver_at
            values["last_error"] = None
        item = {**self.immutable(m, now), **dynamo.to_item(values)}
        item["history"] = {"L": [history_entry(new.status.value, new.reason)]}
        return item

    def new_record(self, new: NewNotification, *, old_on_failure: bool = False) -> dict[str, Any]:
        """A transaction's conditional put of a record that must not exist yet (a repeat
        never overwrites a record a worker has moved on); with `old_on_failure`, a refusal
        returns the stored record."""
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": self.item(new),
            "ConditionExpression": "attribute_not_exists(PK)",
        }
        if old_on_failure:
            put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {"Put": put}

    def immutable(self, m: NotificationMessage, created_at: str | None = None) -> dict[str, Any]:
        """A record's attributes that never change after it is created (typed), whoever
        creates it: the router, or the first write of a self-counted record."""
        return dynamo.to_item(
            {
                "notification_id": m.notification_id,
                "event_id": m.event_id,
                "channel": m.channel,
                "recipient_id": m.recipient_id,
                "recipient_masked": ", ".join(mask_address(a) for a in m.addresses) or None,
                "priority": m.priority.value,
                "created_at": created_at or m.created_at,
                dynamo.TTL_ATTRIBUTE: self.expires_at(),
            }
        )

    def expires_at(self) -> int:
        """When a record written now expires (TTL): the retention from now."""
        return int(time.time()) + self._retention_days * 86400

    def statuses(self, messages: Sequence[NotificationMessage]) -> dict[str, str]:
        """Current status per notification id (BatchGetItem, 100 keys a call)."""
        items = dynamo.batch_get(
            self._db,
            self._table,
            [key_of(m) for m in messages],
            consistent=False,
            projection="notification_id, #s",
            names={"#s": "status"},
        )
        return {i["notification_id"]["S"]: i["status"]["S"] for i in items}

    def transition(
        self,
        message: NotificationMessage,
        *,
        sets: dict[str, Any],
        allowed: Sequence[str],
        history: tuple[str, str | None],
        extra_condition: str = "",
        extra_values: dict[str, Any] | None = None,
        add_attempt: bool = False,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """The arguments of one conditional transition (an UpdateItem, or one Update of a
        transaction): from a status in `allowed` (or `extra_condition`), appending history;
        with `owner`, only while that claim holds the record."""
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":now": {"S": iso(utcnow())},
            ":h": {"L": [history_entry(*history)]},
        }
        clauses = ["updated_at = :now"]
        creates = claim_creates(message) and NotificationStatus.QUEUED.value in allowed
        if creates:  # an absent record is QUEUED: this write creates it
            clauses += written_if_absent(self.immutable(message), names, values)
        else:
            clauses.append("history = list_append(history, :h)")
        for i, (attr, value) in enumerate(sets.items()):
            names[f"#a{i}"] = attr
            values[f":a{i}"] = dynamo.to_value(value)
            clauses.append(f"#a{i} = :a{i}")
        allowed_names = []
        for i, status in enumerate(allowed):
            values[f":from{i}"] = {"S": status}
            allowed_names.append(f":from{i}")
        condition = f"#s IN ({', '.join(allowed_names)})"
        if extra_condition:
            condition = f"({condition}) OR ({extra_condition})"
            values.update(extra_values or {})
        if owner is not None:
            names["#owner"] = "lease_owner"
            values[":owner"] = {"S": owner}
            condition = f"({condition}) AND #owner = :owner"
        update = "SET " + ", ".join(clauses)
        if add_attempt:
            update += " ADD attempts :one"
            values[":one"] = {"N": "1"}
        exists = "attribute_not_exists(PK) OR" if creates else "attribute_exists(PK) AND"
        return {
            "TableName": self._table,
            "Key": key_of(message),
            "UpdateExpression": update,
            "ConditionExpression": f"{exists} ({condition})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def update(
        self,
        message: NotificationMessage,
        *,
        returns: bool = False,
        old_on_failure: dict[str, Any] | None = None,
        **transition: Any,
    ) -> dict[str, Any] | None:
        """One conditional transition; None when the status forbade it, else the new item
        (`returns`) or {}. With `old_on_failure` (a dict), a refused transition puts the
        stored item there (empty when there is none), so the caller needs no second read."""
        kwargs = self.transition(message, **transition)
        if old_on_failure is not None:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            resp = self._db.update_item(ReturnValues="ALL_NEW" if returns else "NONE", **kwargs)
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                if old_on_failure is not None and "Item" in exc.response:
                    old_on_failure.update(dynamo.from_item(exc.response["Item"]))
                return None
            raise
        return dynamo.from_item(resp["Attributes"]) if returns else {}

    def transact(self, updates: Sequence[dict[str, Any]]) -> dict[int, tuple[str, dict[str, Any]]]:
        """Apply conditional transitions of distinct records in one TransactWriteItems.

        Returns the refused ones as {index: (reason, stored item)}; every other one
        happened. Only `ConditionalCheckFailed` is a refusal. A transaction is all or
        nothing, so when some are refused the rest are tried again without them. Any other
        cancellation (a conflict with another writer, throttling) or error (a 500, a lost
        answer) is tried again with backoff, up to TRANSACT_ROUNDS, then raised: the
        transitions are conditional, so a repeat of one that was applied is refused, and
        the stored item it returns tells the caller it was its own. A single transition is
        a plain UpdateItem.
        """
        refused: dict[int, tuple[str, dict[str, Any]]] = {}
        pending = list(range(len(updates)))
        rounds = 0
        while pending:
            chunk = pending[:TRANSACT_MAX]
            try:
                if len(chunk) == 1:
                    self._db.update_item(
                        **updates[chunk[0]], ReturnValuesOnConditionCheckFailure="ALL_OLD"
                    )
                else:
                    self._db.transact_write_items(
                        TransactItems=[
                            {
                                "Update": {
                                    **updates[i],
                                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                                }
                            }
                            for i in chunk
                        ]
                    )
            except Exception as exc:
                failed = refused_items(exc, chunk)
                if failed:
                    refused.update(failed)
                    pending = [i for i in pending if i not in failed]
                    continue
                rounds += 1
                aws_errors.back_off_or_raise(exc, rounds, TRANSACT_ROUNDS)
                continue
            pending = pending[len(chunk) :]
        return refused

    @staticmethod
    def sent(provider: str, provider_message_id: str | None) -> dict[str, Any]:
        return {
            "sets": {
                "status": NotificationStatus.SENT.value,
                "provider": provider,
                "provider_message_id": provider_message_id or "",
                "lease_until": 0,
                "last_error": None,  # an earlier attempt's error no longer describes it
            },
            "allowed": [NotificationStatus.SENDING.value],
            "history": (NotificationStatus.SENT.value, provider_message_id),
        }

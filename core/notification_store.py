"""Notification records and their state machine, in the event's partition.

    QUEUED ──claim──▶ SENDING ──▶ SENT ──receipt──▶ DELIVERED | UNDELIVERED | BOUNCED
      ▲                  │  └───▶ FAILED (permanent error or last attempt)
      │                  └──────▶ RETRYING ──claim──▶ SENDING ...
      └── redrive (FAILED → QUEUED)
    SKIPPED (opted out, quiet hours, no contact): created settled, never queued

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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core import aws_errors, dynamo
from core.dynamo import TRANSACT_MAX
from core.masking import mask_address, mask_text
from core.models import EventStatus, NotificationMessage, NotificationStatus, iso, utcnow

log = logging.getLogger("herald.notifications")

HISTORY_DETAIL_MAX = 500
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


# Rounds of a transaction that AWS cancelled for reasons other than a refusal (a conflict
# with another writer, throttling) or answered with an error: tried again with backoff.
TRANSACT_ROUNDS = 8


CHUNK_MAX = TRANSACT_MAX - 1  # records per counted chunk: one slot is the event's tally


@dataclass(frozen=True)
class CountedCreation:
    """What `create_counted` did: records created (and counted) now, and records an
    earlier try had already created and counted, with their current status."""

    created: list[NewNotification]
    existing: dict[str, str]


RECORDED = "recorded"
ALREADY = "already"
LOST = "lost"
# lease_owner of a record failed without ever being claimed (given up on at the receive
# budget): its FAILED outcome is then recognised as ours on a retry.
FAILED_UNCLAIMED = "unclaimed"


@dataclass(frozen=True)
class Outcome:
    """How a send ended, to be recorded with `record_outcomes`: SENT with the provider's
    id, or FAILED with the reason; `token` is the claim's (empty: failed unclaimed)."""

    message: NotificationMessage
    token: str
    status: NotificationStatus
    provider: str = ""
    provider_message_id: str | None = None
    error: str | None = None


def _judge(outcome: Outcome, stored: dict[str, Any]) -> str:
    """A refused outcome: ALREADY when the stored record is this very outcome (an earlier
    try applied it), else LOST."""
    status = stored.get("status")
    owner = stored.get("lease_owner")
    token = outcome.token or FAILED_UNCLAIMED
    if outcome.status is NotificationStatus.SENT:
        done = status in DELIVERED_STATUSES
    else:
        done = status == NotificationStatus.FAILED
    return ALREADY if done and owner == token else LOST


class EventNotFound(Exception):
    """The event item is gone (expired or never recorded): its notifications cannot count."""


def _key(event_id: str, channel: str, recipient_id: str) -> dict[str, Any]:
    return {
        dynamo.PK: {"S": dynamo.event_pk(event_id)},
        dynamo.SK: {"S": dynamo.notification_sk(channel, recipient_id)},
    }


def _key_of(message: NotificationMessage) -> dict[str, Any]:
    return _key(message.event_id, message.channel, message.recipient_id)


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _refused_items(exc: BaseException, chunk: list[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """The items of `chunk` whose condition failed, with their stored item; empty when the
    call failed for any other reason."""
    if not isinstance(exc, ClientError):
        return {}
    if len(chunk) == 1 and _is_condition_failure(exc):
        stored = dynamo.from_item(exc.response.get("Item", {}))
        return {chunk[0]: (aws_errors.REFUSED_REASON, stored)}
    reasons = exc.response.get("CancellationReasons") or []
    if aws_errors.error_code(exc) != aws_errors.CANCELLED:
        return {}
    return {
        chunk[j]: (aws_errors.REFUSED_REASON, dynamo.from_item(r.get("Item", {})))
        for j, r in enumerate(reasons[: len(chunk)])
        if r.get("Code") == aws_errors.REFUSED_REASON
    }


def _history_entry(status: str, detail: str | None = None) -> dict[str, Any]:
    # Masked here, where it is stored, whoever wrote it: provider receipts and errors quote
    # the recipient, and history is shown by GET /events/{id}.
    entry: dict[str, Any] = {"status": {"S": status}, "at": {"S": iso(utcnow())}}
    if detail:
        entry["detail"] = {"S": mask_text(detail)[:HISTORY_DETAIL_MAX]}
    return {"M": entry}


class NotificationStore:
    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days

    # --- creation (router) ---------------------------------------------------------------

    def _item(self, new: NewNotification) -> dict[str, Any]:
        m = new.message
        now = iso(utcnow())
        values = {
            dynamo.PK: dynamo.event_pk(m.event_id),
            dynamo.SK: dynamo.notification_sk(m.channel, m.recipient_id),
            "notification_id": m.notification_id,
            "event_id": m.event_id,
            "channel": m.channel,
            "recipient_id": m.recipient_id,
            "recipient_masked": ", ".join(mask_address(a) for a in m.addresses) or None,
            "priority": m.priority.value,
            "status": new.status.value,
            "attempts": 0,
            "last_error": new.reason and mask_text(new.reason),
            "created_at": now,
            "updated_at": now,
            dynamo.TTL_ATTRIBUTE: int(time.time()) + self._retention_days * 86400,
        }
        item = dynamo.to_item(values)
        item["history"] = {"L": [_history_entry(new.status.value, new.reason)]}
        return item

    def create(self, notifications: Sequence[NewNotification]) -> list[NewNotification]:
        """Create records that do not exist yet; returns those created now.

        One TransactWriteItems per 100 records; when any already exists (a redelivered
        router message) the transaction is cancelled and that chunk falls back to one
        conditional put per record, so nothing is created twice.
        """
        created: list[NewNotification] = []
        for start in range(0, len(notifications), TRANSACT_MAX):
            chunk = list(notifications[start : start + TRANSACT_MAX])
            if self._create_all(chunk):
                created.extend(chunk)
            else:
                created.extend(n for n in chunk if self._create_one(n))
        return created

    def _create_all(self, chunk: list[NewNotification]) -> bool:
        if len(chunk) == 1:
            return self._create_one(chunk[0])
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._item(n),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    }
                    for n in chunk
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise
        return True

    def _create_one(self, new: NewNotification) -> bool:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self._item(new),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def statuses(self, messages: Sequence[NotificationMessage]) -> dict[str, str]:
        """Current status per notification id (BatchGetItem, 100 keys a call)."""
        out: dict[str, str] = {}
        keys = [_key_of(m) for m in messages]
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": keys[start : start + 100],
                    "ProjectionExpression": "notification_id, #s",
                    "ExpressionAttributeNames": {"#s": "status"},
                }
            }
            rounds = 0
            while request:
                resp = self._db.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self._table, []):
                    out[item["notification_id"]["S"]] = item["status"]["S"]
                request = resp.get("UnprocessedKeys") or {}
                if request:  # throttled keys: back off, as AWS asks, rather than spin
                    rounds += 1
                    if rounds >= TRANSACT_ROUNDS:
                        raise ClientError(
                            {"Error": {"Code": "ThrottlingException", "Message": "unprocessed"}},
                            "BatchGetItem",
                        )
                    time.sleep(aws_errors.jittered(rounds - 1, 0.05, 2.0))
        return out

    # --- transitions (workers) -----------------------------------------------------------

    def _transition(
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
            ":h": {"L": [_history_entry(*history)]},
        }
        clauses = ["updated_at = :now", "history = list_append(history, :h)"]
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
        return {
            "TableName": self._table,
            "Key": _key_of(message),
            "UpdateExpression": update,
            "ConditionExpression": f"attribute_exists(PK) AND ({condition})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def _update(
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
        kwargs = self._transition(message, **transition)
        if old_on_failure is not None:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            resp = self._db.update_item(ReturnValues="ALL_NEW" if returns else "NONE", **kwargs)
        except ClientError as exc:
            if _is_condition_failure(exc):
                if old_on_failure is not None and "Item" in exc.response:
                    old_on_failure.update(dynamo.from_item(exc.response["Item"]))
                return None
            raise
        return dynamo.from_item(resp["Attributes"]) if returns else {}

    def _transact(self, updates: Sequence[dict[str, Any]]) -> dict[int, tuple[str, dict[str, Any]]]:
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
                failed = _refused_items(exc, chunk)
                if failed:
                    refused.update(failed)
                    pending = [i for i in pending if i not in failed]
                    continue
                rounds += 1
                if not aws_errors.is_retryable(exc) or rounds >= TRANSACT_ROUNDS:
                    raise
                time.sleep(aws_errors.jittered(rounds - 1, 0.05, 2.0))
                continue
            pending = pending[len(chunk) :]
        return refused

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
                Key=_key_of(message),
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
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def attempts_of(self, message: NotificationMessage) -> int:
        resp = self._db.get_item(
            TableName=self._table,
            Key=_key_of(message),
            ProjectionExpression="attempts",
            ConsistentRead=True,
        )
        return int(resp.get("Item", {}).get("attempts", {}).get("N", "1"))

    def status_of(self, message: NotificationMessage) -> str | None:
        resp = self._db.get_item(
            TableName=self._table,
            Key=_key_of(message),
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return None if item is None else str(item["status"]["S"])

    @staticmethod
    def _sent(provider: str, provider_message_id: str | None) -> dict[str, Any]:
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

    def fail_stranded(self, event_id: str, sort_key: str, reason: str) -> bool:
        """The reconciler gives up on a record whose message is lost for good: FAILED with
        the reason, from any unsettled status (the event is then settled from its records)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={dynamo.PK: {"S": dynamo.event_pk(event_id)}, dynamo.SK: {"S": sort_key}},
                UpdateExpression="SET #s = :failed, last_error = :reason, updated_at = :now, "
                "lease_until = :zero, history = list_append(history, :h)",
                ConditionExpression="#s IN (:queued, :retrying, :sending)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": NotificationStatus.FAILED.value},
                    ":reason": {"S": reason},
                    ":now": {"S": iso(utcnow())},
                    ":zero": {"N": "0"},
                    ":h": {"L": [_history_entry(NotificationStatus.FAILED.value, reason)]},
                    ":queued": {"S": NotificationStatus.QUEUED.value},
                    ":retrying": {"S": NotificationStatus.RETRYING.value},
                    ":sending": {"S": NotificationStatus.SENDING.value},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
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
        try:
            self._db.update_item(
                TableName=self._table,
                **self.receipt_update(event_id, channel, recipient_id, status, detail),
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    # --- outcomes: a status and its count in one transaction (workers) -------------------

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> list[str]:
        """Mark each notification SENT or FAILED and count it on its event, atomically.

        One TransactWriteItems holds each outcome's conditional transition (only from
        SENDING under the outcome's claim token, or for a FAILED without a claim from
        QUEUED|RETRYING) and one counter update per event. The condition makes the pair
        idempotent: if the answer is lost and the transaction is tried again, every
        transition of it is refused, so nothing is counted twice; a refused transition whose
        stored record shows this outcome under this token was our own earlier try. Returns
        per outcome RECORDED (applied now), ALREADY (applied by an earlier try) or LOST (the
        record moved on: another claim holds it now, and that worker records it).
        Conflicts with other writers of the event item and throttling are retried with
        backoff (TRANSACT_ROUNDS), then raised.
        """
        results = [""] * len(outcomes)
        pending = list(range(len(outcomes)))
        rounds = 0
        while pending:
            chunk: list[int] = []
            events: set[str] = set()
            for i in pending:
                event_id = outcomes[i].message.event_id
                if len(chunk) + len(events | {event_id}) > TRANSACT_MAX:
                    break
                chunk.append(i)
                events.add(event_id)
            items = [
                {
                    "Update": {
                        **self._outcome_update(outcomes[i]),
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
                for i in chunk
            ]
            items += [
                {"Update": self._count_update(event_id, [outcomes[i] for i in chunk])}
                for event_id in sorted(events)
            ]
            try:
                self._db.transact_write_items(TransactItems=items)
            except Exception as exc:
                refused = _refused_items(exc, list(range(len(items))))
                if any(j >= len(chunk) for j in refused):
                    raise EventNotFound(outcomes[chunk[0]].message.event_id) from exc
                if refused:
                    for j, (_, stored) in refused.items():
                        results[chunk[j]] = _judge(outcomes[chunk[j]], stored)
                    pending = [i for i in pending if not results[i]]
                    continue
                rounds += 1
                if not aws_errors.is_retryable(exc) or rounds >= TRANSACT_ROUNDS:
                    raise
                time.sleep(aws_errors.jittered(rounds - 1, 0.05, 2.0))
                continue
            for i in chunk:
                results[i] = RECORDED
            pending = [i for i in pending if not results[i]]
        return results

    def _outcome_update(self, outcome: Outcome) -> dict[str, Any]:
        if outcome.status is NotificationStatus.SENT:
            return self._transition(
                outcome.message,
                owner=outcome.token,
                **self._sent(outcome.provider, outcome.provider_message_id),
            )
        error = mask_text(outcome.error or "failed")
        sets = {"status": NotificationStatus.FAILED.value, "last_error": error, "lease_until": 0}
        if outcome.token:
            return self._transition(
                outcome.message,
                owner=outcome.token,
                sets=sets,
                allowed=[NotificationStatus.SENDING.value],
                history=(NotificationStatus.FAILED.value, error),
            )
        return self._transition(
            outcome.message,
            sets={**sets, "lease_owner": FAILED_UNCLAIMED},
            allowed=[s.value for s in CLAIMABLE],
            history=(NotificationStatus.FAILED.value, error),
        )

    def _count_update(self, event_id: str, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        mine = [o for o in outcomes if o.message.event_id == event_id]
        adds = {
            "sent": sum(o.status is NotificationStatus.SENT for o in mine),
            "failed": sum(o.status is NotificationStatus.FAILED for o in mine),
        }
        present = [k for k, v in adds.items() if v]
        return {
            "TableName": self._table,
            "Key": {dynamo.PK: {"S": dynamo.event_pk(event_id)}, dynamo.SK: {"S": dynamo.EVENT_SK}},
            "UpdateExpression": "SET updated_at = :now ADD "
            + ", ".join(f"counts.#{k} :{k}" for k in present),
            "ConditionExpression": "attribute_exists(PK)",
            "ExpressionAttributeNames": {f"#{k}": k for k in present},
            "ExpressionAttributeValues": {
                ":now": {"S": iso(utcnow())},
                **{f":{k}": {"N": str(adds[k])} for k in present},
            },
        }

    def settle_events(self, event_ids: Sequence[str]) -> dict[str, EventStatus]:
        """Settle each event whose tally is complete (after outcomes were counted: the
        counting transaction returns no values, so the tally is read back, consistently,
        by whoever counted last). Returns the events this call settled."""
        settled: dict[str, EventStatus] = {}
        for event_id in event_ids:
            resp = aws_errors.retry(
                lambda event_id=event_id: self._db.get_item(  # type: ignore[misc]
                    TableName=self._table,
                    Key={
                        dynamo.PK: {"S": dynamo.event_pk(event_id)},
                        dynamo.SK: {"S": dynamo.EVENT_SK},
                    },
                    ProjectionExpression="PK, event_id, counts, fanout_complete, #s",
                    ExpressionAttributeNames={"#s": "status"},
                    ConsistentRead=True,
                )
            )
            if "Item" not in resp:
                continue
            final = aws_errors.retry(
                lambda item=resp["Item"]: self._settle_event(dynamo.from_item(item))  # type: ignore[misc]
            )
            if final is not None:
                settled[event_id] = final
        return settled

    def receipt_update(
        self,
        event_id: str,
        channel: str,
        recipient_id: str,
        status: NotificationStatus,
        detail: str | None,
    ) -> dict[str, Any]:
        """The conditional update of a receipt, also as the Update of a transaction
        (`core.receipts` pairs it with the receipt's seen-id)."""
        return {
            "Key": _key(event_id, channel, recipient_id),
            "UpdateExpression": "SET #s = :new, updated_at = :now, "
            "history = list_append(history, :h)",
            "ConditionExpression": "attribute_exists(PK) AND #s IN (:sent, :delivered)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":new": {"S": status.value},
                ":now": {"S": iso(utcnow())},
                ":h": {"L": [_history_entry(status.value, detail)]},
                ":sent": {"S": NotificationStatus.SENT.value},
                ":delivered": {"S": NotificationStatus.DELIVERED.value},
            },
        }

    # --- the event's tally ---------------------------------------------------------------

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
            if _is_condition_failure(exc):
                return None
            raise
        return final

    # --- counted creation and fan-out bookkeeping (router) ------------------------------

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
            if not _is_condition_failure(exc):
                raise

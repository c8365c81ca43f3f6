"""Absorbing events into digests and closing them, each with conditional writes.

An event joins a digest in one transaction of two conditional writes: the digest item's
(open, in its window, not full, and at the version the absorber read) and the event item's
move to `DIGESTED` (from `START` or `PROCESSING`, and not the event that opened a leading
window). The event's own status is the membership test keyed by its id: a redelivered or
retried event finds itself `DIGESTED` and joins nothing twice, with no list of ids on the
digest to outgrow the item. Two absorbers of one digest race on its version: one wins, the
other reads again and goes on top. The first event of a window creates the item with a
condition that it is absent, so of two routers opening one window one creates it and the
other is refused, reads it and joins it.

Closing is one conditional update, `OPEN → CLOSED`, that returns the item as closed: what
the digest sends is exactly what it held when it closed, and any absorb after that is
refused by its condition and opens the next generation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.event_types import Digest
from core.catalogue.models import Event, EventStatus, iso, utcnow
from core.digests.items import (
    CLOSED,
    OPEN,
    SK_PREFIX,
    DigestHead,
    digest_pk,
    generation_sk,
    head_from_item,
    items_json,
    new_head,
)
from core.directory.subscriptions import StoreBusy
from core.ledger import event_index
from core.ledger.notification_records import closed_or_missing

log = logging.getLogger("herald.digests")

# Reads and tries per absorb: each lost race is another absorber's success, so under any
# contention one of every few tries goes through.
ABSORB_ATTEMPTS = 25
# The event item's attribute that marks it as the event that opened a leading window
# (sent at once, never absorbed).
LEADS = "digest_lead"

Outcome = Literal["absorbed", "already", "lead"]


@dataclass(frozen=True)
class Absorption:
    """What `absorb` did: `absorbed` (the event joined `head`, as it now is), `already`
    (an earlier try absorbed it: `digest_event_id` names where), `lead` (it opens a leading
    window: route it as usual). `opened`: this call created the generation."""

    outcome: Outcome
    head: DigestHead | None
    digest_event_id: str | None = None
    opened: bool = False


class DigestBusy(StoreBusy):
    """Every try lost a race or met a conflict; the router tries the message again later,
    as for any store that is busy."""


class DigestStore:
    """The digest items of one table and the event writes that absorb events into them."""

    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days

    def newest(self, pk: str) -> DigestHead | None:
        """The newest generation of a digest, read consistently (one Query)."""
        resp = aws_errors.retry(
            lambda: self._db.query(
                TableName=self._table,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :g)",
                ExpressionAttributeValues={":pk": {"S": pk}, ":g": {"S": SK_PREFIX}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        )
        items = resp.get("Items") or []
        return head_from_item(items[0]) if items else None

    def get(self, ref: str) -> DigestHead | None:
        pk, generation = parse_ref(ref)
        resp = aws_errors.retry(
            lambda: self._db.get_item(
                TableName=self._table,
                Key={dynamo.PK: {"S": pk}, dynamo.SK: {"S": generation_sk(generation)}},
                ConsistentRead=True,
            )
        )
        item = resp.get("Item")
        return head_from_item(item) if item else None

    def absorb(
        self, event: Event, spec: Digest, before_open: Callable[[DigestHead], None]
    ) -> Absorption:
        """Absorb `event` into its digest's open generation, or open the next one.

        `before_open(head)` runs before a generation is created (the caller schedules its
        close there: scheduled first, a crash cannot leave an open digest nothing closes; a
        close scheduled for a generation someone else created finds it and does nothing
        early). Raises `EventClosed` / `EventNotFound` for an event that settled or is
        gone, `DigestBusy` when every try lost a race."""
        pk = digest_pk(event, spec)
        for attempt in range(ABSORB_ATTEMPTS):
            if attempt:
                time.sleep(aws_errors.jittered(attempt - 1, 0.02, 0.5))
            head = self.newest(pk)
            if head is not None and head.leading_event_id == event.event_id:
                return Absorption("lead", head)
            opening = head is None or not head.accepts(event)
            if opening:
                generation = 0 if head is None else head.generation + 1
                after = new_head(event, spec, pk, generation)
                before_open(after)
                write = self._create(after)
            else:
                assert head is not None
                after = head.with_event(event)
                write = self._join(head, after)
            lead = after.leading_event_id == event.event_id
            try:
                self._db.transact_write_items(
                    TransactItems=[write, self._event_update(event.event_id, after, lead)]
                )
            except ClientError as exc:
                refused = aws_errors.refused_items(exc)
                if 1 in refused:
                    return self._with_head(pk, self._settled(event.event_id, refused[1]))
                if 0 in refused or aws_errors.is_retryable(exc):
                    continue  # another absorber won the item, or a conflict: read again
                raise
            if lead:
                return Absorption("lead", after, opened=True)
            return Absorption("absorbed", after, after.digest_event_id, opened=opening)
        raise DigestBusy(f"digest {pk}: {ABSORB_ATTEMPTS} tries lost a race")

    def close(self, ref: str, reason: str) -> DigestHead | None:
        """`OPEN → CLOSED` with the reason; the digest as it closed (or as an earlier close
        left it), or None when there is no such digest."""
        pk, generation = parse_ref(ref)

        def call() -> dict[str, Any]:
            try:
                resp = self._db.update_item(
                    TableName=self._table,
                    Key={dynamo.PK: {"S": pk}, dynamo.SK: {"S": generation_sk(generation)}},
                    UpdateExpression="SET #s = :closed, closed_at = :now, close_reason = :why",
                    ConditionExpression="#s = :open",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":closed": {"S": CLOSED},
                        ":open": {"S": OPEN},
                        ":now": {"S": iso(utcnow())},
                        ":why": {"S": reason},
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return dict(resp.get("Attributes") or {})
            except ClientError as exc:
                if aws_errors.is_refusal(exc):
                    return dict(exc.response.get("Item") or {})
                raise

        item = aws_errors.retry(call)
        return head_from_item(item) if item else None

    def _create(self, head: DigestHead) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": head.to_item(self._retention_days),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def _join(self, head: DigestHead, after: DigestHead) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": {dynamo.PK: {"S": head.pk}, dynamo.SK: {"S": head.sk}},
                "UpdateExpression": (
                    "SET version = :new, #c = :count, actors = :actors, items_json = :items, "
                    "first_at = :first, last_at = :last"
                ),
                "ConditionExpression": "#s = :open AND version = :seen",
                "ExpressionAttributeNames": {"#s": "status", "#c": "count"},
                "ExpressionAttributeValues": {
                    ":new": {"N": str(after.version)},
                    ":seen": {"N": str(head.version)},
                    ":count": {"N": str(after.count)},
                    ":actors": dynamo.to_value(list(after.actors)),
                    ":items": {"S": items_json(after.items)},
                    ":first": {"S": after.first_at or ""},
                    ":last": {"S": after.last_at or ""},
                    ":open": {"S": OPEN},
                },
            }
        }

    def _event_update(self, event_id: str, head: DigestHead, lead: bool) -> dict[str, Any]:
        """The event's side: marked as a leading window's opener, or `DIGESTED` naming the
        digest's event; either only from START or PROCESSING, and never an opener."""
        values: dict[str, Any] = {
            ":start": {"S": EventStatus.START.value},
            ":processing": {"S": EventStatus.PROCESSING.value},
            ":now": {"S": iso(utcnow())},
        }
        if lead:
            update = f"SET {LEADS} = :ref, updated_at = :now"
            values[":ref"] = {"S": head.ref}
        else:
            sets = [
                "#s = :digested",
                "digest_event_id = :digest",
                "reason = :reason",
                "updated_at = :now",
            ]
            update, index_values = event_index.update_expression(
                sets, event_id, EventStatus.DIGESTED
            )
            values.update(index_values)
            values[":digested"] = {"S": EventStatus.DIGESTED.value}
            values[":digest"] = {"S": head.digest_event_id}
            values[":reason"] = {"S": f"digested: sent with event {head.digest_event_id}"}
        return {
            "Update": {
                "TableName": self._table,
                "Key": dynamo.event_key(event_id),
                "UpdateExpression": update,
                "ConditionExpression": (
                    f"#s IN (:start, :processing) AND attribute_not_exists({LEADS})"
                ),
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _with_head(self, pk: str, found: Absorption) -> Absorption:
        """An event absorbed by an earlier try (its answer lost, or a redelivery), with the
        digest it joined when that is still the newest generation: the try that filled it
        may have ended before its early close, which the caller then makes."""
        if found.outcome != "already":
            return found
        head = self.newest(pk)
        if head is None or head.digest_event_id != found.digest_event_id:
            return found
        return Absorption("already", head, found.digest_event_id)

    def _settled(self, event_id: str, stored_item: dict[str, Any]) -> Absorption:
        """What the event's refused condition means: absorbed before, a window's opener, or
        an event that is closed or gone (raised)."""
        stored = dynamo.from_item(stored_item)
        if stored.get("status") == EventStatus.DIGESTED.value:
            return Absorption("already", None, str(stored.get("digest_event_id") or ""))
        if stored.get(LEADS) and stored.get("status") in (
            EventStatus.START.value,
            EventStatus.PROCESSING.value,
        ):
            return Absorption("lead", None)
        raise closed_or_missing(event_id, stored)


def parse_ref(ref: str) -> tuple[str, int]:
    """(pk, generation) of a digest's ref, `<pk>/<generation>`; ValueError otherwise."""
    pk, _, generation = ref.rpartition("/")
    if not pk.startswith("DIGEST#") or not generation.isdigit():
        raise ValueError(f"not a digest reference: {ref!r}")
    return pk, int(generation)

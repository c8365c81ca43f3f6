"""A send's outcome and its count, written in one conditional transaction.

See `OutcomeRecords.record_outcomes`: the record's SENDING → SENT|FAILED under the claim's
token and the event's count go together, so a repeat after a lost answer is refused as a
whole and recognised by its token; nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.aws import errors as aws_errors
from core.aws.dynamo import TRANSACT_MAX, TRANSACT_ROUNDS
from core.catalogue.models import NotificationMessage, NotificationStatus
from core.ledger.event_tally import EventTally, tally_shard
from core.ledger.notification_records import (
    CLAIMABLE,
    DELIVERED_STATUSES,
    EventNotFound,
    RecordWrites,
    refused_items,
)
from core.platform.masking import mask_text

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


def judge(outcome: Outcome, stored: dict[str, Any]) -> str:
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


class OutcomeRecords:
    """The workers' outcomes: each record's last transition with its count."""

    def __init__(self, records: RecordWrites, tally: EventTally) -> None:
        self._records = records
        self._tally = tally

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> list[str]:
        """Mark each notification SENT or FAILED and count it on its event, atomically.

        One TransactWriteItems holds each outcome's conditional transition (only from
        SENDING under the outcome's claim token, or for a FAILED without a claim from
        QUEUED|RETRYING) and one counter update per event. An event counted from its
        records (`core.ledger.record_counts`) has no counter: each of its outcomes is a
        conditional UpdateItem of its own (one write unit where a transaction's item costs
        two; DynamoDB bills units, not requests). The condition makes the pair
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
            # Each event's outcomes in this transaction count on one tally shard, the
            # shard of its first outcome here (any outcome shard will do: readers sum
            # them, and a repeat is refused by the records' conditions whichever shard it
            # names; never shard 0 of a sharded tally, `tally_shard`).
            tallies: dict[str, int] = {}
            for i in pending:
                message = outcomes[i].message
                if message.counted_records:
                    # A self-counted event's records are its counts: nothing to keep in
                    # step, and a write of its own costs half a transaction's units.
                    if not chunk:
                        chunk.append(i)
                        break
                    continue
                counter = message.event_id not in tallies
                if len(chunk) + len(tallies) + counter > TRANSACT_MAX:
                    break
                chunk.append(i)
                if counter:
                    tallies[message.event_id] = tally_shard(message)
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
                {"Update": self._count_update(event_id, shard, [outcomes[i] for i in chunk])}
                for event_id, shard in sorted(tallies.items())
            ]
            try:
                self._records.write(items)  # an outcome with no counter: one write, not 2x
            except Exception as exc:
                refused = refused_items(exc, list(range(len(items))))
                if any(j >= len(chunk) for j in refused):
                    raise EventNotFound(outcomes[chunk[0]].message.event_id) from exc
                if refused:
                    for j, (_, stored) in refused.items():
                        results[chunk[j]] = judge(outcomes[chunk[j]], stored)
                    pending = [i for i in pending if not results[i]]
                    continue
                rounds += 1
                aws_errors.back_off_or_raise(exc, rounds, TRANSACT_ROUNDS)
                continue
            for i in chunk:
                results[i] = RECORDED
            pending = [i for i in pending if not results[i]]
        return results

    def _outcome_update(self, outcome: Outcome) -> dict[str, Any]:
        if outcome.status is NotificationStatus.SENT:
            return self._records.transition(
                outcome.message,
                owner=outcome.token,
                **self._records.sent(outcome.provider, outcome.provider_message_id),
            )
        error = mask_text(outcome.error or "failed")
        sets = {"status": NotificationStatus.FAILED.value, "last_error": error, "lease_until": 0}
        if outcome.token:
            return self._records.transition(
                outcome.message,
                owner=outcome.token,
                sets=sets,
                allowed=[NotificationStatus.SENDING.value],
                history=(NotificationStatus.FAILED.value, error),
            )
        return self._records.transition(
            outcome.message,
            sets={**sets, "lease_owner": FAILED_UNCLAIMED},
            allowed=[s.value for s in CLAIMABLE],
            history=(NotificationStatus.FAILED.value, error),
        )

    def _count_update(
        self, event_id: str, shard: int, outcomes: Sequence[Outcome]
    ) -> dict[str, Any]:
        mine = [o for o in outcomes if o.message.event_id == event_id]
        adds = {
            "sent": sum(o.status is NotificationStatus.SENT for o in mine),
            "failed": sum(o.status is NotificationStatus.FAILED for o in mine),
        }
        return self._tally.update(event_id, adds, shard=shard)

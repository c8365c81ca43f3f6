"""An event small enough to be counted from its records instead of a running tally.

A user's event (a few channels of one person, or a short inline on-call list) has its
records on its own partition and at most `SELF_COUNTED_MAX` of them. Counting each outcome
on the tally would add a transactional counter update (two write units) to every
notification, the largest single share of what an activity notification costs. Such an
event instead lists its records' sort keys when they are created (`COUNTED_RECORDS`, in
the same transaction as the records), the outcomes write only the
records, and whoever reads the tally reads the listed records too and counts their
statuses: one more BatchGetItem per read, for any number of events.

Settling stays correct without the counter: every worker writes its outcome and then reads
the records consistently, and strongly consistent reads see every write that completed
before them, so the worker whose outcome completes last sees them all settled and settles
the event (a conditional write, once). Anything missed is the reconciler's, which settles
from the records anyway.

A topic's fan-out (thousands of records on 32 partitions) keeps the sharded tally.

The list is written when the event is routed (a repeated routing writes the same list),
so it rides on the event item itself, in the write that moves the event to PROCESSING
(`LISTED_ON_EVENT`): a tally item beside it would be a second item in the routing
transaction, two more write units per event for nothing a counter needs. Readers merge the
two (`with_event`): the list and fan-out completion from the event, any counts a tally
item holds (a replayed dead letter's correction, the router's completion mark) from it.

The router does not create such an event's queued records either: it lists them, and the
first write of each (a worker's claim, or whoever fails it unclaimed) creates it
(`core.ledger.notification_records.claim_creates`). That saves the record's creation, two write
units of the five a notification cost. Until then a listed record is absent, and every
reader takes absent for QUEUED since the event was routed (`absent_records`): the API shows
it queued, the reconciler finds it stranded when no claim comes, and it counts as still
moving.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.aws import dynamo
from core.catalogue.models import SELF_COUNTED_MAX, NotificationStatus, iso, notification_id, utcnow

__all__ = ["SELF_COUNTED_MAX"]  # the list rides on the tally and on each message

# The tally's attribute listing the records (their sort keys) that are its counts.
COUNTED_RECORDS = "counted_records"
# ... and their masked recipients, which a record no claim has written yet cannot show.
MASKED_RECIPIENTS = "recipients_masked"
# When the list was written (the event routed): the time a listed, absent record is QUEUED
# since, which the event item's own `updated_at` (changed when it settles) cannot tell.
ROUTED_AT = "routed_at"
# The event item's attributes that hold a self-counted event's tally.
LISTED_ON_EVENT = (COUNTED_RECORDS, MASKED_RECIPIENTS, ROUTED_AT, "fanout_complete")
# Marks a record that `absent_records` stands in for: listed, not written yet.
ABSENT = "absent"

# What each settled status counts as; any other status is still moving.
SETTLED_BUCKETS = {
    "SENT": "sent",
    "DELIVERED": "sent",
    "UNDELIVERED": "sent",
    "BOUNCED": "sent",
    "FAILED": "failed",
    "SKIPPED": "skipped",
    # Final and never sent; only a cancelled event has them (it is CANCELLED itself).
    "CANCELLED": "skipped",
}


def absent_records(
    event_id: str,
    tally: Mapping[str, Any],
    present: Iterable[str],
    after: str | None = None,
    upto: str | None = None,
) -> list[dict[str, Any]]:
    """The records `tally` (plain) lists that are not among `present` (sort keys), as
    their readers see them: QUEUED since the tally was written (when the event was routed),
    in sort-key order; with `after` / `upto`, only those with sort keys in that range."""
    seen = set(present)
    since = str(tally.get("updated_at") or "")
    masked = tally.get(MASKED_RECIPIENTS) or {}
    out = []
    for sk in sorted(tally.get(COUNTED_RECORDS) or ()):
        if sk in seen or (after is not None and sk <= after) or (upto is not None and sk > upto):
            continue
        _, channel, recipient = sk.split("#", 2)
        out.append(
            {
                dynamo.PK: dynamo.event_pk(event_id),
                dynamo.SK: sk,
                "notification_id": notification_id(event_id, channel, recipient),
                "event_id": event_id,
                "channel": channel,
                "recipient_id": recipient,
                "recipient_masked": masked.get(sk),
                "status": NotificationStatus.QUEUED.value,
                "attempts": 0,
                "history": [],
                "created_at": since,
                "updated_at": since,
                ABSENT: True,
            }
        )
    return out


def with_event(tally: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """The tally (plain; {} when the event has no tally item) merged with what the event
    item (plain) holds of a self-counted event's tally: its records listed (the union, if
    both list some: a record either names may be written and must be counted), their
    masked recipients, fan-out completion, and the routing time as the tally's time when
    the tally item has none. An event item without a list leaves the tally as it is."""
    listed = set(event.get(COUNTED_RECORDS) or ())
    if not listed:
        return dict(tally)
    out = dict(tally)
    out["event_id"] = str(event.get("event_id") or tally.get("event_id") or "")
    out[COUNTED_RECORDS] = sorted(listed | set(tally.get(COUNTED_RECORDS) or ()))
    masked = {**(event.get(MASKED_RECIPIENTS) or {}), **(tally.get(MASKED_RECIPIENTS) or {})}
    if masked:
        out[MASKED_RECIPIENTS] = masked
    if event.get("fanout_complete"):
        out["fanout_complete"] = True
    times = [str(t) for t in (tally.get("updated_at"), event.get(ROUTED_AT)) if t]
    if times:
        out["updated_at"] = max(times)
    return out


def list_expression(listed: Mapping[str, str]) -> tuple[list[str], dict[str, Any]]:
    """The SET clauses and values that write a self-counted event's list (sort key ->
    masked recipient) on its event item, with fan-out complete: the list is its whole
    plan."""
    sets = [
        f"{COUNTED_RECORDS} = :counted_records",
        f"{ROUTED_AT} = :routed_at",
        "fanout_complete = :complete",
    ]
    values: dict[str, Any] = {
        ":counted_records": counted_records_value(listed),
        ":routed_at": {"S": iso(utcnow())},
        ":complete": {"BOOL": True},
    }
    masked = {k: {"S": v} for k, v in listed.items() if v}
    if masked:
        sets.append(f"{MASKED_RECIPIENTS} = :masked")
        values[":masked"] = {"M": masked}
    return sets, values


def counted_records_value(sort_keys: Iterable[str]) -> dict[str, Any]:
    """The typed value of `COUNTED_RECORDS` (a string set)."""
    return {"SS": sorted(set(sort_keys))}


def counts_of(statuses: Sequence[str | None]) -> dict[str, int]:
    """Counts of records by their statuses (None: a listed record not found, which counts
    as still moving, in `total` only)."""
    counts = {"total": len(statuses), "sent": 0, "failed": 0, "skipped": 0}
    for status in statuses:
        bucket = SETTLED_BUCKETS.get(str(status))
        if bucket is not None:
            counts[bucket] += 1
    return counts


def apply(tally: dict[str, Any], records: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The tally (plain values) with its counts taken from `records` (plain, by sort key):
    the counts, and the latest `updated_at` of the tally and its records, so that a reader
    judging whether the event still moves sees its outcomes."""
    found = [records.get(sk) for sk in sorted(tally.get(COUNTED_RECORDS) or ())]
    out = dict(tally)
    out.update(counts_of([r.get("status") if r else None for r in found]))
    times = [str(i["updated_at"]) for i in [tally, *filter(None, found)] if i.get("updated_at")]
    if times:
        out["updated_at"] = max(times)
    return out


def _read(
    db: Any, table: str, wanted: Mapping[str, Iterable[str]], *, consistent: bool
) -> dict[str, dict[str, dict[str, Any]]]:
    """The records `wanted[event id]` (sort keys) that exist, plain, by event and sort key:
    status and `updated_at` only, in one BatchGetItem per hundred."""
    keys = [
        {dynamo.PK: {"S": dynamo.event_pk(e)}, dynamo.SK: {"S": sk}}
        for e, sort_keys in wanted.items()
        for sk in sort_keys
    ]
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for item in dynamo.batch_get(
        db,
        table,
        keys,
        consistent=consistent,
        projection="PK, SK, #s, updated_at",
        names={"#s": "status"},
    ):
        event_id = item[dynamo.PK]["S"].removeprefix("EVENT#")
        found.setdefault(event_id, {})[item[dynamo.SK]["S"]] = dynamo.from_item(item)
    return found


def settling_tallies(
    db: Any,
    table: str,
    listed: Mapping[str, Sequence[str]],
    known: Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str, Any]]:
    """What a worker that has just recorded outcomes of self-counted events needs to settle
    them: a tally per event made from its records, read consistently, but for those whose
    status the worker knows (`known[event][sort key]`, its own outcomes). The listed
    records are the event's whole fan-out, so no tally item is read: all of them settled
    is the event complete."""
    unknown = {e: [sk for sk in sks if sk not in known.get(e, {})] for e, sks in listed.items()}
    read = _read(db, table, unknown, consistent=True)
    out = {}
    for e, sort_keys in listed.items():
        records = {sk: {"status": status} for sk, status in known.get(e, {}).items()}
        records.update(read.get(e, {}))
        tally = {"event_id": e, "fanout_complete": True, COUNTED_RECORDS: list(sort_keys)}
        out[e] = apply(tally, records)
    return out


def read_and_apply(
    db: Any, table: str, tallies: dict[str, dict[str, Any]], *, consistent: bool
) -> None:
    """Replace, in place, the counts of every tally (by event id) that lists its records,
    from those records."""
    listed = {e: t for e, t in tallies.items() if t.get(COUNTED_RECORDS)}
    if not listed:
        return
    read = _read(
        db, table, {e: t[COUNTED_RECORDS] for e, t in listed.items()}, consistent=consistent
    )
    for event_id, tally in listed.items():
        tallies[event_id] = apply(tally, read.get(event_id, {}))

"""The invariant checker behind `herald audit`: for the events created in a time range,
does every event's status agree with its tally and its records, and do the records agree
with what the providers received?

Herald keeps three accounts of one event that must never tell different stories: the
event's status, its tally (the counts the API shows and settling reads), and its
notification records (the source of truth). A fourth is outside Herald: what the provider
took. Each check below is a guarantee docs/design.md states; a disagreement names the
event and what disagrees, so an operator (or a chaos scenario) finds the broken one
instead of a total that is off by one.

- tally: total, sent, failed and skipped equal the counts of the records' statuses;
- SUCCESS: the fan-out is complete, every record settled, none FAILED;
- FAILED: nothing is still queued, sending or retrying (a FAILED event must not go on
  sending), and a complete fan-out that made records has at least one FAILED
  (an event-level failure, such as an unknown user or a given-up fan-out, may have none);
- START or PROCESSING: not every record settled with the fan-out complete (then it
  should have settled), and, given `stuck_seconds`, not left unchanged (the event and
  every record) for that long: the reconciler would have republished, repaired or given
  up by then. An open event changed within `moving_seconds` is not judged at all: its
  records, tally and status are being written while they are read;
- with the provider's messages: a record in a sent status (SENT, DELIVERED, ...) was
  accepted by its provider at least once; a FAILED or SKIPPED one never was; and every
  message a provider accepted for one of the events is one of its records.

Sending twice is not a disagreement here: the at-least-once window (a worker that dies
between the provider's answer and its SENT write) is documented, and the chaos accounting
tells a duplicate inside it from one beyond it.

Reads: the day index's shards for the range (keys only), then each event's partition
(`EventReads.get`), never a Scan; `max_events` bounds a run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.aws import dynamo
from core.catalogue.models import EventRecord, EventStatus, iso
from core.ledger import event_index
from core.ledger.event_reads import EventReads
from core.ledger.record_counts import SETTLED_BUCKETS, counts_of

SENT_STATUSES = frozenset(s for s, bucket in SETTLED_BUCKETS.items() if bucket == "sent")
NEVER_SENT_STATUSES = frozenset({"FAILED", "SKIPPED"})
# Which channels each sandboxed provider carries: a channel is held to the provider's
# account only when the provider's messages are given (push goes to SNS, not a provider).
PROVIDER_CHANNELS: dict[str, tuple[str, ...]] = {
    "twilio": ("sms", "whatsapp"),
    "sendgrid": ("email",),
    "slack": ("chat",),
    "teams": ("chat",),
}
ALWAYS_AUDITED = ("sms", "whatsapp", "email")  # their providers are always the sandbox's
OPEN = (EventStatus.START, EventStatus.PROCESSING)
MAX_EVENTS = 10_000
SAMPLE = 3  # notification ids named per disagreement


@dataclass(frozen=True)
class ProviderMessage:
    """One request a provider received: for which notification, and whether it was taken."""

    notification_id: str
    provider: str
    accepted: bool


@dataclass(frozen=True)
class Disagreement:
    event_id: str
    what: str


@dataclass
class AuditReport:
    since: str
    until: str
    events: int = 0
    notifications: int = 0
    moving: int = 0  # open events touched within `moving_seconds`: not judged
    truncated: bool = False
    provider_channels: tuple[str, ...] = ()
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.disagreements

    def summary(self) -> str:
        found = f"{len(self.disagreements)} disagreement(s)" if self.disagreements else "clean"
        more = ", truncated" if self.truncated else ""
        return f"{found} ({self.events} events, {self.notifications} notifications{more})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "events": self.events,
            "notifications": self.notifications,
            "moving": self.moving,
            "truncated": self.truncated,
            "provider_channels": list(self.provider_channels),
            "disagreements": [{"event_id": d.event_id, "what": d.what} for d in self.disagreements],
        }


def event_ids_between(
    db: Any, table: str, since: datetime, until: datetime, limit: int
) -> tuple[list[str], bool]:
    """The ids of events created in [since, until], oldest first, through the day index's
    shards; True when there were more than `limit`."""
    low, high = iso(since), iso(until) + "~"  # `~` sorts after `#<id>`
    found: list[tuple[str, str]] = []
    day = since.astimezone(UTC).date()
    while day <= until.astimezone(UTC).date():
        for partition in event_index.day_partitions("", day.isoformat()):
            kwargs: dict[str, Any] = {
                "TableName": table,
                "IndexName": event_index.BY_DAY,
                "KeyConditionExpression": "#p = :p AND #k BETWEEN :low AND :high",
                "ExpressionAttributeNames": {"#p": "day_shard", "#k": event_index.EVENT_SORT},
                "ExpressionAttributeValues": {
                    ":p": {"S": partition},
                    ":low": {"S": low},
                    ":high": {"S": high},
                },
            }
            while len(found) <= limit:
                resp = db.query(**kwargs)
                found += [
                    (i[event_index.EVENT_SORT]["S"], i[dynamo.PK]["S"].removeprefix("EVENT#"))
                    for i in resp.get("Items", [])
                ]
                if "LastEvaluatedKey" not in resp:
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        day += timedelta(days=1)
    found.sort()
    return [event_id for _, event_id in found[:limit]], len(found) > limit


def audited_channels(messages: Sequence[ProviderMessage]) -> tuple[str, ...]:
    """The channels held to the providers' account: sms, WhatsApp and email (the sandbox is
    their provider), and chat when chat messages reached the sandbox (a chat webhook is the
    user's URL, which may point anywhere)."""
    channels = set(ALWAYS_AUDITED)
    for message in messages:
        channels.update(PROVIDER_CHANNELS.get(message.provider, ()))
    return tuple(sorted(channels))


def _named(records: Iterable[dict[str, Any]]) -> str:
    ids = [str(r.get("notification_id")) for r in records]
    more = f" and {len(ids) - SAMPLE} more" if len(ids) > SAMPLE else ""
    return ", ".join(ids[:SAMPLE]) + more


def check_event(record: EventRecord, notifications: Sequence[dict[str, Any]]) -> list[str]:
    """What disagrees between one event's status, tally and records."""
    problems: list[str] = []
    counts = counts_of([str(n.get("status")) for n in notifications])
    tally = record.counts.model_dump()
    if tally != counts:
        problems.append(f"tally {_counts(tally)} but its records are {_counts(counts)}")
    unsettled = [n for n in notifications if str(n.get("status")) not in SETTLED_BUCKETS]
    status = record.status
    if status is EventStatus.SUCCESS:
        if not record.fanout_complete:
            problems.append("SUCCESS but its fan-out is not complete")
        if unsettled:
            problems.append(f"SUCCESS with notifications not settled: {_named(unsettled)}")
        if counts["failed"]:
            problems.append(f"SUCCESS but {counts['failed']} notification(s) FAILED")
    elif status is EventStatus.FAILED:
        if unsettled:
            problems.append(f"FAILED with notifications still in flight: {_named(unsettled)}")
        elif record.fanout_complete and counts["total"] and not counts["failed"]:
            problems.append(f"FAILED but none of its {counts['total']} notifications failed")
    elif status in OPEN and record.fanout_complete and not unsettled:
        problems.append(f"{status.value} but every notification settled")
    return problems


def _counts(counts: dict[str, int]) -> str:
    return "/".join(str(counts.get(k, 0)) for k in ("total", "sent", "failed", "skipped"))


def check_provider(
    notifications: Sequence[dict[str, Any]],
    received: dict[str, list[ProviderMessage]],
    channels: Iterable[str],
) -> list[str]:
    """What disagrees between one event's records and its providers' messages
    (`received`: this event's, by notification id)."""
    audited = set(channels)
    problems: list[str] = []
    known = {str(n.get("notification_id")) for n in notifications}
    never_taken = []
    taken_anyway = []
    for n in notifications:
        if n.get("channel") not in audited:
            continue
        accepted = any(m.accepted for m in received.get(str(n.get("notification_id")), ()))
        status = str(n.get("status"))
        if status in SENT_STATUSES and not accepted:
            never_taken.append(n)
        elif status in NEVER_SENT_STATUSES and accepted:
            taken_anyway.append(n)
    if never_taken:
        problems.append(f"sent but no provider accepted: {_named(never_taken)}")
    if taken_anyway:
        problems.append(f"FAILED or SKIPPED but a provider accepted: {_named(taken_anyway)}")
    unknown = [
        {"notification_id": nid}
        for nid, messages in sorted(received.items())
        if nid not in known and any(m.accepted for m in messages)
    ]
    if unknown:
        problems.append(f"a provider accepted notifications it has no record of: {_named(unknown)}")
    return problems


def event_of(notification_id: str) -> str:
    """The event id in a notification id (`<event id>:<channel>:<recipient id>`)."""
    return notification_id.rsplit(":", 2)[0]


class Auditor:
    def __init__(self, dynamodb: Any, table: str, reads: EventReads) -> None:
        self._db = dynamodb
        self._table = table
        self._reads = reads

    def run(
        self,
        since: datetime,
        until: datetime,
        provider_messages: Sequence[ProviderMessage] | None = None,
        *,
        moving_seconds: float = 0.0,
        stuck_seconds: float | None = None,
        max_events: int = MAX_EVENTS,
        now: datetime | None = None,
    ) -> AuditReport:
        """Audit the events created in [since, until]; with `provider_messages` (every
        message the providers received, e.g. the sandbox's), against those too."""
        report = AuditReport(iso(since), iso(until))
        ids, report.truncated = event_ids_between(self._db, self._table, since, until, max_events)
        by_event: dict[str, dict[str, list[ProviderMessage]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for message in provider_messages or ():
            by_event[event_of(message.notification_id)][message.notification_id].append(message)
        if provider_messages is not None:
            report.provider_channels = audited_channels(provider_messages)
        now = now or datetime.now(UTC)
        moving_since = iso(now - timedelta(seconds=moving_seconds))
        stuck_since = None if stuck_seconds is None else iso(now - timedelta(seconds=stuck_seconds))
        for event_id in ids:
            found = self._reads.get(event_id)
            if found is None:
                continue  # expired between the index read and this one
            record, notifications = found
            report.events += 1
            report.notifications += len(notifications)
            last = max([record.updated_at, *(str(n.get("updated_at", "")) for n in notifications)])
            if record.status in OPEN and last >= moving_since:
                report.moving += 1
                continue
            problems = check_event(record, notifications)
            if record.status in OPEN and stuck_since is not None and last < stuck_since:
                problems.append(f"still {record.status.value} since {last}: stuck")
            if provider_messages is not None:
                problems += check_provider(
                    notifications, by_event.get(event_id, {}), report.provider_channels
                )
            report.disagreements += [Disagreement(event_id, p) for p in problems]
        return report

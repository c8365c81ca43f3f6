"""Where every accepted notification ended, and what the fake providers received.

After a scenario the pipeline is given time to settle; then each expected notification is
looked up in DynamoDB and the dead-letter queues are read:

    sent        the record is SENT (or a later receipt status)
    failed      the record is FAILED and says why (`last_error`)
    in DLQ      a dead-letter queue holds its message (FAILED ones are copied there)
    lost        none of these: not settled, no record, or FAILED without a reason

Duplicates come from the sandbox: a notification id the providers accepted more than once.
One kind is documented and allowed (README, "Nothing doubled"): a worker dies after the
provider took the message and before the SENT write, so the notification is sent again once
its lease lapses. A duplicate counts as inside that window when a worker of its channel was
killed between the two accepted requests and the record shows the lapsed lease being claimed
again (two SENDING entries in a row); every other duplicate is beyond the window.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.catalogue.models import EventStatus
from core.ledger.wiring import build_ledger
from tests.chaos.harness import ChaosStack, Kill

SENT_STATUSES = {"SENT", "DELIVERED", "UNDELIVERED", "BOUNCED"}


@dataclass
class Outcome:
    scenario: str
    notifications: int
    sent: int = 0
    failed: int = 0
    in_dlq: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    beyond_window: list[str] = field(default_factory=list)
    sent_without_receipt: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unsettled_events: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    audit: str = "not run"  # `herald audit` after the scenario (tests/chaos/harness.py)

    def row(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "notifications": self.notifications,
            "sent": self.sent,
            "failed": self.failed,
            "in DLQ": self.in_dlq,
            "lost": len(self.lost),
            "duplicates": sum(self.duplicates.values()),
            "beyond window": len(self.beyond_window),
            "events unsettled": len(self.unsettled_events),
            "audit": self.audit,
        }


def started_events(clients: AwsClients) -> int:
    """Events still START (the emulator holds only this scenario's events)."""
    reads = build_ledger(clients.dynamodb, clients.names.table).event_reads
    return len(reads.list_events(status=EventStatus.START.value, limit=100).items)


def wait_settled(stack: ChaosStack, timeout: float, quiet_polls: int = 3) -> bool:
    """Until the pipeline has nothing left to do, or `timeout`: every work queue empty
    (in flight and delayed retries included) and no event waiting to be routed, for a few
    polls in a row. Events are not waited for: one whose tally went wrong never settles,
    and the accounting reports it."""
    clients = stack.clients()
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        try:
            idle = queues_empty(clients) and started_events(clients) == 0
        except Exception:  # the emulator may be busy or briefly away; try again
            idle = False
        quiet = quiet + 1 if idle else 0
        if quiet >= quiet_polls:
            return True
        time.sleep(1)
    return False


def queues_empty(clients: AwsClients) -> bool:
    for queue in clients.names.work_queues():
        attrs = clients.sqs.get_queue_attributes(
            QueueUrl=clients.queue_url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        ):
            return False
    return True


def records(clients: AwsClients, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every notification record of these events, by notification id."""
    reads = build_ledger(clients.dynamodb, clients.names.table).event_reads
    out: dict[str, dict[str, Any]] = {}
    for event_id in event_ids:
        found = reads.get(event_id)
        if found is None:
            continue
        for item in found[1]:
            out[str(item.get("notification_id"))] = item
    return out


def dead_letters(clients: AwsClients) -> set[str]:
    """Notification ids (or, from the router's DLQs, event ids) held in any DLQ.

    Read with a long visibility so each message is seen once; nothing is deleted.
    """
    ids: set[str] = set()
    for queue in clients.names.work_queues():
        url = clients.queue_url(clients.names.dlq_of(queue))
        empty = 0
        while empty < 2:
            batch = clients.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                empty += 1
                continue
            for message in batch:
                try:
                    body = json.loads(message.get("Body", ""))
                except ValueError:
                    continue
                if isinstance(body, dict):
                    ids.add(str(body.get("notification_id") or body.get("event_id")))
    return ids


def _channel(notification_id: str) -> str:
    return notification_id.split(":")[1]


CLOCK_SLACK_SECONDS = 0.5


def _lease_reclaimed(history: Sequence[dict[str, Any]]) -> bool:
    statuses = [h.get("status") for h in history]
    return any(a == b == "SENDING" for a, b in itertools.pairwise(statuses))


def in_window(
    accepted_at: Sequence[float], kills: Sequence[Kill], channel: str, history: Sequence[Any]
) -> bool:
    """Every repeat follows a kill of this channel's worker after the previous acceptance."""
    if not _lease_reclaimed(history):
        return False
    worker_kills = [k.at for k in kills if k.process.startswith(f"worker-{channel}:")]
    # A kill is fired on seeing a request in flight, so it follows that request's arrival;
    # the two timestamps come from different threads, hence the slack.
    return all(
        any(before - CLOCK_SLACK_SECONDS <= at <= after for at in worker_kills)
        for before, after in itertools.pairwise(accepted_at)
    )


def tally(
    stack: ChaosStack, scenario: str, expected: dict[str, list[str]], kills: Sequence[Kill]
) -> Outcome:
    clients = stack.clients()
    wanted = [n for ids in expected.values() for n in ids]
    outcome = Outcome(scenario, len(wanted))
    found = records(clients, list(expected))
    dlq = dead_letters(clients)
    accepted: dict[str, list[float]] = defaultdict(list)
    for request in stack.sandbox("GET", "/sandbox/messages"):
        if request.get("notification_id") and (request.get("status") or 999) < 300:
            accepted[request["notification_id"]].append(float(request["received_at"]))

    for notification_id in wanted:
        record = found.get(notification_id, {})
        status = record.get("status")
        in_dlq = notification_id in dlq
        outcome.in_dlq += in_dlq
        if status in SENT_STATUSES:
            outcome.sent += 1
            if not accepted.get(notification_id):
                outcome.sent_without_receipt.append(notification_id)
        elif status == "FAILED" and record.get("last_error"):
            outcome.failed += 1
        elif not in_dlq:
            history = [
                (h.get("status"), h.get("at"), h.get("detail")) for h in record.get("history", [])
            ]
            outcome.lost.append(f"{notification_id}: {status or 'no record'} {history}")

    for notification_id, times in accepted.items():
        if len(times) < 2:
            continue
        outcome.duplicates[notification_id] = len(times) - 1
        history = found.get(notification_id, {}).get("history", [])
        if not in_window(sorted(times), kills, _channel(notification_id), history):
            outcome.beyond_window.append(
                f"{notification_id}: accepted at {sorted(times)}, history "
                f"{[(h.get('status'), h.get('at'), h.get('detail')) for h in history]}, "
                f"kills {[(k.process, k.at) for k in kills]}"
            )
    outcome.unexpected = sorted(set(found) - set(wanted))
    outcome.unsettled_events = unsettled(clients, list(expected))
    return outcome


def unsettled(clients: AwsClients, event_ids: Sequence[str]) -> list[str]:
    """Events not SUCCESS, FAILED or DIGESTED (settled into a digest), with their status
    and tally."""
    out = []
    for event_id in event_ids:
        item = event_item(clients, event_id)
        settled = (EventStatus.SUCCESS, EventStatus.FAILED, EventStatus.DIGESTED)
        if item.get("status") not in settled:
            out.append(
                f"{event_id}: {item.get('status')} counts={item.get('counts')} "
                f"fanout_complete={item.get('fanout_complete')}"
            )
    return out


def event_item(clients: AwsClients, event_id: str) -> dict[str, Any]:
    """The event item with its tally (one BatchGetItem): status, counts and fan-out
    progress, as `counts` and `fanout_complete`."""
    resp = clients.dynamodb.batch_get_item(
        RequestItems={
            clients.names.table: {
                "Keys": [dynamo.event_key(event_id), dynamo.tally_key(event_id)],
                "ConsistentRead": True,
            }
        }
    )
    items = {
        i[dynamo.SK]["S"]: dynamo.from_item(i)
        for i in resp.get("Responses", {}).get(clients.names.table, [])
    }
    event = items.get(dynamo.EVENT_SK, {})
    tally = items.get(dynamo.TALLY_SK, {})
    if event:
        event["counts"] = {k: int(tally.get(k, 0)) for k in dynamo.COUNT_FIELDS}
        # a user's event marks it on the event item (core.ledger.record_counts)
        event["fanout_complete"] = bool(
            tally.get("fanout_complete") or event.get("fanout_complete")
        )
    return event

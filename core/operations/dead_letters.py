"""Inspecting and replaying dead-letter queues (the API and the CLI share this).

Redriving a whole queue asks SQS to move the messages itself (StartMessageMoveTask), where
the endpoint has it; the worker that receives a moved message reopens its FAILED record
(the message still carries its `error` and `source_queue` attributes). Elsewhere (moto,
older LocalStack) and for chosen ids, redrive is receive → send to the source queue →
delete, reopening each record on the way. A redriven notification returns to QUEUED with
its history kept, and its event reopens if that failure had settled it.

Receives long-poll and stop only after EMPTY_POLLS empty answers in a row: on real SQS an
empty short poll does not mean an empty queue (it samples a subset of servers).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.catalogue.models import EventStatus, NotificationMessage, NotificationStatus
from core.directory.readdress import readdress
from core.directory.users import UserStore
from core.ledger.wiring import Ledger
from core.platform.masking import mask_address

log = logging.getLogger("herald.dlq")

DLQ_ATTRIBUTES = ("error", "source_queue", "receive_count")
PEEK_ROUNDS = 5
REDRIVE_VISIBILITY = 60
POLL_WAIT_SECONDS = 1  # long poll of each DLQ receive
EMPTY_POLLS = 2  # empty answers in a row that end a redrive or a peek
REDRIVEN = "redriven from the dead-letter queue"


class UnknownQueue(LookupError):
    """Not one of Herald's work queues."""


@dataclass
class RedriveReport:
    redriven: list[str] = field(default_factory=list)
    notifications_requeued: int = 0
    not_found: list[str] = field(default_factory=list)
    events_reopened: list[str] = field(default_factory=list)
    # message id -> why it stays in the DLQ: an events-DLQ message whose event is FAILED
    # for a reason other than routing giving up (sending it back would change nothing)
    refused: dict[str, str] = field(default_factory=dict)
    move_task: str | None = None  # SQS moves the messages itself (StartMessageMoveTask)


class DeadLetters:
    def __init__(
        self,
        clients: AwsClients,
        ledger: Ledger,
        users: UserStore | None = None,
    ) -> None:
        """With `users`, a redriven notification goes to its recipient's current address
        (core.directory.readdress), so every message is moved by Herald, not by an SQS move task."""
        self.clients = clients
        self.ledger = ledger
        self.users = users
        self._router_queues = {clients.names.router_queue(lane) for lane in ("critical", "normal")}
        prefix = f"{clients.names.prefix}-"
        self.queues = {q.removeprefix(prefix): q for q in clients.names.work_queues()}

    def queue_name(self, short: str) -> str:
        """`sms-normal` → the full work queue name; the API speaks without the prefix."""
        try:
            return self.queues[short]
        except KeyError:
            raise UnknownQueue(
                f"unknown queue {short!r}; known: {', '.join(self.queues)}"
            ) from None

    def depths(self) -> list[dict[str, Any]]:
        out = []
        for short, queue in self.queues.items():
            dlq = self.clients.names.dlq_of(queue)
            attrs = self.clients.sqs.get_queue_attributes(
                QueueUrl=self.clients.queue_url(dlq),
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            out.append(
                {
                    "queue": short,
                    "dlq": dlq,
                    "depth": int(attrs.get("ApproximateNumberOfMessages", 0)),
                    "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                }
            )
        return out

    def _receive(self, dlq_url: str, visibility: int) -> list[dict[str, Any]]:
        resp = self.clients.sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=POLL_WAIT_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(resp.get("Messages", []))

    def peek(self, short: str, limit: int = 10) -> list[dict[str, Any]]:
        """Read without consuming: received with visibility 0, so they stay in the queue."""
        url = self.clients.queue_url(self.clients.names.dlq_of(self.queue_name(short)))
        seen: dict[str, dict[str, Any]] = {}
        empty = 0
        for _ in range(PEEK_ROUNDS + EMPTY_POLLS):
            fresh = [m for m in self._receive(url, 0) if m["MessageId"] not in seen]
            if not fresh:
                empty += 1
                if empty >= EMPTY_POLLS:
                    break
                continue
            empty = 0
            for raw in fresh:
                seen[raw["MessageId"]] = describe(raw)
            if len(seen) >= limit:
                break
        return list(seen.values())[:limit]

    def redrive(self, short: str, message_ids: set[str] | None = None) -> RedriveReport:
        """Move all (or the selected) messages back to their source queue."""
        queue = self.queue_name(short)
        dlq_url = self.clients.queue_url(self.clients.names.dlq_of(queue))
        source_url = self.clients.queue_url(queue)
        report = RedriveReport()
        routed = queue in self._router_queues
        if (
            message_ids is None
            and self.users is None
            and not routed  # an event's message reopens its event first, below
            and self._move_task(dlq_url, source_url, report)
        ):
            return report
        wanted = set(message_ids) if message_ids is not None else None
        passed_over: list[dict[str, Any]] = []
        empty = 0
        while wanted is None or wanted:
            batch = self._receive(dlq_url, REDRIVE_VISIBILITY)
            if not batch:
                empty += 1
                if empty >= EMPTY_POLLS:
                    break
                continue
            empty = 0
            for raw in batch:
                if wanted is not None and raw["MessageId"] not in wanted:
                    passed_over.append(raw)
                    continue
                self._redrive_one(raw, source_url, dlq_url, report, routed)
                if wanted is not None:
                    wanted.discard(raw["MessageId"])
        self._release(dlq_url, passed_over)
        report.not_found = sorted(wanted or ())
        return report

    def _move_task(self, dlq_url: str, source_url: str, report: RedriveReport) -> bool:
        """Let SQS move every message back; False where the endpoint cannot."""
        sqs = self.clients.sqs
        try:
            arns = [
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]
                for url in (dlq_url, source_url)
            ]
            resp = sqs.start_message_move_task(SourceArn=arns[0], DestinationArn=arns[1])
        except (ClientError, BotoCoreError) as exc:
            # Not on this endpoint (moto answers 500), or not now: the manual path below
            # is correct everywhere, only slower.
            log.info("StartMessageMoveTask unavailable (%s); moving messages one by one", exc)
            return False
        report.move_task = str(resp.get("TaskHandle", ""))
        return True

    def _redrive_one(
        self,
        raw: dict[str, Any],
        source_url: str,
        dlq_url: str,
        report: RedriveReport,
        routed: bool = False,
    ) -> None:
        body = raw.get("Body", "")
        notification = _notification(body)
        if notification is not None:
            detail = REDRIVEN
            if self.users is not None:
                notification, note = readdress(self.users, notification)
                if note is not None:
                    detail = f"{REDRIVEN}; {note}"
                    body = notification.model_dump_json()
            if reopen(self.ledger, notification, detail):
                report.notifications_requeued += 1
        elif routed and (event_id := _routed_event_id(body)) is not None:
            # The router gave up on this event and failed it: a FAILED event is never
            # routed, so it is reopened (one conditional write) before its message goes
            # back. An event FAILED otherwise stays so, and its message stays here.
            events = self.ledger.event_status
            if events.reopen_routing(event_id):
                report.events_reopened.append(event_id)
            elif events.status_of(event_id) == EventStatus.FAILED:
                report.refused[raw["MessageId"]] = (
                    f"event {event_id} is FAILED and was not failed by routing; not reopened"
                )
                return
        attributes = {
            k: v for k, v in raw.get("MessageAttributes", {}).items() if k not in DLQ_ATTRIBUTES
        }
        send: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": body}
        if attributes:
            send["MessageAttributes"] = {
                k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                for k, v in attributes.items()
                if "StringValue" in v
            }
        self.clients.sqs.send_message(**send)
        self.clients.sqs.delete_message(
            QueueUrl=dlq_url,
            ReceiptHandle=raw["ReceiptHandle"],
        )
        report.redriven.append(raw["MessageId"])

    def _release(self, dlq_url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ]
            self.clients.sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=entries)


def reopen(ledger: Ledger, message: NotificationMessage, detail: str = REDRIVEN) -> bool:
    """A redriven notification goes back to QUEUED; False if it was not FAILED or RETRYING
    (already sent, or reopened by someone else).

    A FAILED one is reopened in one transaction: the record FAILED → QUEUED, its failure
    taken off the tally (a topic's; a user's event counts its records), and the event
    FAILED|PROCESSING → PROCESSING. The record's condition makes a repeat refused, so a
    redrive that crashes or is run twice can neither leave the tally and the status apart
    nor take the failure off twice. A RETRYING one only returns to QUEUED."""
    queued: dict[str, Any] = {
        "sets": {"status": NotificationStatus.QUEUED.value, "attempts": 0},
        "history": (NotificationStatus.QUEUED.value, detail),
    }
    failed = NotificationStatus.FAILED.value
    items = [{"Update": ledger.records.transition(message, allowed=[failed], **queued)}]
    if not message.counted_records:
        update = ledger.tally.update(message.event_id, {"failed": -1})
        items.append({"Update": update})
    items.append({"Update": ledger.event_status.reopened_update(message.event_id)})
    try:
        aws_errors.retry(lambda: ledger.records.write(items))
        return True
    except ClientError as exc:
        if not aws_errors.refused_items(exc):
            raise
    retrying = [NotificationStatus.RETRYING.value]
    return ledger.records.update(message, allowed=retrying, **queued) is not None


def _routed_event_id(body: str) -> str | None:
    """The event id of a router message (an event, or a fan-out continuation page)."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    nested = decoded.get("event")
    event_id = nested.get("event_id") if isinstance(nested, dict) else decoded.get("event_id")
    return event_id if isinstance(event_id, str) and event_id else None


def _notification(body: str) -> NotificationMessage | None:
    try:
        return NotificationMessage.model_validate_json(body)
    except ValidationError:
        return None


def describe(raw: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: v.get("StringValue") for k, v in raw.get("MessageAttributes", {}).items()}
    body_text = raw.get("Body", "")
    try:
        body: Any = json.loads(body_text)
    except ValueError:
        body = body_text
    if isinstance(body, dict) and isinstance(body.get("addresses"), list):
        body["addresses"] = [mask_address(str(a)) for a in body["addresses"]]
    return {
        "message_id": raw["MessageId"],
        "error": attributes.get("error"),
        "source_queue": attributes.get("source_queue"),
        "receive_count": attributes.get("receive_count")
        or raw.get("Attributes", {}).get("ApproximateReceiveCount"),
        "sent_at": raw.get("Attributes", {}).get("SentTimestamp"),
        "body": body,
    }

"""The router: from an event to one notification record and queue message per channel.

    python -m listeners.router

For each message on the two router queues (critical first, normal never starved):

    decode ─ poison (not JSON, not an event, unknown type) → dead-letter queue, with why
    START → PROCESSING (a settled event, FAILED above all, is not routed: acknowledged)
    recipients: the event's user, or one page of the topic's subscribers
    per recipient and channel: preferences → SKIPPED(reason) | render → QUEUED | FAILED
    create the records and count them on the event, atomically per chunk
    SendMessageBatch the QUEUED ones to <channel>-<lane>
    more subscribers → a continuation message for the next page; else fan-out complete

Events for one user are routed a receive at a time: one consistent BatchGetItem for the
users of the whole batch, one TransactWriteItems that creates and counts the records of
every event and moves each event to PROCESSING with its fan-out complete
(`RecordCreation.create_routed`), and SendMessageBatch per channel queue across events.
A redelivered message, a duplicate, or a batch whose transaction is cancelled (a record
already exists) takes the one-event path below instead, which sorts out what exists.

Redelivery is safe at any point: records are created-and-counted once (see
`RecordCreation.create_counted`), records of the page still QUEUED are enqueued again
(workers claim before sending, so a duplicate message sends nothing twice), and a
continuation already sent is not sent again. AWS errors retry the message with backoff.

An event for a user with no profile is marked FAILED with the reason (the producer sent an
id Herald does not know: nothing can be delivered, and the API shows why). A topic
subscriber without a profile (deleted while subscribed) is left out of the fan-out.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from alerting.gate import AlertGate
from alerting.inline import inline_profiles
from core.aws.clients import AwsClients
from core.catalogue.models import Event, EventStatus, NotificationStatus, utcnow
from core.catalogue.templates import TemplateRenderer
from core.directory.users import UserStore
from core.ledger.notification_records import EventClosed, EventNotFound
from core.ledger.shard_layout import ShardLayout
from core.ledger.wiring import Ledger, build_ledger
from core.platform import metrics, tracing
from core.platform.logs import configure_logging
from core.platform.runtime import freeze_startup_objects
from core.platform.settings import Settings
from listeners import due_handlers
from listeners.channel_queues import ChannelQueues
from listeners.consumer import Consumer, wait_for_queues
from listeners.digesting import build_digesting
from listeners.fanout import Poison, RouterWork, decode
from listeners.fanout_pacing import FanoutPacer
from listeners.grouped_routing import GroupRouting
from listeners.heartbeat import Heartbeat
from listeners.lambda_handler import LambdaHandler, sqs_lambda_handler
from listeners.messages import Ack, DeadLetter, QueueMessage, Result
from listeners.planner import Recipient, plan
from listeners.routing_failures import routing_failure
from listeners.topic_pages import TopicPages

log = logging.getLogger("herald.router")

REPAIR_ATTRIBUTE = "repair"  # set by the reconciler's republish of a stranded event
UNSETTLED = (
    NotificationStatus.QUEUED,
    NotificationStatus.RETRYING,
    NotificationStatus.SENDING,
)


class Router:
    """The router queues' handler: `router(messages)` returns one result per message.

    The same object serves the long-running consumer and `sqs_lambda_handler`. `clock` is
    "now" for quiet hours, injectable so tests do not depend on the wall clock.
    """

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        *,
        users: UserStore | None = None,
        ledger: Ledger | None = None,
        renderer: TemplateRenderer | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        table = clients.names.table
        retention = settings.event_retention_days
        self.settings = settings
        self.clients = clients
        self.users = users or UserStore(clients.dynamodb, table)
        layout = ShardLayout.of(settings)
        ledger = ledger or build_ledger(clients.dynamodb, table, retention, layout)
        self.layout = ledger.layout
        # Deferred notifications' due items are put as their records are created.
        self.deferral = due_handlers.build_deferral(settings, clients, ledger=ledger)
        self.creation = self.deferral.creating()
        self.tally = ledger.tally
        self.settlement = ledger.settlement
        self.events = ledger.event_status
        self.renderer = renderer or TemplateRenderer()
        self.queues = ChannelQueues(clients.sqs, clients.queue_url, clients.names)
        self.clock = clock
        self.alerts = AlertGate(settings, clients.dynamodb, table, clock)
        self.together = GroupRouting(
            clients, self.creation, self.queues, self.renderer, clock, self._complete
        )
        self.digesting = build_digesting(settings, clients, self.users)
        self.topic_pages = TopicPages(
            settings,
            clients,
            self.users,
            ledger,
            FanoutPacer(settings, clients),
            self._fan_out,
            self._complete,
        )

    @tracing.traced_batch("herald.route", tracing.event_id_of)
    def __call__(self, messages: Sequence[QueueMessage]) -> list[Result]:
        results: list[Result | None] = [None] * len(messages)
        together: list[tuple[int, QueueMessage, RouterWork]] = []
        alone: list[tuple[int, QueueMessage, RouterWork]] = []
        seen: set[str] = set()
        digested: list[tuple[int, QueueMessage, RouterWork]] = []
        firsts: set[int] = set()  # digested events seen for the first time
        for index, message in enumerate(messages):
            try:
                work = decode(message.body)
            except Poison as exc:
                log.warning(
                    "dead-lettering a message: %s", exc.reason, extra={"queue": message.queue}
                )
                results[index] = DeadLetter(exc.reason)
                continue
            if message.attributes.get(REPAIR_ATTRIBUTE) == "true":
                work = replace(work, repair=True)
            event_id = work.event.event_id
            first_time = message.receive_count <= 1 and event_id not in seen and not work.repair
            seen.add(event_id)
            if self.digesting.takes(work):  # absorbed, not routed (listeners/digesting.py)
                digested.append((index, message, work))
                firsts.update([index] if first_time else [])
            # Alert events take the one-event path, where `route` asks the alert gate.
            elif work.event.user_id is not None and first_time and not work.event.dedupe_key:
                together.append((index, message, work))
            else:
                alone.append((index, message, work))
        for entry in self.digesting.absorb_all(digested, results, self._failed):
            (together if entry[0] in firsts else alone).append(entry)  # opens a leading window
        read_first: set[int] = set()
        if together:
            try:
                alone += self.together.route(together, results, read_first)
            except Exception as exc:
                for index, message, work in together:
                    if results[index] is None:
                        results[index] = self._failed(message, work, exc)
        for index, message, work in sorted(alone, key=lambda entry: entry[0]):
            if results[index] is None:
                careful = index in read_first or message.receive_count > 1
                results[index] = self.handle_work(message, work, redelivered=careful)
        return [r if r is not None else Ack() for r in results]

    def handle_work(
        self, message: QueueMessage, work: RouterWork, *, redelivered: bool | None = None
    ) -> Result:
        """One message on its own: the path for topics, redeliveries and the unusual."""
        event_id = work.event.event_id
        if redelivered is None:
            redelivered = message.receive_count > 1
        try:
            self.route(work, message.queue, redelivered=redelivered or work.repair)
        except EventNotFound:
            log.warning("no event record; dead-lettering", extra={"event_id": event_id})
            return DeadLetter(f"no event record for {event_id}")
        except EventClosed as exc:
            # Settled before this message was taken (the reconciler gave up on it, the
            # router failed it, or a redelivery after it settled): routing it now would send
            # behind a status that says otherwise. An operator who wants it sent reopens it
            # (a redrive of the events DLQ does, in the same write that makes it routable).
            log.warning("not routed: %s", exc, extra={"event_id": event_id})
            return Ack()
        except Exception as exc:
            return self._failed(message, work, exc)
        metrics.page_routed(work.event, work.page)
        return Ack()

    def _failed(self, message: QueueMessage, work: RouterWork, exc: Exception) -> Result:
        return routing_failure(self.settings, self.events, message, work, exc)

    def route(self, work: RouterWork, queue: str, *, redelivered: bool = False) -> None:
        """Do one page of the fan-out; idempotent, so a redelivery may run it again."""
        event = work.event
        if work.page == 0:
            self.events.open_for_routing(event.event_id)  # a settled event raises EventClosed
            if event.dedupe_key and not self._alert_notifies(event):
                return
        if event.to is not None:  # inline recipients (on-call lists): one page
            recipients = [Recipient(p, channels) for p, channels in inline_profiles(event.to)]
            self._fan_out(event, recipients, 0, redelivered, work.repair)
            self._complete(event)
        elif event.user_id is not None:
            self._route_to_user(event, event.user_id, redelivered, work.repair)
        else:
            self.topic_pages.route(work, queue, redelivered)

    def _alert_notifies(self, event: Event) -> bool:
        """Ask the alert gate (alerting/gate.py); an event that notifies nobody is settled
        here with the gate's reason, which GET /events/{id} shows."""
        decision = self.alerts.decide(event)
        if not decision.notify:
            self.events.transition(
                event.event_id,
                EventStatus.PROCESSING,
                EventStatus.SUCCESS,
                reason=decision.reason,
                fanout_complete=True,
            )
            log.info("no notification: %s", decision.reason, extra={"event_id": event.event_id})
        return decision.notify

    def _route_to_user(
        self, event: Event, user_id: str, redelivered: bool, repair: bool = False
    ) -> None:
        profile = self.users.get(user_id)
        if profile is None:
            reason = f"user_id: no user {user_id!r}"
            self.events.transition(
                event.event_id,
                EventStatus.PROCESSING,
                EventStatus.FAILED,
                reason=reason,
                fanout_complete=True,
            )
            log.warning("event failed: %s", reason, extra={"event_id": event.event_id})
            return
        self._fan_out(event, [Recipient(profile)], 0, redelivered, repair)
        self._complete(event)

    def _fan_out(
        self,
        event: Event,
        recipients: Sequence[Recipient],
        page: int,
        redelivered: bool,
        repair: bool = False,
    ) -> set[str]:
        """One page's notifications; returns the channels it queued (the pace's)."""
        planned = plan(event, recipients, self.renderer, self.clock(), self.layout)
        if not planned:
            return set()
        outcome = self.creation.create_counted(planned, redelivered=redelivered)
        metrics.notifications_planned(outcome.created)
        queued = NotificationStatus.QUEUED
        to_send = [n.message for n in outcome.created if n.status is queued]
        # Records an earlier try created and that no worker has taken yet: that try may
        # have died before enqueueing them. Sending again is harmless; losing them is not.
        # A repair also re-sends records whose message was lost after a claim or a retry
        # (the claim keeps a duplicate from sending twice).
        again = UNSETTLED if repair else (queued,)
        to_send += [
            n.message
            for n in planned
            if n.status is queued and outcome.existing.get(n.message.notification_id) in again
        ]
        self.queues.enqueue(to_send)
        log.info(
            "page %d: %d recipient(s), %d notification(s) created (%d queued, %d skipped, "
            "%d failed), %d already there, %d enqueued",
            page,
            len(recipients),
            len(outcome.created),
            sum(n.status is queued for n in outcome.created),
            sum(n.status is NotificationStatus.SKIPPED for n in outcome.created),
            sum(n.status is NotificationStatus.FAILED for n in outcome.created),
            len(outcome.existing),
            len(to_send),
            extra={"event_id": event.event_id},
        )
        return {n.message.channel for n in planned if n.status is queued}

    def _complete(self, event: Event) -> None:
        final = self.settlement.add_and_settle(event.event_id, fanout_complete=True)
        if final is not None:
            log.info("event settled: %s", final.value, extra={"event_id": event.event_id})
        else:  # every pending notification deferred: the event waits (listeners/deferral.py)
            self.deferral.park(event)


def build_consumer(
    settings: Settings, clients: AwsClients, router: Router, heartbeat: Heartbeat | None = None
) -> Consumer:
    """With a heartbeat, a receive whose pages take long stays invisible until done."""
    names = clients.names
    return Consumer(
        sqs=clients.sqs,
        queue_url=clients.queue_url,
        critical_queue=names.router_queue("critical"),
        normal_queue=names.router_queue("normal"),
        handler=router,
        normal_share=settings.normal_share,
        wait_time_seconds=settings.wait_time_seconds,
        retry_base=settings.retry_base_seconds,
        retry_cap=settings.retry_cap_seconds,
        heartbeat=heartbeat,
        receive_window_seconds=settings.receive_window_seconds,
    )


_lambda: LambdaHandler | None = None


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point for an SQS trigger on a router queue (ReportBatchItemFailures).
    The router is built on the first call and reused while the container lives."""
    global _lambda
    if _lambda is None:
        settings = Settings()
        _lambda = sqs_lambda_handler(
            Router(settings, AwsClients(settings)),
            settings.retry_base_seconds,
            settings.retry_cap_seconds,
        )
    return _lambda(event, context)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description="Route events from the router queues to the channel queues until SIGTERM."
    ).parse_args(argv)
    configure_logging("router")
    settings = Settings()
    tracing.configure(settings, "router")
    clients = AwsClients(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    queues = [clients.names.router_queue("critical"), clients.names.router_queue("normal")]
    if not wait_for_queues(clients.sqs, clients.queue_url, queues, stop):
        return 0
    log.info("routing from %s", ", ".join(queues))
    heartbeat = Heartbeat(clients.sqs, clients.queue_url, settings.visibility_timeout_seconds)
    consumer = build_consumer(settings, clients, Router(settings, clients), heartbeat)
    freeze_startup_objects()
    heartbeat.start()
    try:
        consumer.run(stop)
    finally:
        heartbeat.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

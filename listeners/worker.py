"""A channel worker: drains `<channel>-critical` before `<channel>-normal` and delivers.

    python -m listeners.worker --channel sms|whatsapp|email|push|chat

supervisord runs `numprocs` of these per channel. SIGTERM stops receiving, lets the sends
in flight finish and releases prefetched messages at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from botocore.exceptions import BotoCoreError, ClientError

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.catalogue.event_types import CHANNELS
from core.catalogue.models import NotificationMessage
from core.catalogue.reports import REPORT_EVENT_TYPE, ReportInvalid, report_files
from core.directory.users import UserStore
from core.ledger.shard_layout import ShardLayout
from core.ledger.wiring import Ledger, build_ledger
from core.operations.dead_letters import reopen
from core.platform import tracing
from core.platform.errors import PermanentError, RetryableError
from core.platform.logs import configure_logging
from core.platform.runtime import freeze_startup_objects
from core.platform.settings import Settings
from core.security.rate_limit import TokenBucket
from listeners.consumer import Consumer, wait_for_queues
from listeners.delivery import (
    DeadAddressHook,
    DeliveryHandler,
    PrepareHook,
    RedrivenHook,
    RetryPolicy,
)
from listeners.heartbeat import Heartbeat
from notifiers.registry import build_notifiers

log = logging.getLogger("herald.worker")


def disable_push_endpoints(clients: AwsClients) -> DeadAddressHook:
    """SNS said these endpoints are gone: mark them disabled on the user."""
    users = UserStore(clients.dynamodb, clients.names.table)

    def disable(message: NotificationMessage, addresses: list[str]) -> None:
        for arn in addresses:
            users.disable_push_endpoint(message.recipient_id, arn)

    return disable


def report_attachments(clients: AwsClients) -> PrepareHook:
    """A report's CSV and PDF, rendered from the table its event carries when the email is
    sent (a queue message could not carry them); one read of the event per report email."""
    db, table = clients.dynamodb, clients.names.table

    def prepare(message: NotificationMessage) -> NotificationMessage:
        if message.event_type != REPORT_EVENT_TYPE:
            return message
        try:
            item = db.get_item(
                TableName=table,
                Key=dynamo.event_key(message.event_id),
                ProjectionExpression="data_json",
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise RetryableError(f"report: event unreadable: {exc}", code="report") from exc
        if item is None:
            raise PermanentError("report: its event is gone", code="report")
        report = json.loads(item["data_json"]["S"]).get("report")
        if report is None:  # an event of the type with no table: the email alone
            return message
        try:
            files = report_files(report)
        except ReportInvalid as exc:
            raise PermanentError(str(exc), code="report") from exc
        return message.model_copy(update={"attachments": files})

    return prepare


def reopen_redriven(ledger: Ledger) -> RedrivenHook:
    """A message SQS moved back from the DLQ: its FAILED record reopens (as a redrive
    through Herald's own tools does before sending the message back)."""
    return lambda message: reopen(ledger, message)


def build_worker(
    settings: Settings, clients: AwsClients, channel: str
) -> tuple[Consumer, DeliveryHandler, Heartbeat]:
    names = clients.names
    heartbeat = Heartbeat(clients.sqs, clients.queue_url, settings.visibility_timeout_seconds)
    ledger = build_ledger(
        clients.dynamodb, names.table, settings.event_retention_days, ShardLayout.of(settings)
    )
    handler = DeliveryHandler(
        notifier=build_notifiers(settings, clients, [channel])[channel],
        ledger=ledger,
        policy=RetryPolicy(
            settings.retry_base_seconds,
            settings.retry_cap_seconds,
            settings.max_attempts,
            settings.retry_after_ceiling,
        ),
        lease_seconds=settings.visibility_timeout_seconds,
        rate_limit=TokenBucket(settings.provider_rate_per_second),
        heartbeat=heartbeat,
        concurrency=settings.send_concurrency,
        on_dead_addresses=disable_push_endpoints(clients) if channel == "push" else None,
        receive_budget=settings.receive_budget,
        outcome_deadline_seconds=settings.outcome_deadline_seconds,
        on_redriven=reopen_redriven(ledger),
        prepare=report_attachments(clients) if channel == "email" else None,
    )
    consumer = Consumer(
        sqs=clients.sqs,
        queue_url=clients.queue_url,
        critical_queue=names.channel_queue(channel, "critical"),
        normal_queue=names.channel_queue(channel, "normal"),
        handler=handler,
        normal_share=settings.normal_share,
        wait_time_seconds=settings.wait_time_seconds,
        retry_base=settings.retry_base_seconds,
        retry_cap=settings.retry_cap_seconds,
        heartbeat=heartbeat,
        receive_window_seconds=settings.receive_window_seconds,
    )
    return consumer, handler, heartbeat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deliver one channel's notifications.")
    parser.add_argument("--channel", required=True, choices=CHANNELS)
    args = parser.parse_args(argv)
    configure_logging(f"worker-{args.channel}")
    settings = Settings()
    tracing.configure(settings, f"worker-{args.channel}")
    clients = AwsClients(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    names = clients.names
    queues = [names.channel_queue(args.channel, lane) for lane in ("critical", "normal")]
    if not wait_for_queues(clients.sqs, clients.queue_url, queues, stop):
        return 0
    consumer, handler, heartbeat = build_worker(settings, clients, args.channel)
    freeze_startup_objects()
    heartbeat.start()
    log.info("worker for %s started", args.channel)
    try:
        consumer.run(stop)
    finally:
        handler.close()
        heartbeat.stop()
    log.info("worker for %s stopped", args.channel)
    return 0


if __name__ == "__main__":
    sys.exit(main())

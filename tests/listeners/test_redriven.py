"""A message SQS itself moved back from the DLQ (StartMessageMoveTask keeps its `error`
and `source_queue` attributes) finds its record FAILED: the worker reopens the record and
the event, and the notification is delivered once."""

from __future__ import annotations

from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.wiring import Ledger
from core.platform.errors import PermanentError
from listeners.batch import BatchSettler
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import Ack, DeadLetter, QueueMessage, Retry
from listeners.worker import reopen_redriven
from tests.conftest import Stack
from tests.factories import OK, QUEUE, ScriptedNotifier, ledger_of, queue_notification


def handler_for(ledger: Ledger, notifier: ScriptedNotifier) -> DeliveryHandler:
    return DeliveryHandler(
        notifier=notifier,
        ledger=ledger,
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
        on_redriven=reopen_redriven(ledger),
    )


def receive(stack: Stack, queue: str) -> list[QueueMessage]:
    return [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue)]


def test_a_message_moved_back_by_sqs_reopens_its_record_and_is_sent(stack: Stack) -> None:
    ledger = ledger_of(stack)
    message = queue_notification(stack, ledger)
    settler = BatchSettler(stack.clients.sqs, stack.clients.queue_url)
    failing = handler_for(ledger, ScriptedNotifier(PermanentError("provider said no")))
    try:
        batch = receive(stack, QUEUE)
        results = failing(batch)
        assert isinstance(results[0], DeadLetter)
        settler.settle(batch, results)
    finally:
        failing.close()
    found = ledger.event_reads.get(message.event_id)
    assert found is not None and found[0].status is EventStatus.FAILED

    # What StartMessageMoveTask does: the DLQ copy, attributes and all, into the source.
    (copy,) = stack.receive_all(f"{QUEUE}-dlq")
    assert "source_queue" in copy["MessageAttributes"]
    stack.clients.sqs.send_message(
        QueueUrl=stack.clients.queue_url(QUEUE),
        MessageBody=copy["Body"],
        MessageAttributes={
            k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
            for k, v in copy["MessageAttributes"].items()
        },
    )
    notifier = ScriptedNotifier(OK)
    working = handler_for(ledger, notifier)
    try:
        batch = receive(stack, QUEUE)
        first = working(batch)
        assert first == [Retry(0, "redriven; reopened")]
        settler.settle(batch, first)
        batch = receive(stack, QUEUE)
        second = working(batch)
        assert second == [Ack()]
        settler.settle(batch, second)
    finally:
        working.close()

    assert notifier.sent == [message.notification_id]
    found = ledger.event_reads.get(message.event_id)
    assert found is not None
    record, records = found
    assert record.status is EventStatus.SUCCESS
    assert (record.counts.sent, record.counts.failed) == (1, 0)
    assert records[0]["status"] == NotificationStatus.SENT
    assert records[0].get("last_error") is None

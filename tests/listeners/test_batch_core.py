"""The batch core shared by every consumer, against real queues on the emulator."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from listeners.batch import BatchSettler, Handler, run_handler
from listeners.consumer import Consumer, LaneScheduler
from listeners.lambda_handler import sqs_lambda_handler
from listeners.messages import Ack, DeadLetter, QueueMessage, Result, Retry
from tests.conftest import Stack
from tests.support import wait_until

CRITICAL = "herald-test-sms-critical"
NORMAL = "herald-test-sms-normal"


def send(stack: Stack, queue: str, bodies: Sequence[str]) -> None:
    url = stack.clients.queue_url(queue)
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])
        ]
        stack.clients.sqs.send_message_batch(QueueUrl=url, Entries=entries)


def depth(stack: Stack, queue: str) -> tuple[int, int]:
    attrs = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.clients.queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def consumer(stack: Stack, handler: Handler, **kwargs: Any) -> Consumer:
    return Consumer(
        sqs=stack.clients.sqs,
        queue_url=stack.clients.queue_url,
        critical_queue=CRITICAL,
        normal_queue=NORMAL,
        handler=handler,
        wait_time_seconds=0,
        **kwargs,
    )


def test_results_become_deletes_visibility_changes_and_dead_letters(stack: Stack) -> None:
    send(stack, NORMAL, ["ack", "retry", "dead"])
    messages = [QueueMessage.from_sqs(NORMAL, m) for m in stack.receive_all(NORMAL)]
    decide: dict[str, Result] = {
        "ack": Ack(),
        "retry": Retry(0),
        "dead": DeadLetter("provider said no"),
    }
    BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(
        messages, [decide[m.body] for m in messages]
    )
    assert [m["Body"] for m in stack.receive_all(NORMAL)] == ["retry"]
    dead = stack.receive_all(f"{NORMAL}-dlq")
    assert [m["Body"] for m in dead] == ["dead"]
    attributes = dead[0]["MessageAttributes"]
    assert attributes["error"]["StringValue"] == "provider said no"
    assert attributes["source_queue"]["StringValue"] == NORMAL


def test_a_handler_that_raises_retries_the_batch_instead_of_crashing(stack: Stack) -> None:
    def broken(messages: Sequence[QueueMessage]) -> list[Result]:
        raise RuntimeError("bug")

    message = QueueMessage(
        queue=NORMAL, message_id="m1", receipt_handle="r", body="{}", receive_count=3
    )
    results = run_handler(broken, [message], base=1.0, cap=10.0)
    assert len(results) == 1 and isinstance(results[0], Retry)
    assert 0 <= results[0].delay <= 4


def test_scheduler_reserves_a_share_for_normal() -> None:
    scheduler = LaneScheduler(normal_share=0.25)
    picks = [scheduler.choose(True, True) for _ in range(8)]
    assert picks == ["critical", "critical", "critical", "normal"] * 2
    assert scheduler.choose(False, True) == "normal"
    assert scheduler.choose(True, False) == "critical"
    assert scheduler.choose(False, False) is None
    assert LaneScheduler(0).choose(True, True) == "critical"


def test_normal_is_served_while_critical_is_busy(stack: Stack) -> None:
    send(stack, CRITICAL, [f"c{i}" for i in range(60)])
    send(stack, NORMAL, [f"n{i}" for i in range(5)])
    order: list[str] = []
    stop = threading.Event()

    def record(messages: Sequence[QueueMessage]) -> list[Result]:
        order.extend(m.body for m in messages)
        return [Ack() for _ in messages]

    worker = consumer(stack, record, normal_share=0.25)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        assert wait_until(lambda: len(order) >= 65, timeout=60)
    finally:
        stop.set()
        thread.join(15)
    assert sorted(order) == sorted([f"c{i}" for i in range(60)] + [f"n{i}" for i in range(5)])
    first_normal = min(order.index(f"n{i}") for i in range(5))
    last_critical = max(order.index(f"c{i}") for i in range(60))
    assert first_normal < last_critical, "normal waited for the whole critical backlog"
    assert depth(stack, CRITICAL) == (0, 0) and depth(stack, NORMAL) == (0, 0)


def test_stop_releases_prefetched_messages_at_once(stack: Stack) -> None:
    send(stack, CRITICAL, ["c1", "c2"])
    send(stack, NORMAL, ["n1", "n2"])
    stop = threading.Event()
    handled: list[str] = []

    def first_batch_then_stop(messages: Sequence[QueueMessage]) -> list[Result]:
        handled.extend(m.body for m in messages)
        # Wait until the other lane's batch is held by its receiver, then stop.
        other = NORMAL if messages[0].queue == CRITICAL else CRITICAL
        wait_until(lambda: depth(stack, other)[1] == 2, timeout=10)
        stop.set()
        return [Ack() for _ in messages]

    consumer(stack, first_batch_then_stop).run(stop)
    assert len(handled) == 2
    left = sorted(m["Body"] for q in (CRITICAL, NORMAL) for m in stack.receive_all(q))
    assert left == sorted({"c1", "c2", "n1", "n2"} - set(handled))


def test_lambda_handler_reports_only_failed_records() -> None:
    def handler(messages: Sequence[QueueMessage]) -> list[Result]:
        out: list[Result] = []
        for m in messages:
            try:
                json.loads(m.body)
                out.append(Ack())
            except ValueError:
                out.append(DeadLetter("not JSON"))
        return out

    event = {
        "Records": [
            {
                "messageId": "a",
                "receiptHandle": "r",
                "body": "{}",
                "attributes": {},
                "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
            },
            {
                "messageId": "b",
                "receiptHandle": "r",
                "body": "{oops",
                "attributes": {},
                "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
            },
        ]
    }
    assert sqs_lambda_handler(handler)(event, None) == {
        "batchItemFailures": [{"itemIdentifier": "b"}]
    }

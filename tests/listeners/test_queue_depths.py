"""The queue-depth collector reads waiting and in-flight counts and the oldest waiting
message's age into gauges, against the emulator."""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import REGISTRY

from listeners.queue_depths import QueueDepths, all_queues, pause
from tests.conftest import Stack
from tests.support import aws_calls


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_depths_and_oldest_age_of_waiting_messages(stack: Stack) -> None:
    queue = stack.clients.names.channel_queue("email", "normal")
    url = stack.clients.queue_url(queue)
    for body in ("a", "b", "c"):
        stack.clients.sqs.send_message(QueueUrl=url, MessageBody=body)
    taken = stack.clients.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60
    )
    assert len(taken["Messages"]) == 1
    later = time.time() + 120  # read as if two minutes had passed
    collector = QueueDepths(
        stack.clients.sqs, stack.clients.queue_url, all_queues(stack.clients), clock=lambda: later
    )
    found = collector.collect()
    assert found[queue]["visible"] == 2
    assert found[queue]["in_flight"] == 1
    assert 110 < found[queue]["oldest_age_seconds"] < 180
    assert gauge("herald_queue_messages", queue=queue, state="visible") == 2
    assert gauge("herald_queue_messages", queue=queue, state="in_flight") == 1
    empty = stack.clients.names.dlq_of(queue)
    assert found[empty] == {"visible": 0, "in_flight": 0, "oldest_age_seconds": 0.0}
    assert gauge("herald_queue_oldest_message_age_seconds", queue=empty) == 0


def test_without_peeking_the_age_is_not_read(stack: Stack) -> None:
    queue = stack.clients.names.channel_queue("sms", "critical")
    stack.clients.sqs.send_message(QueueUrl=stack.clients.queue_url(queue), MessageBody="x")
    collector = QueueDepths(stack.clients.sqs, stack.clients.queue_url, [queue], peek=False)
    found = collector.collect()
    assert found[queue]["visible"] == 1
    assert found[queue]["oldest_age_seconds"] == 0.0
    # Nothing was received: the message is still waiting, never received.
    resp = stack.clients.sqs.receive_message(
        QueueUrl=stack.clients.queue_url(queue), AttributeNames=["ApproximateReceiveCount"]
    )
    assert resp["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"


def test_rounds_that_find_every_queue_empty_back_off(stack: Stack) -> None:
    collector = QueueDepths(stack.clients.sqs, stack.clients.queue_url, all_queues(stack.clients))
    with aws_calls(stack.clients.sqs) as made:
        found = collector.collect()
        collector.collect()
    calls = [operation for operation, _ in made]
    # One depth read per queue a round; queue URLs are looked up once per process.
    assert calls.count("GetQueueAttributes") == 2 * len(collector.queues)
    assert calls.count("GetQueueUrl") <= len(collector.queues)
    waits = [pause(found, 15.0, 15.0, 120.0)]
    for _ in range(3):
        waits.append(pause(found, 15.0, waits[-1], 120.0))
    assert waits == [30.0, 60.0, 120.0, 120.0]
    busy = {**found, "q": {"visible": 1, "in_flight": 0, "oldest_age_seconds": 0.0}}
    assert pause(busy, 15.0, 120.0, 120.0) == 15.0
    assert pause({}, 15.0, 120.0, 120.0) == 15.0  # nothing read: the interval


def test_dead_letters_do_not_keep_the_collector_busy() -> None:
    empty = {"visible": 0, "in_flight": 0, "oldest_age_seconds": 0.0}
    found = {"work": empty, "work-dlq": {**empty, "visible": 3}}
    assert pause(found, 15.0, 30.0, 300.0, dead_letters={"work-dlq"}) == 60.0
    assert pause(found, 15.0, 30.0, 300.0) == 15.0  # taken for traffic without the names
    busy = {**found, "work": {**empty, "in_flight": 1}}
    assert pause(busy, 15.0, 60.0, 300.0, dead_letters={"work-dlq"}) == 15.0


def test_while_idle_the_dead_letter_queues_are_read_every_other_round(stack: Stack) -> None:
    work = stack.clients.names.work_queues()
    dlqs = [stack.clients.names.dlq_of(q) for q in work]
    collector = QueueDepths(
        stack.clients.sqs, stack.clients.queue_url, work + dlqs, dead_letters=dlqs
    )
    urls = {stack.clients.queue_url(q): q for q in work + dlqs}
    read: list[str] = []
    stop = threading.Event()

    def count(operation: str, params: dict[str, Any]) -> None:
        if operation != "GetQueueAttributes":
            return
        read.append(urls[params["QueueUrl"]])
        if sum(q in work for q in read) == 4 * len(work):
            stop.set()  # after the fourth round's work queues

    with aws_calls(stack.clients.sqs, count):
        collector.run_forever(stop, interval=0.001, idle_max=0.004)
    # Rounds 1 and 3 read them; rounds 2 and 4 come after an idle round and skip them.
    assert sum(q in dlqs for q in read) == 2 * len(dlqs)

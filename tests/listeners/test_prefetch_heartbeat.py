"""A batch prefetched behind a slow one stays hidden until its turn comes, so no other
consumer receives it meanwhile and no receive of its budget is spent elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from listeners.consumer import Consumer
from listeners.heartbeat import Heartbeat
from listeners.messages import Ack, QueueMessage, Result
from tests.conftest import Stack
from tests.listeners.test_batch_core import CRITICAL, NORMAL, depth, send
from tests.support import wait_until

VISIBILITY = 2  # seconds: the slow batch below takes more than twice that


def test_a_prefetched_batch_outlives_the_visibility_timeout_of_a_slow_one(stack: Stack) -> None:
    sqs, url = stack.clients.sqs, stack.clients.queue_url(CRITICAL)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(VISIBILITY)})
    send(stack, CRITICAL, [f"m-{i:02d}" for i in range(20)])
    release = threading.Event()
    seen: list[tuple[str, int]] = []

    def slow_first(messages: Sequence[QueueMessage]) -> list[Result]:
        if not seen:
            release.wait(30)
        seen.extend((m.body, m.receive_count) for m in messages)
        return [Ack() for _ in messages]

    heartbeat = Heartbeat(sqs, stack.clients.queue_url, visibility_seconds=VISIBILITY).start()
    consumer = Consumer(
        sqs=sqs,
        queue_url=stack.clients.queue_url,
        critical_queue=CRITICAL,
        normal_queue=NORMAL,
        handler=slow_first,
        wait_time_seconds=0,
        heartbeat=heartbeat,
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # Both batches taken: one in the handler, the other prefetched behind it.
        assert wait_until(lambda: depth(stack, CRITICAL) == (0, 20), timeout=10)
        time.sleep(2 * VISIBILITY + 0.5)  # past the visibility the receive gave both
        stolen = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        assert stolen.get("Messages", []) == [], "the prefetched batch became visible"
        release.set()
        assert wait_until(lambda: len(seen) == 20, timeout=15)
    finally:
        release.set()
        stop.set()
        thread.join(10)
        heartbeat.stop()
    assert sorted(body for body, _ in seen) == [f"m-{i:02d}" for i in range(20)]
    assert {count for _, count in seen} == {1}  # each received once, by this consumer
    assert depth(stack, CRITICAL) == (0, 0)

"""A trickle on a normal queue gathers into batches: after a partial batch the normal
receiver waits its window before receiving again, so messages that arrive meanwhile share
one receive, one handler round and one delete. The critical queue never waits."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from listeners.consumer import Consumer, ReceivePacer
from listeners.messages import Ack, QueueMessage, Result
from tests.conftest import Stack
from tests.listeners.test_batch_core import CRITICAL, NORMAL, depth, send
from tests.support import wait_until

WINDOW = 3.0  # seconds: far longer than sending a few messages takes


def _consume(stack: Stack, window: float) -> tuple[list[list[str]], threading.Event, Consumer]:
    batches: list[list[str]] = []

    def handler(messages: Sequence[QueueMessage]) -> list[Result]:
        batches.append(sorted(m.body for m in messages))
        return [Ack() for _ in messages]

    consumer = Consumer(
        sqs=stack.clients.sqs,
        queue_url=stack.clients.queue_url,
        critical_queue=CRITICAL,
        normal_queue=NORMAL,
        handler=handler,
        wait_time_seconds=1,
        receive_window_seconds=window,
    )
    stop = threading.Event()
    threading.Thread(target=consumer.run, args=(stop,), daemon=True).start()
    return batches, stop, consumer


def test_messages_arriving_within_the_window_share_one_batch(stack: Stack) -> None:
    batches, stop, _ = _consume(stack, WINDOW)
    try:
        send(stack, NORMAL, ["first"])
        assert wait_until(lambda: batches == [["first"]], timeout=10)
        send(stack, NORMAL, ["a", "b", "c"])  # while the receiver waits out its window
        assert wait_until(lambda: len(batches) == 2, timeout=15)
    finally:
        stop.set()
    assert batches == [["first"], ["a", "b", "c"]]
    assert wait_until(lambda: depth(stack, NORMAL) == (0, 0), timeout=10)


def test_the_critical_queue_does_not_wait(stack: Stack) -> None:
    batches, stop, _ = _consume(stack, 60.0)  # a window no test would wait out
    try:
        send(stack, CRITICAL, ["urgent-1"])
        assert wait_until(lambda: batches == [["urgent-1"]], timeout=10)
        send(stack, CRITICAL, ["urgent-2"])
        assert wait_until(lambda: len(batches) == 2, timeout=15)
    finally:
        stop.set()
    assert batches == [["urgent-1"], ["urgent-2"]]


def test_a_steady_rate_is_received_in_batches_just_under_full() -> None:
    """At ten messages a second a one-second window would bring a full batch and then a
    leftover of one or two, each a whole round; the pacer receives when nine have come."""
    pacer = ReceivePacer(window=1.0)
    assert pacer.next_receive(3, returned=100.0) == 101.0  # no rate known yet: the window
    at = pacer.next_receive(9, returned=101.0)  # nine in a second: nine a second
    assert pacer.rate == 9.0
    assert at == 102.0
    at = pacer.next_receive(10 - 1, returned=101.9)  # faster: nine in 0.9 s
    assert 9.0 < pacer.rate < 10.0
    assert at < 101.9 + 1.0


def test_a_slow_trickle_waits_the_whole_window_and_a_busy_queue_not_at_all() -> None:
    pacer = ReceivePacer(window=1.0)
    pacer.next_receive(1, returned=10.0)
    assert pacer.next_receive(2, returned=12.0) == 13.0  # one a second: the window caps it
    assert pacer.next_receive(10, returned=12.5) == 12.5  # a full batch: receive at once
    assert pacer.next_receive(0, returned=20.0) == 20.0  # empty: the long poll waits itself
    assert pacer.rate == 0.0
    assert ReceivePacer(window=0.0).next_receive(3, returned=5.0) == 5.0  # pacing off


def test_what_a_full_batch_left_over_is_topped_up_before_it_is_handed_over() -> None:
    """A steady rate a little over a batch a window brings a full batch and then a few;
    those few are held until nearly a batch's worth more has come, instead of costing a
    round of their own. A partial batch after a partial one goes at once."""
    pacer = ReceivePacer(window=1.0)
    pacer.next_receive(9, returned=10.0)
    assert pacer.top_up(2, returned=10.5) is None  # the batch before was partial
    pacer.next_receive(10, returned=11.0)  # full: ten in a second
    hold = pacer.top_up(2, returned=11.0)
    assert hold is not None and 11.0 < hold <= 12.0
    assert pacer.top_up(10, returned=11.0) is None  # full again: the queue is busy
    assert pacer.top_up(0, returned=11.0) is None
    assert ReceivePacer(window=0.0).top_up(2, returned=1.0) is None

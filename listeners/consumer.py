"""A long-running consumer of a critical and a normal queue.

One receiver thread per queue long-polls and holds at most one batch; the main thread picks
the next batch to process: critical first, but every `1/normal_share`-th batch goes to
normal when both have work, so a critical flood cannot starve normal traffic. Holding one
prefetched batch per lane keeps critical latency low (its batch is already in hand) without
hiding more messages than one processing round from other consumers.

A prefetched batch is on the heartbeat from the moment it is received, not only once its
turn comes: while a slow batch takes longer than the visibility timeout, the one waiting
behind it would otherwise become visible, be received by another consumer and spend a
receive of its budget there (and be worked twice, once by each holder).

At a low steady rate a long poll returns with whatever single message just arrived, so
every message would cost its own receive and delete (and the router its own routing
round). After a partial batch from the normal queue, its receiver waits before it receives
again, so a trickle gathers into batches (`ReceivePacer`): `receive_window_seconds` at
most, less when the rate it sees would fill more than nine tenths of a batch meanwhile. A
steady rate near a full batch per window would otherwise come back as a full batch and a
leftover of one or two, each costing a whole round; what a full batch still leaves over is
held and topped up (one more receive) before it is handed over. The critical queue never
waits, and a full batch means the queue may be busy, so the next receive is at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from listeners.batch import SQS_BATCH_MAX, BatchSettler, Handler, run_handler
from listeners.heartbeat import Heartbeat
from listeners.messages import QueueMessage

log = logging.getLogger("herald.consumer")

RECEIVER_GRACE_SECONDS = 1.0


class LaneScheduler:
    """Chooses which lane's batch to process next. Pure, so fairness is testable."""

    def __init__(self, normal_share: float) -> None:
        self.period = round(1 / normal_share) if normal_share > 0 else 0
        self._critical_streak = 0

    def choose(self, critical_ready: bool, normal_ready: bool) -> str | None:
        if critical_ready and normal_ready:
            if self.period and self._critical_streak >= self.period - 1:
                self._critical_streak = 0
                return "normal"
            self._critical_streak += 1
            return "critical"
        if critical_ready:
            return "critical"
        if normal_ready:
            self._critical_streak = 0
            return "normal"
        return None


class ReceivePacer:
    """When the normal lane receives next, from what its receives brought: pure (it is
    given the times), so the pacing is testable without waiting."""

    FILL = 0.9  # of a full batch: aim under it, so a steady rate never overflows one
    SMOOTHING = 0.5  # weight of the newest batch in the rate estimate

    def __init__(self, window: float) -> None:
        self.window = window
        self.rate = 0.0  # messages a second, estimated from the batches
        self._last: float | None = None  # when the previous receive returned
        self._full_before = False  # the previous batch was full

    def top_up(self, size: int, returned: float) -> float | None:
        """For a partial batch that came right after a full one (what a steady rate left
        beyond the full batch): when to receive more into it rather than hand over a few
        messages for a whole round; None to hand it over now. A batch after a partial
        one, or after an idle spell, goes at once."""
        if not self._full_before or self.window <= 0 or self.rate <= 0:
            return None
        if not 0 < size < SQS_BATCH_MAX:
            return None
        return returned + self._until(SQS_BATCH_MAX - size)

    def next_receive(self, size: int, returned: float) -> float:
        """The time (same clock as `returned`) to receive again after a batch of `size`
        came back at `returned`: at once for a full batch or an empty one (busy, or a long
        poll that ends at the next message), else when a batch's worth nearly arrived."""
        previous, self._last = self._last, returned
        self._full_before = size >= SQS_BATCH_MAX
        if size == 0:
            self.rate = 0.0
            return returned
        if previous is not None and returned > previous:
            seen = size / (returned - previous)
            self.rate = seen if not self.rate else self.rate + self.SMOOTHING * (seen - self.rate)
        if self.window <= 0 or size >= SQS_BATCH_MAX:
            return returned
        return returned + self._until(SQS_BATCH_MAX)

    def _until(self, messages: int) -> float:
        """How long until `FILL` of `messages` more have come at the rate seen: the
        window at most, and the whole window while no rate is known."""
        if self.rate <= 0:
            return self.window
        return min(self.window, self.FILL * messages / self.rate)


@dataclass
class _Slot:
    queue: str
    batch: list[QueueMessage] = field(default_factory=list)


class Consumer:
    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: Any,
        critical_queue: str,
        normal_queue: str,
        handler: Handler,
        normal_share: float = 0.2,
        wait_time_seconds: int = 10,
        retry_base: float = 2.0,
        retry_cap: float = 300.0,
        heartbeat: Heartbeat | None = None,
        receive_window_seconds: float = 0.0,
    ) -> None:
        self._sqs = sqs
        self._pacer = ReceivePacer(receive_window_seconds)
        self._heartbeat = heartbeat
        self._queue_url = queue_url
        self._handler = handler
        self._wait = wait_time_seconds
        self._retry = (retry_base, retry_cap)
        self._settler = BatchSettler(sqs, queue_url)
        self._scheduler = LaneScheduler(normal_share)
        self._slots = {"critical": _Slot(critical_queue), "normal": _Slot(normal_queue)}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.batches_processed = 0

    # --- receiving ---------------------------------------------------------------------

    def _receive(self, queue: str, wait: int, most: int = SQS_BATCH_MAX) -> list[QueueMessage]:
        resp = self._sqs.receive_message(
            QueueUrl=self._queue_url(queue),
            MaxNumberOfMessages=most,
            WaitTimeSeconds=wait,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        return [QueueMessage.from_sqs(queue, raw) for raw in resp.get("Messages", [])]

    def _receiver(self, lane: str) -> None:
        slot = self._slots[lane]
        failures = 0
        while not self._stop.is_set():
            with self._cond:
                while slot.batch and not self._stop.is_set():
                    self._cond.wait(0.5)
            if self._stop.is_set():
                return
            try:
                batch = self._receive(slot.queue, self._wait)
                returned = time.monotonic()
                hold = self._pacer.top_up(len(batch), returned) if lane == "normal" else None
                if hold is not None and not self._stop.wait(max(hold - returned, 0.0)):
                    batch += self._receive(slot.queue, 0, SQS_BATCH_MAX - len(batch))
                    returned = time.monotonic()
                failures = 0
            except (BotoCoreError, ClientError) as exc:
                failures += 1
                log.warning(
                    "receive from %s failed: %s", slot.queue, exc, extra={"queue": slot.queue}
                )
                self._stop.wait(min(2**failures * 0.1, 5.0))
                continue
            if batch:
                if self._heartbeat is not None:
                    self._heartbeat.track_many(batch)  # kept hidden while it waits its turn
                with self._cond:
                    slot.batch = batch
                    if self._stop.is_set():  # came back after the stop: hand it straight back
                        self._release_prefetched()
                    self._cond.notify_all()
            if lane == "normal":  # let the next batch gather
                pause = self._pacer.next_receive(len(batch), returned) - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)

    # --- processing --------------------------------------------------------------------

    def _next_batch(self) -> list[QueueMessage] | None:
        with self._cond:
            while not self._stop.is_set():
                lane = self._scheduler.choose(
                    bool(self._slots["critical"].batch), bool(self._slots["normal"].batch)
                )
                if lane is not None:
                    batch, self._slots[lane].batch = self._slots[lane].batch, []
                    self._cond.notify_all()
                    return batch
                self._cond.wait(0.5)
        return None

    def process(self, batch: Sequence[QueueMessage]) -> None:
        """Run the handler with the batch kept invisible for as long as it takes."""
        if self._heartbeat is not None:
            self._heartbeat.track_many(batch)
        try:
            results = run_handler(self._handler, batch, *self._retry)
        finally:
            if self._heartbeat is not None:
                self._heartbeat.done_many(batch)
        self._settler.settle(batch, results)
        self.batches_processed += 1

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until `stop` (or `self.stop()`); then release what was prefetched."""
        if stop is not None:
            threading.Thread(target=self._forward_stop, args=(stop,), daemon=True).start()
        receivers = [
            threading.Thread(
                target=self._receiver, args=(lane,), daemon=True, name=f"receive-{lane}"
            )
            for lane in self._slots
        ]
        for thread in receivers:
            thread.start()
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                self.process(batch)
            if stop is not None and stop.is_set():
                # Seen here, not only by the forwarding thread: a stop set while a batch
                # ran is honoured before the next batch starts, however threads are scheduled.
                self.stop()
        # A receiver may sit in a long poll for up to wait_time: give it a moment, not the
        # whole wait. Messages a late poll still takes reappear after their visibility timeout.
        for thread in receivers:
            thread.join(RECEIVER_GRACE_SECONDS)
        with self._cond:
            self._release_prefetched()

    def _forward_stop(self, stop: threading.Event) -> None:
        stop.wait()
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _release_prefetched(self) -> None:
        """Unstarted messages become visible at once for another consumer (graceful stop)."""
        for slot in self._slots.values():
            if not slot.batch:
                continue
            if self._heartbeat is not None:
                self._heartbeat.done_many(slot.batch)
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(slot.batch)
            ]
            try:
                self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url(slot.queue), Entries=entries
                )
            except (BotoCoreError, ClientError) as exc:
                log.warning("could not release prefetched messages: %s", exc)
            slot.batch = []


def wait_for_queues(sqs: Any, queue_url: Any, queues: Sequence[str], stop: threading.Event) -> bool:
    """Block until the queues exist (the emulator and provisioning may still be starting)."""
    delay = 0.2
    while not stop.is_set():
        try:
            for queue in queues:
                queue_url(queue)
            return True
        except (BotoCoreError, ClientError) as exc:
            log.info("waiting for queues: %s", exc)
            stop.wait(delay)
            delay = min(delay * 2, 5.0)
    return False


__all__ = ["Consumer", "LaneScheduler", "wait_for_queues"]

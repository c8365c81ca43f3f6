"""Group commit: concurrent requests share one AWS call.

Under load many requests need the same kind of call within the same few milliseconds. One
batched call (a PublishBatch of ten, a TransactWriteItems of up to a hundred puts) costs the
API about what one single call does, so sharing calls is what keeps API CPU per event low.

Items leave in two ways. A full batch goes at once. Otherwise one partial batch is in flight
at a time: items that arrive while it is in flight wait for it and leave together in the
next call, so batches grow with the load by themselves and an idle API adds no wait.

At a low steady rate nothing is in flight when a request arrives, so every request would
leave alone: a put and a publish per event, the API's whole cost at a trickle. `linger`
(seconds, 0 for none) lets the first item of a round wait that long for company before its
partial batch goes, when the item before it came within that time (company is likely: at
10 events/s a linger of 0.25 s puts three in a call); after a longer gap it goes at once, so a
sparse trickle pays no wait for nothing. A round in flight already makes the next one
wait, so under load the linger adds nothing.

`call` runs on a thread of the batcher's own (one call of each kind is in flight at a time,
while full batches may overlap it, so a few threads do, and the hop costs less than one
through the request thread pool), takes the batch and returns one outcome per item in order:
a value for the item's caller, or an exception to raise there. An exception from `call`
itself is raised to every caller of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from core.platform import metrics

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        call: Callable[[list[T]], Sequence[R | BaseException]],
        max_batch: int,
        name: str = "accept",
        linger: float = 0.0,
    ) -> None:
        self._rounds = metrics.GROUP_COMMIT_ROUND_SIZE.labels(name)
        self._call = call
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._partial_inflight = False
        self._linger = linger
        self._timer: asyncio.TimerHandle | None = None
        self._last_arrival = float("-inf")
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="group-commit")

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        while len(self._pending) >= self._max:
            self._send()
        now = loop.time()
        company_likely = now - self._last_arrival <= self._linger
        self._last_arrival = now
        if self._timer is not None or self._partial_inflight:
            pass  # leaves with the lingering round, or after the one in flight
        elif company_likely and self._pending:
            self._timer = loop.call_later(self._linger, self._flush)
        else:
            self._flush()
        return await future

    def _flush(self) -> None:
        """Send what is pending now as a partial batch, unless one is in flight already."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and not self._partial_inflight:
            self._send()

    def _send(self) -> None:
        batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        partial = len(batch) < self._max
        if partial:
            self._partial_inflight = True
        task = asyncio.get_running_loop().create_task(self._run(batch, partial))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]], partial: bool) -> None:
        items = [item for item, _ in batch]
        self._rounds.observe(len(items))
        outcomes: Sequence[R | BaseException]
        try:
            loop = asyncio.get_running_loop()
            outcomes = await loop.run_in_executor(self._executor, self._call, items)
            if len(outcomes) != len(items):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(items)} items")
        except Exception as exc:  # the call failed as a whole: so did every item
            outcomes = [exc] * len(items)
        finally:
            if partial:
                self._partial_inflight = False
                # Whatever arrived meanwhile has waited one call already: it goes now,
                # unless a lone item came at a trickle: it lingers for company first.
                if self._linger > 0 and len(self._pending) == 1 and self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(self._linger, self._flush)
                else:
                    self._flush()
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its request was cancelled (client went away)
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def drain(self) -> None:
        """Send what is pending and wait for calls in flight (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending or self._inflight:
            while self._pending:
                self._send()
            await asyncio.gather(*self._inflight, return_exceptions=True)
        self._executor.shutdown(wait=False)

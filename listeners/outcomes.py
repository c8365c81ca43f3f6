"""Recording send outcomes as they happen, sends that finish together sharing a write.

A notification the provider took must be marked SENT at once: until then, a worker that
dies leaves a claim whose lapse means a second send. So each send's outcome is handed to
this writer the moment the provider answers, not when the batch's slowest send is done.
The first outcome waits a few milliseconds for the others of its batch, and outcomes that
arrive while a write is in flight leave together in the next one (one
`OutcomeRecords.record_outcomes` transaction: transitions plus one count per event), so
a batch of fast sends still costs about one write.

A write that fails is tried again with backoff until the outcome's deadline: a SENT that is
not durable must not be given up while the claim can be kept (the heartbeat keeps the
message invisible and the lease alive meanwhile). The record's condition makes every
repeat safe (see `record_outcomes`).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from core.aws import errors as aws_errors
from core.ledger.notification_records import EventNotFound
from core.ledger.outcome_records import LOST, Outcome, OutcomeRecords

log = logging.getLogger("herald.outcomes")

GROUP_MAX = 50  # outcomes per write: with one count per event, well inside a transaction
# How long the first outcome of a write waits for others: the sends of one batch tend to
# end within milliseconds of each other, and without a wait the first leaves alone and the
# rest follow in a second write. A few milliseconds against a provider's tens to hundreds.
LINGER_SECONDS = 0.005


@dataclass
class _Pending:
    outcome: Outcome
    future: Future[str]
    deadline: float


class OutcomeWriter:
    def __init__(self, store: OutcomeRecords, deadline_seconds: float) -> None:
        self._store = store
        self._deadline_seconds = deadline_seconds
        self._pending: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="outcomes")
        self._thread.start()

    def submit(self, outcome: Outcome) -> Future[str]:
        """The outcome's fate: RECORDED, ALREADY or LOST, or the last storage error once its
        deadline passed without a write going through."""
        future: Future[str] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("outcome writer is closed")
            deadline = time.monotonic() + self._deadline_seconds
            self._pending.append(_Pending(outcome, future, deadline))
            self._cond.notify()
        return future

    def record(self, outcome: Outcome) -> str:
        return self.submit(outcome).result()

    def close(self) -> None:
        """Write what is pending, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                linger_end = time.monotonic() + LINGER_SECONDS
                while len(self._pending) < GROUP_MAX and not self._closed:
                    left = linger_end - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)  # each outcome submitted meanwhile joins
                group, self._pending = self._pending[:GROUP_MAX], self._pending[GROUP_MAX:]
            try:
                results = self._write(group)
            except Exception as exc:
                failures += 1
                now = time.monotonic()
                expired = [p for p in group if p.deadline <= now]
                for p in expired:
                    log.error(
                        "outcome not recorded before its deadline: %s",
                        exc,
                        extra={"notification_id": p.outcome.message.notification_id},
                    )
                    p.future.set_exception(exc)
                with self._cond:  # the rest go first in the next write
                    self._pending = [p for p in group if p.deadline > now] + self._pending
                time.sleep(aws_errors.jittered(min(failures, 6), 0.05, 5.0))
                continue
            failures = 0
            for p, result in zip(group, results, strict=True):
                p.future.set_result(result)

    def _write(self, group: list[_Pending]) -> list[str]:
        try:
            return self._store.record_outcomes([p.outcome for p in group])
        except EventNotFound:
            # An event is gone (expired): record the others on their own.
            out = []
            for p in group:
                try:
                    out += self._store.record_outcomes([p.outcome])
                except EventNotFound:
                    out.append(LOST)
            return out

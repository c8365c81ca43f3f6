"""Runs that a NOTIFY asks for: debounced into windows, named so each is evaluated once.

Time is cut into windows of HERALD_LISTEN_DEBOUNCE_SECONDS (from the epoch, the same for
every process). Every NOTIFY a rule hears within one window asks for one run, sent to the
rules queue when the window ends, whatever the number of NOTIFYs: a flooded channel costs
a rule at most one run per window. The run's id (its `run`, the evaluation's key) is the
window's last microsecond, `rule id + window` in effect:

- two listeners that heard the same NOTIFY (an overlap while a lease changes hands), or a
  send retried after a failure, name the same run, and the evaluator evaluates a run once;
- it never equals a scheduled run's time (those fall on whole seconds), so a NOTIFY right
  at a scheduled time is its own run;
- it is not before the NOTIFY arrived, so when the evaluator skips it because a later run
  was recorded first, that later run read the data after the NOTIFY too.

A run the queue did not take stays pending and is sent again on the next flush.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from core.aws.clients import AwsClients
from core.catalogue.event_types import Lane
from core.catalogue.models import iso, utcnow
from listeners.batch import SQS_BATCH_MAX

log = logging.getLogger("herald.alerting.listener")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Trigger = Literal["notify", "connect"]


@dataclass(frozen=True)
class ListenRule:
    rule_id: str
    channel: str
    lane: Lane


@dataclass
class Pending:
    rule: ListenRule
    window_end: datetime
    trigger: Trigger


def window_end(at: datetime, debounce: float) -> datetime:
    """The end of the debounce window `at` falls in (a window is [start, end))."""
    width = max(1, round(debounce * 1_000_000))
    micros = (at - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=(micros // width + 1) * width)


def run_id(end: datetime) -> str:
    return iso(end - timedelta(microseconds=1))


class RunRequests:
    """The runs asked for and not yet sent, at most one per rule (thread-safe)."""

    def __init__(self, clients: AwsClients, debounce: float) -> None:
        self._clients = clients
        self._debounce = debounce
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def ask(self, rules: list[ListenRule], at: datetime, trigger: Trigger) -> None:
        """A run of each rule at the end of `at`'s window; a rule with a run pending keeps
        it (that run reads the data later than this request, so it covers it)."""
        end = window_end(at, self._debounce)
        with self._lock:
            for rule in rules:
                if rule.rule_id not in self._pending:
                    self._pending[rule.rule_id] = Pending(rule, end, trigger)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((p.window_end for p in self._pending.values()), default=None)

    def flush(self, now: datetime | None = None) -> int:
        """Send the runs whose window has ended; how many the queue took."""
        now = now or utcnow()
        with self._lock:
            due = [p for p in self._pending.values() if p.window_end <= now]
        sent = 0
        for lane in ("critical", "normal"):
            ours = [p for p in due if p.rule.lane == lane]
            for start in range(0, len(ours), SQS_BATCH_MAX):
                sent += self._send(lane, ours[start : start + SQS_BATCH_MAX])
        return sent

    def _send(self, lane: Lane, batch: list[Pending]) -> int:
        sent_at = iso(utcnow())
        bodies: list[dict[str, Any]] = [
            {
                "rule_id": p.rule.rule_id,
                "run": run_id(p.window_end),
                "due": run_id(p.window_end),
                "skipped": 0,
                "trigger": p.trigger,
                "scheduled_at": sent_at,
            }
            for p in batch
        ]
        try:
            url = self._clients.queue_url(self._clients.names.rules_queue(lane))
            resp = self._clients.sqs.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "MessageBody": json.dumps(b, separators=(",", ":"))}
                    for i, b in enumerate(bodies)
                ],
            )
        except (ClientError, BotoCoreError) as exc:  # kept pending: the next flush resends
            log.warning("%d listen run(s) not sent: %s", len(batch), exc)
            return 0
        failed = {int(f["Id"]) for f in resp.get("Failed", [])}
        with self._lock:
            for index, p in enumerate(batch):
                if index not in failed and self._pending.get(p.rule.rule_id) is p:
                    del self._pending[p.rule.rule_id]
        if failed:
            log.warning("%d listen run(s) not taken by the queue; resent next", len(failed))
        for body in bodies:
            log.debug("sent run %s of rule %s (%s)", body["run"], body["rule_id"], body["trigger"])
        return len(batch) - len(failed)

"""The rule evaluator: takes due runs from the rules queues and evaluates them.

    python -m alerting.evaluator

It is a consumer of the shared batch core (listeners/consumer.py + listeners/batch.py),
so a critical rule's run is taken first, retries back off the same way and a message that
keeps failing ends in the queue's DLQ. A batch's runs are evaluated concurrently, and
every evaluator process takes its own batches, so one slow query holds up only its own
message.

A run is evaluated once: a run already recorded is not evaluated again (two schedulers, or
a scheduler that died after sending, may send one run twice), and the evaluation, the
rule's new state and the run's events are written in one transaction conditioned on the
state the run read. Events are published only after that commit: a slow run overtaken by
a later one, or a run whose commit failed, publishes nothing (its retry is recorded as
skipped). A run that committed but died before publishing publishes on its retry, unless
a later run has been recorded meanwhile.

A batch's messages are kept invisible while their runs take (the heartbeat of the other
consumers), so a slow query is never redelivered to a second evaluator mid-run.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alerting.evaluation import Evaluation, Send, evaluate_rule, events_of, run_source
from alerting.publishing import record_and_publish
from alerting.rule_store import RuleConflict, RuleStore, StateTooLarge
from alerting.sources import DataSources
from core.aws.clients import AwsClients
from core.catalogue.models import iso, utcnow
from core.ledger.event_writes import EventWrites
from core.platform.logs import configure_logging
from core.platform.settings import Settings
from listeners.backoff import backoff_seconds
from listeners.consumer import Consumer, wait_for_queues
from listeners.heartbeat import Heartbeat
from listeners.messages import Ack, DeadLetter, QueueMessage, Result, Retry

log = logging.getLogger("herald.alerting.evaluator")

CONCURRENCY = 10


class StateChanged(Exception):
    """Another run of the rule wrote its state first; this one is retried."""


EVENTS_LISTED = 100  # an evaluation lists this many of its events (and counts them all)


def evaluation_record(
    rule_id: str, body: dict[str, Any], evaluation: Evaluation, at: datetime
) -> dict[str, Any]:
    run = datetime.fromisoformat(body["run"])
    return {
        "rule_id": rule_id,
        "run": body["run"],
        "evaluated_at": iso(at),
        "lag_ms": round((at - run).total_seconds() * 1000, 1),
        "skipped_runs": int(body.get("skipped", 0)),
        "scheduled_at": body.get("scheduled_at"),
        "trigger": body.get("trigger", "schedule"),  # or a NOTIFY's (alerting/listener.py)
        "outcome": evaluation.outcome,
        "summary": evaluation.summary,
        "values": evaluation.values,
        "truncated": evaluation.truncated,
        "duration_ms": round(evaluation.duration_s * 1000, 1),
        "error": evaluation.error,
        "events": [
            {"event_id": e.event_id, "action": e.action, "dedupe_key": e.dedupe_key}
            for e in evaluation.events[:EVENTS_LISTED]
        ],
        "events_total": len(evaluation.events),
    }


class Evaluator:
    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        *,
        datasources: DataSources | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        table = clients.names.table
        self.settings = settings
        self.clients = clients
        self.rules = RuleStore(clients.dynamodb, table, settings.scheduler_shards)
        self.events = EventWrites(clients.dynamodb, table, settings.event_retention_days)
        self.datasources = datasources or DataSources(settings, clients.client("secretsmanager"))
        self.clock = clock
        self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="evaluate")
        # Started by main (or a test) and passed to the consumer: keeps slow runs invisible.
        self.heartbeat = Heartbeat(
            clients.sqs, clients.queue_url, settings.visibility_timeout_seconds
        )

    def __call__(self, messages: Sequence[QueueMessage]) -> list[Result]:
        return list(self._pool.map(self.handle, messages))

    def handle(self, message: QueueMessage) -> Result:
        try:
            body = json.loads(message.body)
            rule_id, run = str(body["rule_id"]), str(body["run"])
            datetime.fromisoformat(run)
        except (ValueError, KeyError, TypeError) as exc:
            return DeadLetter(f"not a rule run: {exc!r}"[:200])
        try:
            self.evaluate_run(rule_id, run, body)
        except (ClientError, BotoCoreError, StateChanged, RuleConflict) as exc:
            delay = backoff_seconds(
                message.receive_count,
                self.settings.retry_base_seconds,
                self.settings.retry_cap_seconds,
            )
            log.warning("run %s of rule %s retried in %ds: %s", run, rule_id, delay, exc)
            return Retry(delay, f"{type(exc).__name__}: {exc}")
        return Ack()

    def evaluate_run(self, rule_id: str, run: str, body: dict[str, Any]) -> str | None:
        """Evaluate one due run; the outcome, or None when there was nothing to do."""
        rule, (state, version, last_run), recorded = self.rules.load_run(rule_id, run)
        if recorded:
            self._publish_recorded(rule_id, run, last_run)
            return None
        if rule is None or not rule.enabled:
            return None
        if last_run is not None and last_run >= run:
            # A later run was evaluated first (this one waited behind a backlog): evaluating
            # it now would roll the state back. It is recorded as skipped, not lost.
            self._record_skipped(rule_id, run, body, f"superseded by the run of {last_run}")
            return "skipped"
        result = run_source(rule, self.datasources, self.settings.http_check_timeout_seconds)
        now = self.clock()
        evaluation = evaluate_rule(rule, result, state, now, run)
        record = evaluation_record(rule_id, {**body, "run": run}, evaluation, now)
        keep = evaluation.state if evaluation.outcome != "error" else None
        outbox = [{"at": iso(now), **send.plain()} for send in evaluation.sends]
        try:
            committed = self.rules.record(rule_id, run, record, keep, version, outbox)
        except StateTooLarge as exc:
            self._record_skipped(rule_id, run, body, f"not evaluated: {exc}", outcome="error")
            return "error"
        if not committed:
            if self.rules.evaluation_exists(rule_id, run):
                return None
            # Another run wrote the state first: nothing of this one is published; its retry
            # finds the later run and is recorded as skipped.
            raise StateChanged(f"state of rule {rule_id} changed during run {run}")
        self._publish(rule_id, run, evaluation.events)
        log.log(
            logging.INFO if evaluation.events or evaluation.error else logging.DEBUG,
            "rule %s run %s: %s (%s), %d event(s)",
            rule_id,
            run,
            evaluation.outcome,
            evaluation.summary,
            len(evaluation.events),
        )
        return evaluation.outcome

    def _record_skipped(
        self, rule_id: str, run: str, body: dict[str, Any], why: str, outcome: str = "skipped"
    ) -> None:
        record: dict[str, Any] = {
            "rule_id": rule_id,
            "run": run,
            "evaluated_at": iso(self.clock()),
            "scheduled_at": body.get("scheduled_at"),
            "trigger": body.get("trigger", "schedule"),
            "outcome": outcome,
            "summary": why,
            "error": why if outcome == "error" else None,
            "events": [],
        }
        self.rules.record(rule_id, run, record, None, 0)

    def _publish(self, rule_id: str, run: str, events: list[Any]) -> None:
        """Publish a committed run's events, then forget its outbox."""
        _, chunks = self.rules.outbox(rule_id, run) if events else ([], [])
        record_and_publish(self.events, self.clients.sns, self.clients.topic_arn, events)
        self.rules.clear_outbox(rule_id, chunks)

    def _publish_recorded(self, rule_id: str, run: str, last_run: str | None) -> None:
        """A recorded run whose events may not have been published (it died after its
        commit): publish them now, unless a later run has been recorded since."""
        sends, chunks = self.rules.outbox(rule_id, run)
        if not chunks:
            return
        rule = self.rules.get(rule_id)
        if rule is not None and sends and (last_run is None or last_run <= run):
            events = [
                event
                for plain in sends
                for event in events_of(
                    rule, run, datetime.fromisoformat(plain["at"]), [Send.from_plain(plain)]
                )
            ]
            record_and_publish(self.events, self.clients.sns, self.clients.topic_arn, events)
        else:
            log.info("run %s of rule %s: unpublished events dropped (a later run)", run, rule_id)
        self.rules.clear_outbox(rule_id, chunks)


def build_consumer(settings: Settings, clients: AwsClients, evaluator: Evaluator) -> Consumer:
    names = clients.names
    return Consumer(
        heartbeat=evaluator.heartbeat,
        sqs=clients.sqs,
        queue_url=clients.queue_url,
        critical_queue=names.rules_queue("critical"),
        normal_queue=names.rules_queue("normal"),
        handler=evaluator,
        normal_share=settings.normal_share,
        wait_time_seconds=settings.wait_time_seconds,
        retry_base=settings.retry_base_seconds,
        retry_cap=settings.retry_cap_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description="Evaluate due alert rule runs until SIGTERM.").parse_args(
        argv
    )
    configure_logging("evaluator")
    settings = Settings()
    clients = AwsClients(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    queues = [clients.names.rules_queue("critical"), clients.names.rules_queue("normal")]
    if not wait_for_queues(clients.sqs, clients.queue_url, queues, stop):
        return 0
    log.info("evaluating rule runs from %s", ", ".join(queues))
    evaluator = Evaluator(settings, clients)
    consumer = build_consumer(settings, clients, evaluator)
    evaluator.heartbeat.start()
    try:
        consumer.run(stop)
    finally:
        evaluator.heartbeat.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

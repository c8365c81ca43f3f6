"""The rule evaluator: takes due runs from the rules queues and evaluates them.

    python -m alerting.evaluator

It is a consumer of the shared batch core (listeners/consumer.py + listeners/batch.py),
so a critical rule's run is taken first, retries back off the same way and a message that
keeps failing ends in the queue's DLQ. A batch's runs are evaluated concurrently, and
every evaluator process takes its own batches, so one slow query holds up only its own
message.

A run is evaluated once: a run already recorded is acknowledged unread (two schedulers, or
a scheduler that died after sending, may send one run twice), and the evaluation and the
rule's new state are written in one transaction conditioned on the state the run read.
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

from alerting.evaluation import Evaluation, evaluate_rule, run_source
from alerting.publishing import record_and_publish
from alerting.rule_store import RuleConflict, RuleStore
from alerting.sources import DataSources
from core.aws.clients import AwsClients
from core.catalogue.models import iso, utcnow
from core.ledger.event_writes import EventWrites
from core.platform.logs import configure_logging
from core.platform.settings import Settings
from listeners.backoff import backoff_seconds
from listeners.consumer import Consumer, wait_for_queues
from listeners.messages import Ack, DeadLetter, QueueMessage, Result, Retry

log = logging.getLogger("herald.alerting.evaluator")

CONCURRENCY = 10


class StateChanged(Exception):
    """Another run of the rule wrote its state first; this one is retried."""


def evaluation_record(
    rule_id: str, body: dict[str, Any], evaluation: Evaluation, at: datetime, published: int
) -> dict[str, Any]:
    run = datetime.fromisoformat(body["run"])
    return {
        "rule_id": rule_id,
        "run": body["run"],
        "evaluated_at": iso(at),
        "lag_ms": round((at - run).total_seconds() * 1000, 1),
        "skipped_runs": int(body.get("skipped", 0)),
        "scheduled_at": body.get("scheduled_at"),
        "outcome": evaluation.outcome,
        "summary": evaluation.summary,
        "values": evaluation.values,
        "truncated": evaluation.truncated,
        "duration_ms": round(evaluation.duration_s * 1000, 1),
        "error": evaluation.error,
        "events": [
            {"event_id": e.event_id, "action": e.action, "dedupe_key": e.dedupe_key}
            for e in evaluation.events
        ],
        "events_new": published,
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
        if recorded or rule is None or not rule.enabled:
            return None
        if last_run is not None and last_run >= run:
            # A later run was evaluated first (this one waited behind a backlog): evaluating
            # it now would roll the state back. It is recorded as skipped, not lost.
            stale: dict[str, Any] = {
                "rule_id": rule_id,
                "run": run,
                "evaluated_at": iso(self.clock()),
                "scheduled_at": body.get("scheduled_at"),
                "outcome": "skipped",
                "summary": f"superseded by the run of {last_run}",
                "events": [],
            }
            self.rules.record(rule_id, run, stale, None, version)
            return "skipped"
        result = run_source(rule, self.datasources, self.settings.http_check_timeout_seconds)
        now = self.clock()
        evaluation = evaluate_rule(rule, result, state, now, run)
        fresh = record_and_publish(
            self.events, self.clients.sns, self.clients.topic_arn, evaluation.events
        )
        record = evaluation_record(rule_id, {**body, "run": run}, evaluation, now, len(fresh))
        keep = evaluation.state if evaluation.outcome != "error" else None
        if not self.rules.record(rule_id, run, record, keep, version):
            if self.rules.evaluation_exists(rule_id, run):
                return None
            raise StateChanged(f"state of rule {rule_id} changed during run {run}")
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


def build_consumer(settings: Settings, clients: AwsClients, evaluator: Evaluator) -> Consumer:
    names = clients.names
    return Consumer(
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
    build_consumer(settings, clients, Evaluator(settings, clients)).run(stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

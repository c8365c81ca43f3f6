"""Rule runs that are slow, overtaken, cut by the row cap or large: nothing stale is
published, a slow run is not redelivered mid-run, versions never repeat, and what is
stored stays within an item and valid JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.due import bucket_of
from alerting.evaluation import ALERT_KEYS_MAX, evaluate_rule
from alerting.evaluator import Evaluator, StateChanged, build_consumer
from alerting.rule_store import RuleStore
from alerting.rules import Rule, RuleIn, SqlSource
from alerting.scheduler import Scheduler
from alerting.sources import DataSources, SourceResult
from core.catalogue.models import iso, utcnow
from listeners.messages import QueueMessage
from tests.alerting.conftest import PREFIX, Clock, Database, Pipeline
from tests.conftest import Stack

BOUND_SECONDS = 60


@pytest.fixture
def metrics_db(tmp_path: Path) -> Database:
    db = Database("metrics", f"sqlite:///{tmp_path / 'metrics.db'}")
    db.execute("CREATE TABLE lag (k VARCHAR(20), v INTEGER, note TEXT)")
    return db


@pytest.fixture
def pipeline(stack: Stack, sandbox: Any, metrics_db: Database) -> Iterator[Pipeline]:
    clock = Clock(utcnow().replace(second=0, microsecond=0))
    built = Pipeline(stack, sandbox, clock, {metrics_db.name: metrics_db.url})
    yield built
    built.close()


def threshold_rule(datasource: str = "metrics", query: str | None = None) -> RuleIn:
    return RuleIn.model_validate(
        {
            "name": "Replication lag",
            "schedule": "every 1m",
            "source": {
                "kind": "sql",
                "datasource": datasource,
                "query": query or "SELECT k, v, note FROM lag ORDER BY k",
            },
            "condition": {
                "kind": "threshold",
                "column": "v",
                "op": ">",
                "value": 50,
                "key_column": "k",
            },
            "recipients": {"to": {"email": ["oncall@example.com"]}},
        }
    )


def rules(stack: Stack) -> RuleStore:
    return RuleStore(stack.clients.dynamodb, stack.clients.names.table, 1)


def published(stack: Stack) -> int:
    """Events that reached the router's queues (consumed)."""
    count = 0
    for lane in ("critical", "normal"):
        queue = f"{PREFIX}-events-{lane}"
        raw = stack.receive_all(queue)
        url = stack.clients.queue_url(queue)
        for m in raw:
            stack.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        count += len(raw)
    return count


class GatedSources(DataSources):
    """Data sources whose first query's answer is held until the test opens the gate: a run
    that read its data, then was slow."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read = threading.Event()
        self.gate = threading.Event()
        self._first = True

    def run(self, source: SqlSource) -> SourceResult:
        result = super().run(source)
        if self._first:
            self._first = False
            self.read.set()
            self.gate.wait(BOUND_SECONDS)
        return result


def test_a_slow_run_overtaken_by_the_next_publishes_nothing(
    stack: Stack, pipeline: Pipeline, metrics_db: Database
) -> None:
    rules(stack).put("lag", threshold_rule())
    metrics_db.execute("INSERT INTO lag VALUES ('db1', 90, '')")  # lagging when run N reads
    gated = GatedSources(pipeline.settings)
    evaluator = Evaluator(pipeline.settings, stack.clients, datasources=gated, clock=pipeline.clock)
    run_n = iso(pipeline.clock.now + timedelta(minutes=1))
    run_next = iso(pipeline.clock.now + timedelta(minutes=2))
    pipeline.clock.advance(minutes=2)
    outcome: list[BaseException | str | None] = []

    def slow() -> None:
        try:
            outcome.append(evaluator.evaluate_run("lag", run_n, {}))
        except StateChanged as exc:
            outcome.append(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    assert gated.read.wait(BOUND_SECONDS)
    metrics_db.execute("UPDATE lag SET v = 10")  # recovered before run N+1
    assert evaluator.evaluate_run("lag", run_next, {}) == "ok"
    gated.gate.set()
    thread.join(BOUND_SECONDS)
    assert outcome and isinstance(outcome[0], StateChanged)
    assert published(stack) == 0  # run N's trigger from old data never left
    assert evaluator.evaluate_run("lag", run_n, {}) == "skipped"  # its retry
    assert published(stack) == 0


class DiesAfterCommit(Evaluator):
    """An evaluator that stops between its commit and its publish, once."""

    died = False

    def _publish(self, rule_id: str, run: str, events: list[Any]) -> None:
        if not self.died:
            self.died = True
            raise ConnectionError("process killed")
        super()._publish(rule_id, run, events)


def test_a_run_that_died_after_its_commit_publishes_on_its_retry(
    stack: Stack, pipeline: Pipeline, metrics_db: Database
) -> None:
    rules(stack).put("lag", threshold_rule())
    metrics_db.execute("INSERT INTO lag VALUES ('db1', 90, '')")
    evaluator = DiesAfterCommit(pipeline.settings, stack.clients, clock=pipeline.clock)
    pipeline.clock.advance(minutes=1)
    run = iso(pipeline.clock.now)
    with pytest.raises(ConnectionError):
        evaluator.evaluate_run("lag", run, {})
    assert published(stack) == 0
    assert evaluator.evaluate_run("lag", run, {}) is None  # recorded: not evaluated again
    assert published(stack) == 1  # but its trigger is published
    assert evaluator.evaluate_run("lag", run, {}) is None
    assert published(stack) == 0  # once


def test_a_slow_run_is_not_redelivered_while_it_runs(
    stack: Stack, pipeline: Pipeline, pg_database: Database
) -> None:
    settings = pipeline.settings.model_copy(
        update={
            "visibility_timeout_seconds": 2,
            "datasources": json.dumps({"warehouse": pg_database.url}),
        }
    )
    rules(stack).put(
        "slow", threshold_rule("warehouse", "SELECT 'a' AS k, 1 AS v, '' AS note, pg_sleep(6)")
    )
    evaluator = Evaluator(settings, stack.clients, clock=pipeline.clock)
    consumer = build_consumer(settings, stack.clients, evaluator)
    queue = f"{PREFIX}-rules-normal"
    url = stack.clients.queue_url(queue)
    pipeline.clock.advance(minutes=1)
    body = {"rule_id": "slow", "run": iso(pipeline.clock.now)}
    stack.clients.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    raw = stack.clients.sqs.receive_message(
        QueueUrl=url, VisibilityTimeout=2, AttributeNames=["All"], WaitTimeSeconds=5
    )["Messages"]
    heartbeat = getattr(evaluator, "heartbeat", None)
    if heartbeat is not None:
        heartbeat.start()
    try:
        worker = threading.Thread(
            target=consumer.process, args=([QueueMessage.from_sqs(queue, m) for m in raw],)
        )
        worker.start()
        redelivered = []
        while worker.is_alive():
            redelivered += stack.clients.sqs.receive_message(
                QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=30
            ).get("Messages", [])
        worker.join(BOUND_SECONDS)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    assert redelivered == []
    evaluations = rules(stack).evaluations("slow", 10, None)[0]
    assert [e["outcome"] for e in evaluations] == ["ok"]


def test_a_rule_put_again_after_a_delete_never_reuses_a_version(
    stack: Stack, pipeline: Pipeline
) -> None:
    store = RuleStore(stack.clients.dynamodb, stack.clients.names.table, 8)
    first, _ = store.put("lag", threshold_rule(), pipeline.clock.now)
    assert store.delete("lag")
    again, created = store.put(
        "lag", threshold_rule().model_copy(update={"schedule": "every 2m"}), pipeline.clock.now
    )
    assert created and again.version > first.version
    # The deleted rule's every-minute due item is dropped: only the even minutes run.
    assert sum(pipeline.tick() for _ in range(4)) == 2


def keyed_rule() -> Rule:
    return Rule(
        **threshold_rule().model_dump(by_alias=False), id="lag", created_at="x", updated_at="x"
    )


def test_keys_past_the_row_cap_are_not_resolved() -> None:
    rule = keyed_rule()
    now = utcnow()
    lagging = SourceResult([{"k": "db9", "v": 90, "note": ""}])
    first = evaluate_rule(rule, lagging, {}, now, "run-1")
    assert [e.action for e in first.events] == ["trigger"]
    # db9 sorts past the cap of two rows now: the cut result says nothing about it.
    cut = SourceResult(
        [{"k": "db1", "v": 1, "note": ""}, {"k": "db2", "v": 1, "note": ""}], truncated=True
    )
    second = evaluate_rule(rule, cut, first.state, now, "run-2")
    assert second.events == []  # not resolved
    assert second.state["alerts"]["db9"]["firing"]
    whole = SourceResult([{"k": "db9", "v": 1, "note": ""}])
    third = evaluate_rule(rule, whole, second.state, now, "run-3")
    assert [e.action for e in third.events] == ["resolve"]


def test_many_large_keys_keep_the_state_within_one_item(
    stack: Stack, pipeline: Pipeline, metrics_db: Database
) -> None:
    rules(stack).put("lag", threshold_rule())
    note = "x" * 5000
    metrics_db.execute(*[f"INSERT INTO lag VALUES ('db{i:03d}', 90, '{note}')" for i in range(300)])
    pipeline.clock.advance(minutes=1)
    assert pipeline.evaluator.evaluate_run("lag", iso(pipeline.clock.now), {}) == "firing"
    state, _, _ = rules(stack).state("lag")
    assert len(state["alerts"]) == ALERT_KEYS_MAX
    [evaluation] = rules(stack).evaluations("lag", 10, None)[0]
    assert evaluation["outcome"] == "firing" and "past the limit" in evaluation["summary"]


def test_a_large_evaluation_is_stored_as_valid_json(stack: Stack) -> None:
    store = rules(stack)
    huge = {"outcome": "ok", "summary": "big", "values": [{"text": "y" * 1000}] * 400}
    assert store.record("big", "2030-01-01T00:00:00+00:00", huge, None, 0)
    [stored] = store.evaluations("big", 10, None)[0]
    assert stored["outcome"] == "ok" and stored["values_total"] == 400


class SlowClock(Clock):
    """Time that moves on by itself: each reading is 20 s after the one before, as in a
    long catch-up pass."""

    def __call__(self) -> Any:
        self.now += timedelta(seconds=20)
        return self.now


class LeaseWatcher(Scheduler):
    """A scheduler that notes, as it sends, how long its shard's lease has left."""

    left: list[float]

    def _send(self, lane: Any, bodies: list[dict[str, Any]]) -> None:
        for pk in {f"DUE#{bucket_of(datetime.fromisoformat(b['due']))}#0" for b in bodies}:
            claim = self.clients.dynamodb.get_item(
                TableName=self.clients.names.table,
                Key={"PK": {"S": pk}, "SK": {"S": "#CLAIM"}},
                ConsistentRead=True,
            )["Item"]
            until = datetime.fromisoformat(claim["lease_until"]["S"])
            self.left.append((until - self.clock()).total_seconds())
        super()._send(lane, bodies)


def test_a_shard_claimed_late_in_a_pass_holds_a_live_lease(
    stack: Stack, pipeline: Pipeline
) -> None:
    store = RuleStore(stack.clients.dynamodb, stack.clients.names.table, 1)
    store.put("early", threshold_rule(), pipeline.clock.now)
    store.put("later", threshold_rule(), pipeline.clock.now + timedelta(minutes=1))
    settings = pipeline.settings.model_copy(
        update={"scheduler_shards": 1, "scheduler_lease_seconds": 30}
    )
    # A catch-up pass over both rules' minutes, in which time runs on as it sends.
    clock = SlowClock(pipeline.clock.now + timedelta(minutes=3))
    scheduler = LeaseWatcher(settings, stack.clients, owner="late", clock=clock)
    scheduler.left = []
    assert scheduler.run_pass().sent == 2
    assert len(scheduler.left) == 2 and all(left > 0 for left in scheduler.left)

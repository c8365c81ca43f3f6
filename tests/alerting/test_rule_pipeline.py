"""Alert rules end to end: rules put through the API, due runs sent by the scheduler,
evaluated from the rules queue, routed and delivered to the provider sandbox."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from alerting.scheduler import Scheduler
from api.main import create_app
from core.catalogue.models import iso, utcnow
from core.directory.users import UserStore
from tests.alerting.conftest import PREFIX, Clock, Database, Pipeline, add_user
from tests.conftest import AUTH, Stack


@pytest.fixture
def charts(tmp_path: Path) -> Database:
    db = Database("charts", f"sqlite:///{tmp_path / 'charts.db'}")
    db.execute("CREATE TABLE daily_top (day VARCHAR(10), chart VARCHAR(50), artist VARCHAR(50))")
    return db


@pytest.fixture
def pipeline(stack: Stack, sandbox: Any, charts: Database) -> Iterator[Pipeline]:
    clock = Clock(utcnow().replace(second=0, microsecond=0))
    built = Pipeline(stack, sandbox, clock, {charts.name: charts.url})
    yield built
    built.close()


@pytest.fixture
def client(stack: Stack, pipeline: Pipeline) -> Iterator[TestClient]:
    """The API with the pipeline's settings (its data sources)."""
    app = create_app(pipeline.settings, stack.clients)
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


def emails(sandbox: Any) -> list[dict[str, Any]]:
    return [m for m in sandbox.messages("sendgrid") if m.get("status", 202) < 300]


def recipients_of(message: dict[str, Any]) -> list[str]:
    body = message["json"]
    return [to["email"] for p in body["personalizations"] for to in p["to"]]


def subject_of(message: dict[str, Any]) -> str:
    return str(message["json"]["subject"])


def put_rule(client: TestClient, rule_id: str, body: dict[str, Any]) -> None:
    resp = client.put(f"/rules/{rule_id}", json=body)
    assert resp.status_code in (200, 201), resp.text


def outcomes(client: TestClient, rule_id: str) -> list[str]:
    items = client.get(f"/rules/{rule_id}/evaluations", params={"limit": 100}).json()["items"]
    return [e["outcome"] for e in reversed(items)]


def test_trend_tracker_emails_the_topic_once_per_change(
    stack: Stack, client: TestClient, pipeline: Pipeline, charts: Database, sandbox: Any
) -> None:
    users = UserStore(stack.clients.dynamodb, stack.clients.names.table)
    for user, email in (("fan-1", "ana@example.com"), ("fan-2", "bo@example.com")):
        add_user(stack, user, email=email)
        users.subscribe("charts.global", user, ["email"])
    put_rule(
        client,
        "top-artist",
        {
            "name": "Top artist",
            "schedule": "every 1m",
            "source": {
                "kind": "sql",
                "datasource": "charts",
                "query": "SELECT chart, artist FROM daily_top ORDER BY day DESC LIMIT 1",
            },
            "condition": {"kind": "changed"},
            "event_type": "trend.top_artist_changed",
            "notify_resolved": False,
            "severity": "info",
            "recipients": {"topic": "charts.global"},
        },
    )
    charts.execute("INSERT INTO daily_top VALUES ('2030-01-01', 'Global Top 50', 'Nova')")
    assert pipeline.tick() == 1
    assert emails(sandbox) == []  # the first run sets the baseline

    charts.execute("INSERT INTO daily_top VALUES ('2030-01-02', 'Global Top 50', 'Lumen')")
    pipeline.tick()
    sent = emails(sandbox)
    assert sorted(r for m in sent for r in recipients_of(m)) == [
        "ana@example.com",
        "bo@example.com",
    ]
    assert all(subject_of(m) == "New #1 artist on Global Top 50: Lumen" for m in sent)

    pipeline.tick()  # no change: nothing
    assert len(emails(sandbox)) == 2

    charts.execute("INSERT INTO daily_top VALUES ('2030-01-03', 'Global Top 50', 'Nova')")
    pipeline.tick()
    sent = emails(sandbox)
    assert len(sent) == 4
    assert sorted(subject_of(m) for m in sent[2:]) == ["New #1 artist on Global Top 50: Nova"] * 2
    assert outcomes(client, "top-artist") == ["ok", "firing", "ok", "firing"]


def test_sla_breach_fires_after_for_reminds_then_resolves(
    client: TestClient, pipeline: Pipeline, charts: Database, sandbox: Any
) -> None:
    charts.execute("CREATE TABLE loads (loaded_at VARCHAR(40))")
    stale = pipeline.clock.now - timedelta(minutes=30)
    charts.execute(f"INSERT INTO loads VALUES ('{iso(stale)}')")
    put_rule(
        client,
        "orders-fresh",
        {
            "name": "Orders freshness",
            "schedule": "every 1m",
            "source": {
                "kind": "sql",
                "datasource": "charts",
                "query": "SELECT MAX(loaded_at) AS loaded_at FROM loads",
            },
            "condition": {"kind": "freshness", "column": "loaded_at", "max_age": "15m"},
            "for": "2m",
            "repeat_interval": "5m",
            "severity": "critical",
            "recipients": {"to": {"email": ["oncall@example.com"]}},
        },
    )
    pipeline.tick()
    pipeline.tick()
    assert emails(sandbox) == []  # pending for two minutes
    pipeline.tick()
    [first] = emails(sandbox)
    assert recipients_of(first) == ["oncall@example.com"]
    assert subject_of(first).startswith("[CRITICAL] Orders freshness")

    for _ in range(4):
        pipeline.tick()
    assert len(emails(sandbox)) == 1  # counted, not sent, within the repeat interval
    pipeline.tick()
    reminder = emails(sandbox)[-1]
    assert len(emails(sandbox)) == 2
    assert (
        subject_of(reminder) == "[CRITICAL] Orders freshness: newest loaded_at is 38m old (max 15m)"
    )

    charts.execute(f"INSERT INTO loads VALUES ('{iso(pipeline.clock.now)}')")
    pipeline.tick()
    resolved = emails(sandbox)
    assert len(resolved) == 3 and subject_of(resolved[-1]).startswith("[RESOLVED] Orders")
    assert outcomes(client, "orders-fresh") == ["pending", "pending"] + ["firing"] * 6 + ["ok"]
    [alert] = client.get("/alerts", params={"state": "resolved"}).json()["items"]
    assert alert["count"] == 6
    assert [n["kind"] for n in alert["notifications"]] == ["open", "remind", "resolve"]


def rule_body(index: int) -> dict[str, Any]:
    return {
        "name": f"Rule {index}",
        "schedule": "every 1m",
        "source": {"kind": "sql", "datasource": "charts", "query": "SELECT 1 AS one"},
        "condition": {"kind": "any_rows", "min_rows": 2},
        "recipients": {"topic": "nobody"},
    }


def test_two_schedulers_send_each_due_run_once(
    stack: Stack, client: TestClient, pipeline: Pipeline
) -> None:
    for i in range(30):
        put_rule(client, f"r{i}", rule_body(i))
    clock = pipeline.clock
    schedulers = [
        Scheduler(pipeline.settings, stack.clients, owner=name, clock=clock) for name in ("a", "b")
    ]
    sent: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def work(scheduler: Scheduler) -> None:
        barrier.wait()
        sent[scheduler.owner] = scheduler.run_pass().sent

    for _ in range(2):  # two due minutes
        clock.advance(minutes=1)
        sent.clear()
        threads = [threading.Thread(target=work, args=(s,)) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(sent.values()) == 30
        assert pipeline.evaluate_pending() == 30
    for i in range(30):
        assert outcomes(client, f"r{i}") == ["ok", "ok"]


def test_a_scheduler_that_was_down_runs_the_latest_due_time_only(
    client: TestClient, pipeline: Pipeline
) -> None:
    put_rule(client, "r0", rule_body(0))
    pipeline.tick()
    sent = REGISTRY.get_sample_value("herald_scheduler_runs_total", {"outcome": "sent"}) or 0
    assert pipeline.tick(minutes=10) == 1
    assert REGISTRY.get_sample_value("herald_scheduler_runs_total", {"outcome": "sent"}) == (
        sent + 1
    )
    assert pipeline.tick(minutes=0) == 0  # the next due time is a minute away
    latest = client.get("/rules/r0/evaluations").json()["items"][0]
    assert latest["skipped_runs"] == 9
    assert latest["run"] == iso(pipeline.clock.now)


def test_a_run_sent_twice_is_evaluated_once(
    stack: Stack, client: TestClient, pipeline: Pipeline
) -> None:
    put_rule(client, "r0", rule_body(0))
    pipeline.clock.advance(minutes=1)
    pipeline.scheduler.run_pass()
    queue = f"{PREFIX}-rules-normal"
    [message] = stack.receive_all(queue)
    url = stack.clients.queue_url(queue)
    stack.clients.sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
    stack.clients.sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    assert pipeline.evaluate_pending() == 2
    assert outcomes(client, "r0") == ["ok"]


def test_a_run_overtaken_by_the_next_is_recorded_as_skipped(
    client: TestClient, pipeline: Pipeline
) -> None:
    put_rule(client, "r0", rule_body(0))
    earlier = iso(pipeline.clock.now + timedelta(minutes=1))
    later = iso(pipeline.clock.now + timedelta(minutes=2))
    pipeline.clock.advance(minutes=2)
    assert pipeline.evaluator.evaluate_run("r0", later, {}) == "ok"
    assert pipeline.evaluator.evaluate_run("r0", earlier, {}) == "skipped"
    assert pipeline.evaluator.evaluate_run("r0", earlier, {}) is None  # recorded once
    assert outcomes(client, "r0") == ["skipped", "ok"]


def test_a_changed_or_deleted_rule_keeps_no_second_schedule(
    client: TestClient, pipeline: Pipeline
) -> None:
    put_rule(client, "r0", rule_body(0))
    put_rule(client, "r0", {**rule_body(0), "schedule": "every 2m"})
    assert sum(pipeline.tick() for _ in range(4)) == 2  # the even minutes only
    assert client.delete("/rules/r0").status_code == 204
    assert pipeline.tick() + pipeline.tick() == 0

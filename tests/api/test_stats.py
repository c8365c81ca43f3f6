"""GET /stats: recent events by status from the by_status index, DLQ depths from SQS, and
latency quantiles interpolated from the end-to-end histogram."""

from __future__ import annotations

import math

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram

from core.operations import stats
from tests.api.test_events import COMMENT
from tests.conftest import Stack


def test_stats_counts_recent_events_and_dead_letters(client: TestClient, stack: Stack) -> None:
    for _ in range(2):
        assert client.post("/events", json=COMMENT).status_code == 202
    assert client.post("/events", json={**COMMENT, "delay": "1h"}).status_code == 202
    dlq = stack.clients.names.dlq_of(stack.clients.names.channel_queue("sms", "normal"))
    stack.clients.sqs.send_message(QueueUrl=stack.clients.queue_url(dlq), MessageBody="x")
    resp = client.get("/stats")
    assert resp.status_code == 200
    body = resp.json()
    assert body["events"] == {
        "window_seconds": 3600,
        "counts": {
            "START": 2,
            "PROCESSING": 0,
            "SUCCESS": 0,
            "FAILED": 0,
            "SCHEDULED": 1,
            "CANCELLED": 0,
        },
        "truncated": False,
    }
    assert body["dlq_depths"][dlq] == 1
    assert sum(v for k, v in body["dlq_depths"].items() if k != dlq) == 0
    assert set(body) == {"events", "notifications", "end_to_end_seconds", "dlq_depths"}


def test_stats_needs_a_key(client: TestClient) -> None:
    assert client.get("/stats", headers={"X-API-Key": ""}).status_code == 401


def test_quantiles_interpolate_within_buckets() -> None:
    buckets = [(0.1, 0.0), (0.5, 10.0), (1.0, 10.0), (math.inf, 10.0)]
    assert stats.quantile(0.5, buckets) == 0.3
    assert stats.quantile(0.99, buckets) == 0.496
    assert stats.quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None
    assert stats.quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0  # past the last bound


def test_summaries_from_a_registry() -> None:
    registry = CollectorRegistry()
    latency = Histogram(
        "herald_end_to_end_latency_seconds",
        "",
        ["channel", "priority"],
        buckets=(1, 2, 4),
        registry=registry,
    )
    for value in (0.5, 1.5, 1.5, 3):
        latency.labels("email", "normal").observe(value)
    latency.labels("email", "critical").observe(0.5)
    sends = Counter(
        "herald_worker_sends", "", ["channel", "provider", "outcome"], registry=registry
    )
    sends.labels("email", "sendgrid", "sent").inc(5)
    sends.labels("email", "sendgrid", "retry").inc()
    summary = stats.latency_quantiles(registry)
    assert summary["email"]["count"] == 5
    assert summary["email"]["p50"] == 1.25  # rank 2.5 of 5: a quarter into (1, 2] (2 below it)
    assert stats.notifications_by_channel(registry) == {
        "email": {"created": {}, "sends": {"sent": 5, "retry": 1}}
    }

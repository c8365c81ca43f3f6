"""The pipeline as real processes in multiprocess metrics mode: the API's GET /metrics sums
every process's counters, and they equal what happened (events, sends per channel, one
retry, one dead-letter move)."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import PREFIX, Herald
from tests.support import wait_until

COMMENT = {"type": "comment", "data": {"actor": "Ana", "post": "p-1", "text": "Lovely!"}}


def scrape(herald: Herald) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = herald.api.get("/metrics")
    assert resp.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counters_equal_what_happened(herald: Herald, sandbox: Any) -> None:
    retried = herald.user(phone="+14155550110", categories={"activity": ["sms"]})
    sandbox.fail("twilio", 500, count=1)
    herald.wait_for_event(herald.post_event({**COMMENT, "user_id": retried}), {"SUCCESS"})

    both = herald.user(
        phone="+14155550111", email="ana@example.com", categories={"activity": ["sms", "email"]}
    )
    invalid = herald.user(phone="+15005550001", categories={"activity": ["sms"]})
    herald.wait_for_event(herald.post_event({**COMMENT, "user_id": both}), {"SUCCESS"})
    herald.wait_for_event(herald.post_event({**COMMENT, "user_id": invalid}), {"FAILED"})

    sms_queue = f"{PREFIX}-sms-normal"
    # The move to the DLQ is counted once SQS took the copy, just after the record failed.
    assert wait_until(
        lambda: value(scrape(herald), "herald_dlq_moves_total", queue=sms_queue) == 1, timeout=15
    )
    samples = scrape(herald)

    assert value(samples, "herald_events_accepted_total", priority="normal") == 3
    assert value(samples, "herald_router_events_routed_total", lane="normal") == 3
    created = "herald_router_notifications_created_total"
    assert value(samples, created, channel="sms", lane="normal", status="queued") == 3
    assert value(samples, created, channel="email", lane="normal", status="queued") == 1

    sends = "herald_worker_sends_total"
    assert value(samples, sends, channel="sms", provider="twilio", outcome="sent") == 2
    assert value(samples, sends, channel="sms", provider="twilio", outcome="retry") == 1
    assert value(samples, sends, channel="sms", provider="twilio", outcome="failed") == 1
    assert value(samples, sends, channel="email", provider="sendgrid", outcome="sent") == 1
    assert value(samples, "herald_worker_retries_total", channel="sms") == 1
    assert value(samples, "herald_dlq_moves_total", queue=sms_queue) == 1

    e2e = "herald_end_to_end_latency_seconds_count"
    assert value(samples, e2e, channel="sms", priority="normal") == 2
    assert value(samples, e2e, channel="email", priority="normal") == 1
    provider_calls = "herald_provider_request_duration_seconds_count"
    assert value(samples, provider_calls, channel="sms") == 4  # 500, 201, 201, 400
    # Every process's AWS calls are in the one scrape: the API's (PutItem, PublishBatch),
    # the router's and the workers' (receives, BatchGetItem of profiles and of records,
    # UpdateItem of status and claims). Events that come one at a time need no transaction
    # (a lone item is a plain write, at half a transaction's write units), so whether one
    # shows depends on what arrives together.
    aws = {labels for name, labels in samples if name == "herald_aws_requests_total"}
    operations = {dict(labels)["operation"] for labels in aws}
    assert {
        "PutItem",
        "PublishBatch",
        "ReceiveMessage",
        "BatchGetItem",
        "UpdateItem",
        "SendMessageBatch",
        "DeleteMessageBatch",
    } <= operations

    stats = herald.api.get("/stats").json()
    assert stats["events"]["counts"]["SUCCESS"] == 2
    assert stats["events"]["counts"]["FAILED"] == 1
    assert stats["notifications"]["sms"]["sends"] == {"sent": 2, "retry": 1, "failed": 1}
    assert stats["end_to_end_seconds"]["sms"]["count"] == 2
    assert stats["dlq_depths"][f"{sms_queue}-dlq"] == 1

"""What `GET /stats` summarises: recent events by status (DynamoDB), notifications by
channel and their end-to-end latency quantiles (this stack's metrics), DLQ depths (SQS).

Every read is bounded: the event counts read at most `max_pages` pages of the `by_status`
index per status (`Select=COUNT`, so a page is up to 1 MB of keys, not items sent back) and
say `truncated` when there was more; the queues are one GetQueueAttributes each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry

from core import dynamo
from core.models import EventStatus, iso, utcnow
from core.names import ResourceNames

QUANTILES = (0.5, 0.95, 0.99)


def events_by_status(
    db: Any,
    table: str,
    window: timedelta,
    tenant: str | None = None,
    max_pages: int = 5,
) -> dict[str, Any]:
    """Events created within `window` by status; with `tenant`, that tenant's only (events
    without a tenant are `default`'s)."""
    since = iso(utcnow() - window)
    counts: dict[str, int] = {}
    truncated = False
    for status in EventStatus:
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": dynamo.GSI_BY_STATUS,
            "KeyConditionExpression": "#s = :status AND created_key >= :since",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":status": {"S": status.value}, ":since": {"S": since}},
            "Select": "COUNT",
        }
        if tenant is not None:
            kwargs["ExpressionAttributeNames"]["#t"] = "tenant"
            kwargs["ExpressionAttributeValues"][":tenant"] = {"S": tenant}
            condition = "#t = :tenant"
            if tenant == "default":
                condition = f"({condition} OR attribute_not_exists(#t))"
            kwargs["FilterExpression"] = condition
        total = 0
        for _ in range(max_pages):
            resp = db.query(**kwargs)
            total += int(resp.get("Count", 0))
            last = resp.get("LastEvaluatedKey")
            if not last:
                break
            kwargs["ExclusiveStartKey"] = last
        else:
            truncated = True
        counts[status.value] = total
    return {"window_seconds": int(window.total_seconds()), "counts": counts, "truncated": truncated}


def dlq_depths(sqs: Any, queue_url: Callable[[str], str], names: ResourceNames) -> dict[str, Any]:
    """Messages in each work queue's DLQ (None where the queue did not answer)."""
    depths: dict[str, int | None] = {}
    for queue in names.work_queues():
        dlq = names.dlq_of(queue)
        try:
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue_url(dlq),
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[dlq] = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
                attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
            )
        except (BotoCoreError, ClientError):
            depths[dlq] = None
    return depths


def _samples(registry: CollectorRegistry, name: str) -> Iterable[Any]:
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                yield sample


def notifications_by_channel(registry: CollectorRegistry) -> dict[str, dict[str, dict[str, int]]]:
    """Per channel: records the router created by first status, and provider calls by outcome
    (counted since the processes started)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for sample in _samples(registry, "herald_router_notifications_created_total"):
        created = out.setdefault(sample.labels["channel"], {"created": {}, "sends": {}})["created"]
        status = sample.labels["status"]
        created[status] = created.get(status, 0) + int(sample.value)
    for sample in _samples(registry, "herald_worker_sends_total"):
        sends = out.setdefault(sample.labels["channel"], {"created": {}, "sends": {}})["sends"]
        outcome = sample.labels["outcome"]
        sends[outcome] = sends.get(outcome, 0) + int(sample.value)
    return out


def latency_quantiles(registry: CollectorRegistry) -> dict[str, dict[str, float | int | None]]:
    """End-to-end p50/p95/p99 per channel (all priorities), interpolated within histogram
    buckets as Prometheus's histogram_quantile does; `count` is how many were observed."""
    buckets: dict[str, dict[float, float]] = {}
    for sample in _samples(registry, "herald_end_to_end_latency_seconds_bucket"):
        per = buckets.setdefault(sample.labels["channel"], {})
        bound = float(sample.labels["le"])
        per[bound] = per.get(bound, 0.0) + sample.value
    out: dict[str, dict[str, float | int | None]] = {}
    for channel, per in sorted(buckets.items()):
        ordered = sorted(per.items())
        total = ordered[-1][1] if ordered else 0.0
        summary: dict[str, float | int | None] = {"count": int(total)}
        for q in QUANTILES:
            summary[f"p{round(q * 100)}"] = quantile(q, ordered)
        out[channel] = summary
    return out


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative (upper bound, count) buckets ending with +Inf."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):  # beyond the last finite bucket: its bound is all we know
                return lower_bound
            if count == lower_count:
                return bound
            return round(
                lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count),
                3,
            )
        lower_bound, lower_count = bound, count
    return lower_bound

"""What `GET /stats` summarises: recent events by status (DynamoDB), notifications by
channel and their end-to-end latency quantiles (this stack's metrics), DLQ depths (SQS).

Every read is bounded: the event counts read at most `max_pages` pages of each listing
shard (`Select=COUNT`, so a page is up to 1 MB of keys, not items sent back) and
say `truncated` when there was more; the queues are one GetQueueAttributes each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry

from core.aws.names import ResourceNames
from core.catalogue.models import EventStatus, iso, utcnow
from core.ledger import event_index
from core.ledger.event_listing import ShardedReader, recent_day_source, status_source
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout

QUANTILES = (0.5, 0.95, 0.99)


def events_by_status(
    db: Any,
    table: str,
    window: timedelta,
    tenant: str | None = None,
    max_pages: int = 5,
    layout: ShardLayout = DEFAULT_LAYOUT,
) -> dict[str, Any]:
    """Events created within `window` by status; with `tenant`, that tenant's only (events
    without a tenant are `default`'s).

    In-flight and failed events are counted in the status index; every event of the window
    in the day index; `SUCCESS`, which leaves the status index, is the difference (and so
    counts `DIGESTED` events too, which leave it as well)."""
    since = iso(utcnow() - window)
    reader = ShardedReader(db, table)
    counts: dict[str, int] = {}
    truncated = False
    for status in EventStatus:
        if status in event_index.INDEXED_STATUSES:
            counts[status.value], cut = reader.count(
                status_source(status, layout.status_read), since, tenant, max_pages
            )
            truncated = truncated or cut
    total, cut = reader.count(
        recent_day_source(since, layout.listing_read), since, tenant, max_pages
    )
    counts[EventStatus.SUCCESS.value] = max(0, total - sum(counts.values()))
    counted = event_index.INDEXED_STATUSES | {EventStatus.SUCCESS}
    counts = {status.value: counts[status.value] for status in EventStatus if status in counted}
    return {
        "window_seconds": int(window.total_seconds()),
        "counts": counts,
        "truncated": truncated or cut,
    }


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

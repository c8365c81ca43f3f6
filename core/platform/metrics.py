"""Prometheus metrics of every Herald process, and the one place they are defined.

Every process records into prometheus-client's default registry. Under supervisord
(`PROMETHEUS_MULTIPROC_DIR` set before any process starts) each process writes its values
to files in that directory and `render()` sums every process's files, so the API's
`GET /metrics` is the one scrape target of the local stack. On AWS each task exposes its
own.

Labels take only bounded values: channels, lanes, providers, outcomes, route templates,
queue names, AWS services and operations, reasons folded into a few kinds. Never an id, an
address or free text, which would grow a series per event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

if os.environ.get(MULTIPROC_ENV):  # values live in files there from the first metric on
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

# Seconds from an event's acceptance to the provider's: fast hops up to a slow retry.
END_TO_END_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ROUND_BUCKETS = (1, 2, 5, 10, 25, 50, 100)

# --- API ------------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "herald_api_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
API_ACCEPT_SECONDS = Histogram(
    "herald_api_accept_duration_seconds",
    "Time to accept an event (record and publish) as the POST /events caller sees it.",
    buckets=LATENCY_BUCKETS,
)
GROUP_COMMIT_ROUND_SIZE = Histogram(
    "herald_api_group_commit_round_size",
    "Items that shared one group-commit call.",
    ["call"],
    buckets=ROUND_BUCKETS,
)
EVENTS_ACCEPTED = Counter(
    "herald_events_accepted_total",
    "Events recorded and answered 202 (repeats of an idempotency key excluded).",
    ["priority"],
)

# --- router ---------------------------------------------------------------------------------
EVENTS_ROUTED = Counter(
    "herald_router_events_routed_total",
    "Router pages done (an event to one user is one page).",
    ["lane"],
)
NOTIFICATIONS_CREATED = Counter(
    "herald_router_notifications_created_total",
    "Notification records the router created, by channel, lane and first status.",
    ["channel", "lane", "status"],
)
NOTIFICATIONS_SKIPPED = Counter(
    "herald_router_notifications_skipped_total",
    "Notifications created as SKIPPED, by reason kind.",
    ["channel", "reason"],
)
FANOUT_PAGES = Counter(
    "herald_router_fanout_pages_total",
    "Topic subscriber pages fanned out.",
    ["lane"],
)

# --- workers --------------------------------------------------------------------------------
SENDS = Counter(
    "herald_worker_sends_total",
    "Provider calls by channel, provider and outcome (sent, retry, failed).",
    ["channel", "provider", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "herald_provider_request_duration_seconds",
    "Time a provider call took, whatever its outcome.",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
RETRIES = Counter(
    "herald_worker_retries_total", "Notifications put back to retry later.", ["channel"]
)
CLAIM_CONFLICTS = Counter(
    "herald_worker_claim_conflicts_total",
    "Messages whose notification another worker held.",
    ["channel"],
)
RATE_LIMIT_WAITS = Counter(
    "herald_worker_rate_limit_waits_total",
    "Sends that waited for the provider's rate limit.",
    ["channel"],
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "herald_worker_rate_limit_wait_seconds_total",
    "Time spent waiting for the provider's rate limit.",
    ["channel"],
)
END_TO_END_SECONDS = Histogram(
    "herald_end_to_end_latency_seconds",
    "From the event's acceptance (created_at) to the provider accepting the notification.",
    ["channel", "priority"],
    buckets=END_TO_END_BUCKETS,
)
DLQ_MOVES = Counter(
    "herald_dlq_moves_total",
    "Messages copied to a dead-letter queue, by the queue they left.",
    ["queue"],
)

# --- reconciler -----------------------------------------------------------------------------
REPAIRS = Counter(
    "herald_reconciler_repairs_total",
    "What reconciler passes did, by kind (republished, failed, settled, repaired, "
    "stranded_failed, deferred: due but left for a pass that finds the queue caught up).",
    ["kind"],
)

SCHEDULED_RUNS = Counter(
    "herald_scheduler_runs_total",
    "Alert rule runs the scheduler handled, by outcome (sent, skipped).",
    ["outcome"],
)
SCHEDULE_LAG_SECONDS = Histogram(
    "herald_scheduler_lag_seconds",
    "From a rule run's due time to its send to the evaluators.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

# --- AWS ------------------------------------------------------------------------------------
AWS_REQUESTS = Counter(
    "herald_aws_requests_total",
    "AWS API calls by service, operation and outcome (ok, throttled, conflict, error).",
    ["service", "operation", "outcome"],
)
AWS_RETRIES = Counter(
    "herald_aws_retries_total",
    "Tries botocore repeated within AWS calls (throttling, transient errors) before the "
    "outcome counted in herald_aws_requests_total.",
    ["service", "operation"],
)

# --- queues (one collector process) ---------------------------------------------------------
QUEUE_MESSAGES = Gauge(
    "herald_queue_messages",
    "Messages in a queue: visible (waiting) or in_flight (received, not yet deleted).",
    ["queue", "state"],
    multiprocess_mode="mostrecent",
)
QUEUE_OLDEST_AGE = Gauge(
    "herald_queue_oldest_message_age_seconds",
    "Age of the oldest visible message found by a peek (0 when the queue looks empty).",
    ["queue"],
    multiprocess_mode="mostrecent",
)


def lane_of(priority: Any) -> str:
    """The queue lane a priority travels on (critical has its own queues)."""
    return "critical" if str(priority) == "critical" else "normal"


def skip_kind(reason: str | None) -> str:
    """A SKIPPED reason folded into a bounded label value."""
    text = (reason or "").lower()
    if text.startswith("opted out"):
        return "opted_out"
    if text.startswith("quiet hours"):
        return "quiet_hours"
    return "no_contact"


def notifications_planned(notes: Iterable[Any]) -> None:
    """Count records the router created (`NewNotification`s: a message and a status)."""
    for note in notes:
        message = note.message
        status = str(note.status).lower()
        NOTIFICATIONS_CREATED.labels(message.channel, lane_of(message.priority), status).inc()
        if status == "skipped":
            NOTIFICATIONS_SKIPPED.labels(message.channel, skip_kind(note.reason)).inc()


def since(created_at: str, now: float | None = None) -> float:
    """Seconds since an ISO timestamp (never negative: clocks of processes differ)."""
    try:
        then = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(current - then.timestamp(), 0.0)


def registry() -> CollectorRegistry:
    """Every process's series when in multiprocess mode, else this process's."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    merged = CollectorRegistry()
    _multiprocess.MultiProcessCollector(merged)
    return merged


def render() -> bytes:
    return bytes(generate_latest(registry()))


def events_accepted(events: Iterable[Any]) -> None:
    for event in events:
        EVENTS_ACCEPTED.labels(str(event.priority)).inc()


def event_routed(event: Any, notes: Iterable[Any]) -> None:
    """An event routed together with others of its receive, and the records it made."""
    EVENTS_ROUTED.labels(lane_of(event.priority)).inc()
    notifications_planned(notes)


def page_routed(event: Any, page: int) -> None:
    """A page of the one-event path done: page 0 is the event routed, later ones are
    topic fan-out pages (a topic's first page counts as both)."""
    lane = lane_of(event.priority)
    if page == 0:
        EVENTS_ROUTED.labels(lane).inc()
    if event.topic is not None:
        FANOUT_PAGES.labels(lane).inc()


# The provider behind each channel, for outcomes where no provider answered with its name.
CHANNEL_PROVIDERS = {"sms": "twilio", "whatsapp": "twilio", "email": "sendgrid", "push": "sns"}


def provider_of(message: Any) -> str:
    if message.channel == "chat":
        return str(message.content.get("format") or "webhook")
    return CHANNEL_PROVIDERS.get(message.channel, "unknown")


def sent(message: Any, provider: str) -> None:
    """A provider took a notification: count it, and the event's age now."""
    SENDS.labels(message.channel, provider, "sent").inc()
    END_TO_END_SECONDS.labels(message.channel, str(message.priority)).observe(
        since(message.created_at)
    )


def not_sent(message: Any, outcome: str) -> None:
    """`retry` (put back with a backoff) or `failed` (given up: FAILED and dead-lettered)."""
    SENDS.labels(message.channel, provider_of(message), outcome).inc()
    if outcome == "retry":
        RETRIES.labels(message.channel).inc()


def rate_limit_waited(channel: str, seconds: float) -> None:
    if seconds > 0:
        RATE_LIMIT_WAITS.labels(channel).inc()
        RATE_LIMIT_WAIT_SECONDS.labels(channel).inc(seconds)


def reconciled(report: Any) -> None:
    """A reconciler pass's `PassReport`, counted by kind."""
    for kind in ("republished", "failed", "settled", "repaired", "stranded_failed", "deferred"):
        count = int(getattr(report, kind, 0))
        if count:
            REPAIRS.labels(kind).inc(count)


def scheduled(stats: Any) -> None:
    """A scheduler pass's `PassStats`: runs sent and skipped, and each sent run's lag."""
    if stats.sent:
        SCHEDULED_RUNS.labels("sent").inc(stats.sent)
    if stats.skipped_runs:
        SCHEDULED_RUNS.labels("skipped").inc(stats.skipped_runs)
    for lag in stats.lags:
        SCHEDULE_LAG_SECONDS.observe(lag)

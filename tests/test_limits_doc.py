"""docs/limits.md's table is generated from the code that enforces each limit; this keeps
it true.

Regenerate with `UPDATE_DOCS=1 .venv/bin/pytest tests/test_limits_doc.py`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from annotated_types import MaxLen

from api.main import create_app
from api.routes.events import MAX_EVENT_BYTES
from api.schemas import MAX_DATA_DEPTH
from core.aws.dynamo import TRANSACT_MAX, TRANSACT_MAX_BYTES
from core.catalogue.templates import CONTENT_MAX_BYTES, PART_MAX, RENDER_SECONDS_MAX
from core.directory.profiles import ProfileFields
from core.ledger.notification_records import HISTORY_DETAIL_MAX
from core.ledger.publisher import SNS_BATCH_MAX, SNS_BATCH_MAX_BYTES
from core.platform.settings import Settings
from core.security.api_keys import TOKEN_MAX
from listeners.batch import ERROR_ATTRIBUTE_MAX, SQS_BATCH_MAX, SQS_BATCH_MAX_BYTES
from tests.support import ROOT

DOC = ROOT / "docs" / "limits.md"
BLOCK = re.compile(
    r"(<!-- limits-table:[^\n]*-->\n\| limit \| value \| set by \| past it \|\n"
    r"\|---\|---\|---\|---\|\n)"
    r"(.*?)(<!-- end limits-table -->)",
    re.S,
)


def size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n:,} bytes"


def default(name: str) -> Any:
    return Settings.model_fields[name].default


def maximum(name: str) -> Any:
    return next(m.le for m in Settings.model_fields[name].metadata if hasattr(m, "le"))


def find(schema: Any, key: str) -> Any:
    """The first `key` anywhere in an OpenAPI fragment (through anyOf and the like)."""
    if isinstance(schema, dict):
        if key in schema:
            return schema[key]
        schema = list(schema.values())
    if isinstance(schema, list):
        for value in schema:
            found = find(value, key)
            if found is not None:
                return found
    return None


def param(openapi: dict[str, Any], path: str, method: str, name: str, key: str) -> Any:
    for parameter in openapi["paths"][path][method]["parameters"]:
        if parameter["name"] == name:
            return find(parameter["schema"], key)
    raise KeyError(name)


def limits_table() -> str:
    api = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    push_max = next(
        m.max_length
        for m in ProfileFields.model_fields["push_endpoints"].metadata
        if isinstance(m, MaxLen)
    )
    parts = ", ".join(f"`{part}` {limit:,}" for part, limit in PART_MAX.items())
    rows = [
        (
            "request body",
            size(default("max_body_bytes")),
            "`HERALD_MAX_BODY_BYTES`",
            "413, before the body is read",
        ),
        (
            "one event, JSON-encoded as published",
            size(MAX_EVENT_BYTES),
            "`MAX_EVENT_BYTES` (api/routes/events.py)",
            "413 `data: the event is over …`",
        ),
        (
            "events in one `POST /events/batch`",
            f"{default('max_batch_events')} (at most {maximum('max_batch_events')})",
            "`HERALD_MAX_BATCH_EVENTS`",
            "413 `events: at most … events per batch`",
        ),
        (
            "nesting of `data`",
            f"{MAX_DATA_DEPTH} levels",
            "`MAX_DATA_DEPTH` (api/schemas.py)",
            "422 `data: … nested deeper than …`",
        ),
        (
            "numbers in `data`",
            "finite (no NaN, no Infinity)",
            "JSON",
            "422 `data: … NaN and Infinity are not JSON numbers`",
        ),
        (
            "`Idempotency-Key`",
            f"{param(api, '/events', 'post', 'Idempotency-Key', 'maxLength')} characters",
            "API",
            "422",
        ),
        (
            "`user_id`, `topic`",
            f"`{find(api['paths']['/users/{user_id}']['put']['parameters'], 'pattern')}`, "
            f"`{param(api, '/topics/{topic}/subscribers', 'get', 'topic', 'pattern')}`",
            "API",
            "422 naming the field",
        ),
        ("push endpoints per user", str(push_max), "API", "422"),
        (
            "page sizes",
            f"events {param(api, '/events', 'get', 'limit', 'maximum')}, subscribers "
            f"{param(api, '/topics/{topic}/subscribers', 'get', 'limit', 'maximum')}, dead letters "
            f"{param(api, '/dlq/{queue}/messages', 'get', 'limit', 'maximum')}; cursor "
            f"{param(api, '/events', 'get', 'cursor', 'maxLength')} characters",
            "API",
            "422",
        ),
        (
            "subscribers of one topic (fan-out)",
            f"{default('max_topic_subscribers'):,}",
            "`HERALD_MAX_TOPIC_SUBSCRIBERS`",
            "409 `topic: … has … subscribers` (or `is full`) on subscribe",
        ),
        (
            "subscribers routed per router message",
            f"{default('fanout_page_size'):,}",
            "`HERALD_FANOUT_PAGE_SIZE`",
            "the next page goes in a continuation message",
        ),
        (
            "a fan-out's messages waiting ahead of its lane",
            f"{default('fanout_max_waiting'):,}",
            "`HERALD_FANOUT_MAX_WAITING`",
            "the next page waits `HERALD_FANOUT_PACE_SECONDS` and looks again",
        ),
        (
            "rendered parts, in characters",
            parts,
            "`PART_MAX` (core/catalogue/templates.py)",
            "cut, ending in `…`",
        ),
        (
            "rendered content of one notification",
            size(CONTENT_MAX_BYTES),
            "`CONTENT_MAX_BYTES` (core/catalogue/templates.py)",
            "notification FAILED: `template <type>/<channel>: rendered content is over …`",
        ),
        (
            "rendering one notification (its templates compile beforehand, once per process)",
            f"{RENDER_SECONDS_MAX:g} s",
            "`RENDER_SECONDS_MAX` (core/catalogue/templates.py)",
            "notification FAILED: `template <type>/<channel>: rendering took over …`",
        ),
        (
            "one `SendMessageBatch` (channel queues, dead letters)",
            f"{SQS_BATCH_MAX} entries, {size(SQS_BATCH_MAX_BYTES)}",
            "SQS",
            "split into more calls",
        ),
        (
            "one `PublishBatch` (API, reconciler)",
            f"{SNS_BATCH_MAX} entries, {size(SNS_BATCH_MAX_BYTES)}",
            "SNS",
            "split into more calls",
        ),
        (
            "one `TransactWriteItems` of event records (API)",
            f"{TRANSACT_MAX} items, {TRANSACT_MAX_BYTES // (1024 * 1024)} MiB",
            "DynamoDB",
            "split into more calls",
        ),
        (
            "error kept with a dead letter",
            f"{ERROR_ATTRIBUTE_MAX:,} characters",
            "SQS attributes",
            "cut",
        ),
        (
            "detail of one history entry",
            f"{HISTORY_DETAIL_MAX} characters",
            "DynamoDB item size",
            "cut",
        ),
        (
            "requests per API key",
            f"{default('api_key_rate_per_second'):g}/s, burst {default('api_key_burst'):g}",
            "`HERALD_API_KEY_RATE_PER_SECOND`, `HERALD_API_KEY_BURST`",
            "429 with Retry-After",
        ),
        (
            "an API key",
            f"{TOKEN_MAX} characters, `hk_<id>_<secret>`",
            "`TOKEN_MAX` (core/security/api_keys.py)",
            "401 without a lookup",
        ),
        (
            "failed authentications per client address",
            f"{default('auth_failure_rate_per_second'):g}/s, burst "
            f"{default('auth_failure_burst'):g}",
            "`HERALD_AUTH_FAILURE_RATE_PER_SECOND`, `HERALD_AUTH_FAILURE_BURST`",
            "429 with Retry-After, no lookup (verified keys go on)",
        ),
        (
            "`event_id` in a path",
            f"`{param(api, '/events/{event_id}', 'get', 'event_id', 'pattern')}`",
            "API",
            "422, no lookup",
        ),
        (
            "provider calls per worker process",
            f"{default('provider_rate_per_second'):g}/s",
            "`HERALD_PROVIDER_RATE_PER_SECOND`",
            "the worker waits its turn",
        ),
        (
            "one AWS call",
            f"{default('aws_timeout_seconds'):g} s, {default('aws_max_attempts')} tries",
            "`HERALD_AWS_TIMEOUT_SECONDS`, `HERALD_AWS_MAX_ATTEMPTS`",
            "API: 503 with Retry-After; router and workers: retried with backoff",
        ),
    ]
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)


def test_docs_limits_md_matches_the_code() -> None:
    text = DOC.read_text()
    match = BLOCK.search(text)
    assert match, "docs/limits.md has no limits-table block"
    if os.environ.get("UPDATE_DOCS"):
        DOC.write_text(text[: match.start(2)] + limits_table() + text[match.end(2) :])
        return
    assert match.group(2) == limits_table(), "docs/limits.md is stale: UPDATE_DOCS=1"

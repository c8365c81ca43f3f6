"""Events: accept, look up and list."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Request, Response, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from alerting.durations import parse_duration
from alerting.inline import chat_url_problem
from api import scheduled_events
from api.deps import PageCursor, ServicesDep, TenantDep
from api.errors import validation_problem
from api.schemas import (
    EVENT_PATH_PATTERN,
    BatchIn,
    BatchItemResult,
    BatchResult,
    EventAccepted,
    EventIn,
    EventOut,
    EventPage,
    NotificationOut,
    NotificationPage,
    Problem,
)
from api.services import Services
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, EventRecord, EventStatus, iso, utcnow
from core.ledger.event_items import EventExists
from core.security.inline_recipients import InlineLimitExceeded, build_limits, check_for_key
from core.security.tenants import Tenant

log = logging.getLogger("herald.api.events")
router = APIRouter(prefix="/events", tags=["events"])

# SNS and SQS take at most 256 KiB a message; leave room for attributes and the envelope.
MAX_EVENT_BYTES = 256 * 1024 - 4096

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Repeating a request with the same key returns the original event.",
    ),
]

ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The key or event_id was used for a different event."},
    413: {"model": Problem, "description": "Body or event too large."},
    415: {"model": Problem, "description": "Body is not JSON."},
    422: {"model": Problem, "description": "Invalid event; the message names the field."},
    503: {"model": Problem, "description": "Storage unavailable; retry after Retry-After."},
}

# Notifications per page of GET /events/{id} and its /notifications: a bounded read.
NOTIFICATIONS_PAGE = 100


def resolve_event_id(body: EventIn, key: str | None, tenant: Tenant) -> str:
    """The stored id. Idempotency keys and a client's event_id are the tenant's own (two
    tenants' `k` or `ev-1` are two events): a client's id is stored qualified by its
    tenant, a key's id comes from the tenant's own namespace, and Herald's own are random."""
    if key is not None and body.event_id is not None:
        raise HTTPException(422, "give either the Idempotency-Key header or event_id, not both")
    if body.event_id is not None:
        return tenant.qualify(body.event_id)
    if key is not None:
        return tenant.event_id_for(key)
    return str(uuid.uuid4())


def check_inline(body: EventIn, services: Services) -> None:
    """Inline chat webhooks pass the rules users' webhooks pass (alerting/inline.py)."""
    if body.to is not None:
        problem = chat_url_problem(body.to, services.settings.chat_webhook_host_patterns)
        if problem is not None:
            raise HTTPException(422, problem)


async def limit_inline(body: EventIn, services: Services, request: Request, event_id: str) -> None:
    """Inline numbers within the allowed prefixes, and the key's daily quota of inline
    recipients counted, before the event is accepted (core/security/inline_recipients.py)."""
    if body.to is not None:
        limits = build_limits(services.settings, services.clients)
        key = getattr(request.state, "api_key", None)  # None: authentication is off
        try:
            await run_in_threadpool(check_for_key, limits, body.to.plain(), event_id, key)
        except InlineLimitExceeded as exc:
            raise HTTPException(exc.status, exc.message, exc.headers) from None


def to_event(body: EventIn, event_id: str, tenant: Tenant) -> Event:
    spec = EVENT_TYPES[body.type]
    event = Event(
        event_id=event_id,
        type=body.type,
        category=spec.category,
        priority=body.priority or spec.priority,
        user_id=body.user_id and tenant.qualify(body.user_id),
        topic=body.topic and tenant.qualify(body.topic),
        data=body.data,
        created_at=iso(utcnow()),
        to=body.to.plain() if body.to is not None else None,
        dedupe_key=body.dedupe_key,
        action=(body.action or "trigger") if body.dedupe_key is not None else None,
        repeat_interval_seconds=(
            int(parse_duration(body.repeat_interval)) if body.repeat_interval else None
        ),
        notify_resolved=body.notify_resolved,
        tenant=tenant.name,
        digest=body.digest,
        send_at=scheduled_events.delayed_until(body.send_at, body.delay),
        send_at_local=body.send_at_local,
    )
    if len(event.model_dump_json().encode()) > MAX_EVENT_BYTES:
        raise HTTPException(413, f"data: the event is over {MAX_EVENT_BYTES} bytes once encoded")
    return event


def is_repeat(existing: EventRecord, fingerprint: str, tenant: Tenant) -> bool:
    """The same tenant's same event again; another tenant's event under this id, whatever
    its payload, is a conflict that says nothing about it."""
    return tenant.owns(existing.tenant) and existing.payload_hash == fingerprint


def duplicate_or_conflict(existing: EventRecord, fingerprint: str, tenant: Tenant) -> EventAccepted:
    if not is_repeat(existing, fingerprint, tenant):
        raise HTTPException(
            409,
            f"event_id {tenant.local(existing.event_id)} was already used for a different event",
        )
    return EventAccepted(
        event_id=tenant.local(existing.event_id), status=existing.status, duplicate=True
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    responses={
        200: {"model": EventAccepted, "description": "A repeat: the original event."},
        **ERRORS,
        403: {"model": Problem, "description": "An inline number outside the allowed prefixes."},
        429: {"model": Problem, "description": "The key's daily inline recipients are spent."},
    },
    summary="Accept one event",
)
async def post_event(
    body: Annotated[EventIn, Body()],
    services: ServicesDep,
    response: Response,
    tenant: TenantDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    traceparent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> EventAccepted:
    check_inline(body, services)
    event = to_event(body, resolve_event_id(body, idempotency_key, tenant), tenant)
    await limit_inline(body, services, request, event.event_id)
    try:
        if event.send_at is not None:  # recorded SCHEDULED, published when due
            await run_in_threadpool(scheduled_events.accept_delayed, services, event)
            local_id, waits = tenant.local(event.event_id), EventStatus.SCHEDULED
            return EventAccepted(event_id=local_id, status=waits)
        # A producer's W3C trace context, if it sends one, becomes the event trace's parent.
        await services.intake.accept(event, {"traceparent": traceparent} if traceparent else None)
    except EventExists as exc:
        response.status_code = status.HTTP_200_OK
        return duplicate_or_conflict(exc.existing, event.fingerprint(), tenant)
    return EventAccepted(event_id=tenant.local(event.event_id), status=EventStatus.START)


def _accept_batch(
    services: Services, events: list[Event]
) -> dict[str, EventRecord | Exception | None]:
    """Record then publish (delayed: with a due item); None marks a newly accepted event."""
    return {
        event.event_id: outcome.existing if isinstance(outcome, EventExists) else outcome
        for event, outcome in scheduled_events.accept_batch(services, events)
    }


@router.post(
    "/batch",
    response_model=BatchResult,
    responses=ERRORS,
    summary="Accept up to max_batch_events events; each succeeds or fails on its own",
)
async def post_batch(
    body: BatchIn,
    services: ServicesDep,
    tenant: TenantDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> BatchResult:
    limit = services.settings.max_batch_events
    if len(body.events) > limit:
        raise HTTPException(
            413, f"events: at most {limit} events per batch, got {len(body.events)}"
        )
    items: list[BatchItemResult | None] = [None] * len(body.events)
    pending: list[tuple[int, Event, str]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(body.events):
        try:
            parsed = EventIn.model_validate(raw)
            key = None if idempotency_key is None else f"{idempotency_key}#{index}"
            check_inline(parsed, services)
            event = to_event(parsed, resolve_event_id(parsed, key, tenant), tenant)
            await limit_inline(parsed, services, request, event.event_id)
        except ValidationError as exc:
            problem = validation_problem(exc.errors())
            items[index] = BatchItemResult(
                index=index, result="error", error=str(problem["message"])
            )
            continue
        except HTTPException as exc:
            items[index] = BatchItemResult(index=index, result="error", error=str(exc.detail))
            continue
        if event.event_id in seen:
            items[index] = BatchItemResult(
                index=index,
                result="error",
                event_id=tenant.local(event.event_id),
                error=f"event_id repeats item {seen[event.event_id]} of this batch",
            )
            continue
        seen[event.event_id] = index
        pending.append((index, event, event.fingerprint()))

    outcome = await run_in_threadpool(_accept_batch, services, [e for _, e, _ in pending])
    for index, event, fingerprint in pending:
        result = outcome[event.event_id]
        local_id = tenant.local(event.event_id)
        if result is None:
            waits = EventStatus.SCHEDULED if event.send_at else EventStatus.START
            items[index] = BatchItemResult(
                index=index, result="accepted", event_id=local_id, status=waits
            )
        elif isinstance(result, EventRecord):
            if is_repeat(result, fingerprint, tenant):
                items[index] = BatchItemResult(
                    index=index, result="duplicate", event_id=local_id, status=result.status
                )
            else:
                items[index] = BatchItemResult(
                    index=index,
                    result="error",
                    event_id=local_id,
                    error=f"event_id {local_id} was already used for a different event",
                )
        else:
            items[index] = BatchItemResult(
                index=index,
                result="error",
                event_id=local_id,
                error="storage unavailable; retry this event",
            )
    done = [i for i in items if i is not None]
    return BatchResult(
        accepted=sum(i.result == "accepted" for i in done),
        duplicates=sum(i.result == "duplicate" for i in done),
        errors=sum(i.result == "error" for i in done),
        items=done,
    )


def local_view(values: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    """An event's id, user id and topic as its tenant knows them."""
    for field in ("event_id", "user_id", "topic"):
        if values.get(field):
            values[field] = tenant.local(values[field])
    return values


def to_notification_out(n: dict[str, Any]) -> NotificationOut:
    return NotificationOut(
        notification_id=n.get("notification_id", ""),
        channel=n.get("channel", ""),
        recipient=n.get("recipient_masked"),
        status=n.get("status", ""),
        attempts=n.get("attempts", 0),
        last_error=n.get("last_error"),
        provider_message_id=n.get("provider_message_id"),
        deliver_at=n.get("deliver_at"),
        history=n.get("history", []),
        history_dropped=n.get("history_dropped", 0),
        last_receipt=n.get("last_receipt"),
    )


def to_event_out(
    record: EventRecord,
    notifications: list[dict[str, Any]],
    tenant: Tenant,
    cursor: str | None = None,
) -> EventOut:
    values = record.model_dump(exclude={"payload_hash", "publish_attempts", "last_published_at"})
    return EventOut(
        **local_view(values, tenant),
        notifications=[to_notification_out(n) for n in notifications],
        notifications_cursor=cursor,
    )


@router.get(
    "/{event_id}",
    response_model=EventOut,
    responses={
        404: {"model": Problem, "description": "No such event."},
        422: {"model": Problem, "description": "Not an event id."},
    },
    summary="One event, its counts and the first page of its notifications",
)
async def get_event(
    event_id: Annotated[str, Path(pattern=EVENT_PATH_PATTERN)],
    services: ServicesDep,
    tenant: TenantDep,
) -> EventOut:
    for stored_id in tenant.event_lookups(event_id):
        record, notifications, cursor = await run_in_threadpool(
            services.events.get_page, stored_id, NOTIFICATIONS_PAGE
        )
        if record is not None and tenant.can_read(record.tenant):
            return to_event_out(record, notifications, tenant, cursor)
    raise HTTPException(404, f"event_id: no event {event_id!r}")


@router.get(
    "/{event_id}/notifications",
    response_model=NotificationPage,
    responses={
        404: {"model": Problem, "description": "No such event."},
        422: {"model": Problem, "description": "Not an event id, or not one of its cursors."},
    },
    summary="An event's notifications, a page at a time",
)
async def get_event_notifications(
    event_id: Annotated[str, Path(pattern=EVENT_PATH_PATTERN)],
    services: ServicesDep,
    tenant: TenantDep,
    cursor: Annotated[
        str | None,
        Query(max_length=2048, description="notifications_cursor or next_cursor from before."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=NOTIFICATIONS_PAGE)] = NOTIFICATIONS_PAGE,
) -> NotificationPage:
    for stored_id in tenant.event_lookups(event_id):
        if cursor is None:  # the event's own first read also tells its owner
            record, notifications, next_cursor = await run_in_threadpool(
                services.events.get_page, stored_id, limit
            )
            exists, owner = record is not None, record.tenant if record else None
        else:
            exists, owner = await run_in_threadpool(services.events.owner_of, stored_id)
            if exists and tenant.can_read(owner):
                _, notifications, next_cursor = await run_in_threadpool(
                    services.events.get_page, stored_id, limit, cursor
                )
        if exists and tenant.can_read(owner):
            return NotificationPage(
                items=[to_notification_out(n) for n in notifications], next_cursor=next_cursor
            )
    raise HTTPException(404, f"event_id: no event {event_id!r}")


@router.get("", response_model=EventPage, summary="Events, newest first, a page at a time")
async def list_events(
    services: ServicesDep,
    tenant: TenantDep,
    status: EventStatus | None = None,
    type: Annotated[str | None, Query(description="An event type from the catalogue.")] = None,
    user_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: PageCursor = None,
) -> EventPage:
    if type is not None and type not in EVENT_TYPES:
        raise HTTPException(
            422, f"type: unknown event type {type!r}; known types: {', '.join(EVENT_TYPES)}"
        )
    page = await run_in_threadpool(
        services.events.list_events,
        status=status.value if status else None,
        type_=type,
        user_id=user_id and tenant.qualify(user_id),
        tenant=None if tenant.operator else tenant.name,
        limit=limit,
        cursor=cursor,
    )
    return EventPage(
        items=[EventOut(**local_view(item, tenant)) for item in page.items],
        next_cursor=page.next_cursor,
    )

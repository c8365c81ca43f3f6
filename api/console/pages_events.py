"""Events: the list (filters by status, type, user and time; newest first; by cursor) and
an event's page (its data, each notification's channel, masked recipient, status, history
as a timeline, provider receipts and the reason of anything SKIPPED or FAILED).

Statuses come from the catalogue's enums and the records themselves, so a status added
later shows up in the filter and on the pages without a change here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.console.web import BASE, PageError, call, render, viewer
from api.routes import events
from api.schemas import EVENT_PATH_PATTERN
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import EventStatus, NotificationStatus

router = APIRouter(prefix=BASE)
PAGE = 25
#: Index pages the list reads for one console page when a time window skips newer events.
READS_MAX = 3
USER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EVENT_ID = re.compile(EVENT_PATH_PATTERN)
#: Statuses a provider's receipt writes into a notification's history.
RECEIPT_STATUSES = {
    NotificationStatus.DELIVERED.value,
    NotificationStatus.UNDELIVERED.value,
    NotificationStatus.BOUNCED.value,
}
Text = Annotated[str, Query(max_length=2048)]


def _moment(name: str, value: str) -> datetime | None:
    """A time from a `datetime-local` field (read as UTC) or an ISO 8601 time."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PageError(422, f"{name}: not a time such as 2030-01-31T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _created(item: dict[str, Any]) -> datetime:
    moment = datetime.fromisoformat(str(item["created_at"]).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/events")
async def event_list(
    request: Request,
    status: Text = "",
    type: Text = "",
    user_id: Text = "",
    since: Text = "",
    until: Text = "",
    cursor: Text = "",
) -> Response:
    found = await viewer(request, "events:read")
    problems: dict[str, str] = {}
    if status and status not in {s.value for s in EventStatus}:
        problems["status"] = f"unknown status {status!r}"
    if type and type not in EVENT_TYPES:
        problems["type"] = f"unknown event type {type!r}"
    if user_id and not USER_ID.match(user_id):
        problems["user_id"] = "letters, digits, '.', '_' and '-', at most 64"
    try:
        start, end = _moment("since", since), _moment("until", until)
    except PageError as exc:
        problems["since" if exc.message.startswith("since") else "until"] = exc.message
        start = end = None
    items: list[dict[str, Any]] = []
    next_cursor: str | None = None
    if not problems:
        next_cursor = cursor or None
        for _ in range(READS_MAX):
            page = await call(
                events.list_events(
                    found.services,
                    found.tenant,
                    status=EventStatus(status) if status else None,
                    type=type or None,
                    user_id=user_id or None,
                    limit=PAGE,
                    cursor=next_cursor,
                )
            )
            next_cursor = page.next_cursor
            for item in (i.model_dump(mode="json") for i in page.items):
                created = _created(item)
                if end is not None and created > end:
                    continue
                if start is not None and created < start:
                    next_cursor = None  # newest first: nothing further is recent enough
                    break
                items.append(item)
            if items or next_cursor is None:
                break
    filters = {"status": status, "type": type, "user_id": user_id, "since": since, "until": until}
    return render(
        request,
        "events.html",
        found,
        items=items,
        next_cursor=next_cursor,
        filters=filters,
        problems=problems,
        statuses=[s.value for s in EventStatus],
        types=sorted(EVENT_TYPES),
        status=422 if problems else 200,
    )


@router.get("/events/{event_id}")
async def event_page(request: Request, event_id: str, cursor: Text = "") -> Response:
    found = await viewer(request, "events:read")
    if not EVENT_ID.match(event_id):
        raise PageError(404, f"event_id: no event {event_id!r}")
    event = await call(events.get_event(event_id, found.services, found.tenant))
    notifications, next_cursor = event.notifications, event.notifications_cursor
    if cursor:
        page = await call(
            events.get_event_notifications(
                event_id, found.services, found.tenant, cursor, events.NOTIFICATIONS_PAGE
            )
        )
        notifications, next_cursor = page.items, page.next_cursor
    return render(
        request,
        "event.html",
        found,
        event=event,
        notifications=notifications,
        next_cursor=next_cursor,
        receipt_statuses=RECEIPT_STATUSES,
    )

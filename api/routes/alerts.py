"""Alerts (what events with a dedupe_key opened) and silences (what mutes them)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerting.alerts import notifying_events
from alerting.silences import Silence, SilenceIn
from api.deps import ServicesDep, TenantDep
from api.routes.events import to_notification_out
from api.schemas import NotificationOut, Problem
from api.services import Services
from core.security.tenants import Tenant

router = APIRouter(prefix="/alerts", tags=["alerts"])
silences_router = APIRouter(prefix="/silences", tags=["alerts"])

AlertId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{24}-[0-9]{1,8}$", description="From GET /alerts.")
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such alert."}
}

# An alert answer shows its most recent notifying events only; GET /alerts/{id} reads a page
# of each one's notifications, newest event first, and no more records in all than the budget.
EVENTS_SHOWN = 20
SENDS_PER_EVENT = 10
SENDS_READ_BUDGET = 100


class AlertNotification(BaseModel):
    event_id: str
    kind: Literal["open", "remind", "resolve"]
    at: str
    notifications: list[NotificationOut] = Field(
        default_factory=list, description="What the event sent (recipients masked)."
    )


class AlertEventSends(AlertNotification):
    notifications_cursor: str | None = Field(
        default=None,
        description="More of this event's notifications: "
        "GET /events/{event_id}/notifications?cursor=...",
    )
    notifications_read: bool = Field(
        default=True,
        description="False when the request's read budget was spent on newer events: "
        "read this one's at GET /events/{event_id}.",
    )


class AlertFields(BaseModel):
    alert_id: str
    type: str
    dedupe_key: str
    state: Literal["open", "resolved"]
    priority: str
    first_seen: str
    last_seen: str
    count: int = Field(description="Triggers received while open, the first included.")
    acked: bool = False
    acked_at: str | None = None
    resolved_at: str | None = None
    last_notified_at: str | None = None
    repeat_interval_seconds: int
    notify_resolved: bool
    opened_by: str = Field(description="The event that opened it.")
    last_event_id: str
    data: dict[str, Any] = Field(default_factory=dict, description="The opening event's data.")
    notifying_events: int = Field(0, description="Events that notified for it, in all.")
    more_notifying_events: int = Field(
        0,
        description=f"Older notifying events not shown: an answer shows the {EVENTS_SHOWN} "
        "most recent (read any event at GET /events/{event_id}).",
    )


class AlertOut(AlertFields):
    notifications: list[AlertNotification] = Field(
        default_factory=list, description=f"The {EVENTS_SHOWN} most recent, oldest first."
    )


class AlertDetail(AlertFields):
    notifications: list[AlertEventSends] = Field(
        default_factory=list,
        description=f"The {EVENTS_SHOWN} most recent, oldest first, each with up to "
        f"{SENDS_PER_EVENT} of its notifications.",
    )


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


def _fields(item: dict[str, Any], tenant: Tenant | None) -> dict[str, Any]:
    """The alert's own fields (not its notifications), event ids as the tenant knows them."""
    fields = {k: v for k, v in item.items() if k in AlertFields.model_fields}
    if tenant is not None:
        for field in ("opened_by", "last_event_id"):
            if isinstance(fields.get(field), str):
                fields[field] = tenant.local(fields[field])
    total = notifying_events(item)
    fields["data"] = json.loads(item.get("data_json") or "{}")
    fields["notifying_events"] = total
    fields["more_notifying_events"] = max(0, total - len(_shown(item)))
    return fields


def _shown(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The most recent notifying events the alert lists, oldest first."""
    return list(item.get("notifications") or [])[-EVENTS_SHOWN:]


def _local(entry: dict[str, Any], tenant: Tenant | None) -> dict[str, Any]:
    event_id = str(entry.get("event_id", ""))
    return {**entry, "event_id": tenant.local(event_id) if tenant is not None else event_id}


def to_alert_out(item: dict[str, Any], tenant: Tenant | None = None) -> AlertOut:
    caused = [AlertNotification(**_local(n, tenant)) for n in _shown(item)]
    return AlertOut(**_fields(item, tenant), notifications=caused)


def _sends(
    services: Services, event_id: str, limit: int
) -> tuple[list[NotificationOut], str | None]:
    """A page of the event's notifications (one bounded read) and the cursor of the rest."""
    record, found, cursor = services.events.get_page(event_id, limit)
    if record is None:  # expired with its retention, or never stored
        return [], None
    return [to_notification_out(n) for n in found], cursor


def to_alert_detail(services: Services, item: dict[str, Any], tenant: Tenant) -> AlertDetail:
    """The alert with a page of each shown event's notifications: newest event first, while
    the request's read budget lasts."""
    shown = _shown(item)
    caused = [AlertEventSends(**_local(n, tenant)) for n in shown]
    budget = SENDS_READ_BUDGET
    for raw, entry in zip(reversed(shown), reversed(caused), strict=True):
        limit = min(SENDS_PER_EVENT, budget)
        if limit < 1:
            entry.notifications_read = False
            continue
        entry.notifications, entry.notifications_cursor = _sends(
            services, str(raw.get("event_id", "")), limit
        )
        budget -= max(len(entry.notifications), 1)
    return AlertDetail(**_fields(item, tenant), notifications=caused)


@router.get(
    "", response_model=AlertPage, summary="Alerts of the key's tenant (operator: all), newest first"
)
async def list_alerts(
    services: ServicesDep,
    tenant: TenantDep,
    state: Literal["open", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> AlertPage:
    only = None if tenant.operator else tenant.name
    items, next_cursor = await run_in_threadpool(services.alerts.list, state, limit, cursor, only)
    return AlertPage(items=[to_alert_out(i, tenant=tenant) for i in items], next_cursor=next_cursor)


def _readable(services: Services, alert_id: str, tenant: Tenant) -> dict[str, Any] | None:
    """The alert if this tenant may see it; another tenant's is as missing (a 404)."""
    item = services.alerts.get(alert_id)
    return item if item is not None and tenant.can_read(item.get("tenant")) else None


def _get_with_sends(services: Services, alert_id: str, tenant: Tenant) -> AlertDetail | None:
    item = _readable(services, alert_id, tenant)
    return None if item is None else to_alert_detail(services, item, tenant)


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    responses=NOT_FOUND,
    summary="One alert with the notifications it caused",
    description=f"The alert and its {EVENTS_SHOWN} most recent notifying events (oldest "
    f"first), each with up to {SENDS_PER_EVENT} of its notifications and, when it has more, "
    "`notifications_cursor` for GET /events/{event_id}/notifications. One answer reads at "
    f"most {SENDS_READ_BUDGET} notifications in all, for the newest events first; an event "
    "past that budget says `notifications_read: false`. `notifying_events` counts every "
    "event that notified, `more_notifying_events` those not shown.",
)
async def get_alert(alert_id: AlertId, services: ServicesDep, tenant: TenantDep) -> AlertDetail:
    found = await run_in_threadpool(_get_with_sends, services, alert_id, tenant)
    if found is None:
        raise HTTPException(404, f"alert_id: no alert {alert_id!r}")
    return found


@router.post(
    "/{alert_id}/ack",
    response_model=AlertOut,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "The alert is resolved."}},
    summary="Acknowledge an open alert: no more reminders (resolving still notifies)",
)
async def ack_alert(alert_id: AlertId, services: ServicesDep, tenant: TenantDep) -> AlertOut:
    if await run_in_threadpool(_readable, services, alert_id, tenant) is None:
        raise HTTPException(404, f"alert_id: no alert {alert_id!r}")
    item = await run_in_threadpool(services.alerts.ack, alert_id, tenant.name)
    if item is None:
        raise HTTPException(409, f"alert_id: alert {alert_id!r} is resolved")
    return to_alert_out(item, tenant=tenant)


@silences_router.put(
    "",
    response_model=Silence,
    responses={
        422: {"model": Problem, "description": "Invalid silence; the message names the field."}
    },
    summary="Create a silence (or replace one, giving its id): mute matching alerts for a time",
)
async def put_silence(body: SilenceIn, services: ServicesDep, tenant: TenantDep) -> Silence:
    return await run_in_threadpool(services.silences.put, body, tenant.name)


@silences_router.get(
    "", response_model=list[Silence], summary="The tenant's silences not yet ended"
)
async def list_silences(services: ServicesDep, tenant: TenantDep) -> list[Silence]:
    return await run_in_threadpool(services.silences.unexpired, None, tenant.name)


@silences_router.delete(
    "/{silence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": Problem, "description": "No such silence."}},
    summary="End a silence now",
)
async def expire_silence(
    silence_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    services: ServicesDep,
    tenant: TenantDep,
) -> Response:
    if await run_in_threadpool(services.silences.expire, silence_id, tenant.name) is None:
        raise HTTPException(404, f"silence_id: no silence {silence_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

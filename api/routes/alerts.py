"""Alerts (what events with a dedupe_key opened) and silences (what mutes them)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerting.silences import Silence, SilenceIn
from api.deps import ServicesDep, TenantDep
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


class AlertNotification(BaseModel):
    event_id: str
    kind: Literal["open", "remind", "resolve"]
    at: str
    notifications: list[NotificationOut] = Field(
        default_factory=list, description="What the event sent (recipients masked)."
    )


class AlertOut(BaseModel):
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
    notifications: list[AlertNotification] = Field(default_factory=list)


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


def to_alert_out(
    item: dict[str, Any],
    with_sends: bool = False,
    services: Any = None,
    tenant: Tenant | None = None,
) -> AlertOut:
    data = json.loads(item.get("data_json") or "{}")
    caused = [AlertNotification(**n) for n in item.get("notifications", [])]
    if with_sends and services is not None:
        for entry in caused:
            found = services.events.get(entry.event_id)
            if found is not None:
                entry.notifications = [
                    NotificationOut(
                        notification_id=n.get("notification_id", ""),
                        channel=n.get("channel", ""),
                        recipient=n.get("recipient_masked"),
                        status=n.get("status", ""),
                        attempts=n.get("attempts", 0),
                        last_error=n.get("last_error"),
                        provider_message_id=n.get("provider_message_id"),
                        history=n.get("history", []),
                    )
                    for n in found[1]
                ]
    fields = {k: v for k, v in item.items() if k in AlertOut.model_fields and k != "notifications"}
    if tenant is not None:  # event ids as the tenant knows them
        for entry in caused:
            entry.event_id = tenant.local(entry.event_id)
        for field in ("opened_by", "last_event_id"):
            if isinstance(fields.get(field), str):
                fields[field] = tenant.local(fields[field])
    return AlertOut(**{**fields, "data": data, "notifications": caused})


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


def _get_with_sends(services: Services, alert_id: str, tenant: Tenant) -> AlertOut | None:
    item = _readable(services, alert_id, tenant)
    return None if item is None else to_alert_out(item, True, services, tenant)


@router.get(
    "/{alert_id}",
    response_model=AlertOut,
    responses=NOT_FOUND,
    summary="One alert with the notifications it caused",
)
async def get_alert(alert_id: AlertId, services: ServicesDep, tenant: TenantDep) -> AlertOut:
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

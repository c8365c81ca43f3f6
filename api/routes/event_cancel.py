"""POST /events/{id}/cancel: a SCHEDULED event ends CANCELLED with nothing sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from starlette.concurrency import run_in_threadpool

from api import scheduled_events
from api.deps import ServicesDep, TenantDep
from api.schemas import EVENT_PATH_PATTERN, EventAccepted, Problem
from core.catalogue.models import EventStatus

router = APIRouter(prefix="/events", tags=["events"])


@router.post(
    "/{event_id}/cancel",
    response_model=EventAccepted,
    responses={
        404: {"model": Problem, "description": "No such event."},
        409: {"model": Problem, "description": "Not SCHEDULED: something may be sent."},
        422: {"model": Problem, "description": "Not an event id."},
    },
    summary="Cancel a SCHEDULED event before anything of it is sent",
)
async def cancel_event(
    event_id: Annotated[str, Path(pattern=EVENT_PATH_PATTERN)],
    services: ServicesDep,
    tenant: TenantDep,
) -> EventAccepted:
    """SCHEDULED → CANCELLED in one conditional write that any release of its notifications
    refuses (api/scheduled_events.py): after a 200 nothing of it is sent; a repeat is a
    200 too. An event past SCHEDULED is a 409 naming its status."""
    for stored_id in tenant.event_lookups(event_id):
        exists, owner = await run_in_threadpool(services.events.owner_of, stored_id)
        if not exists or not tenant.can_read(owner):
            continue
        refused = await run_in_threadpool(scheduled_events.cancel, services, stored_id)
        if refused:
            raise HTTPException(
                409, f"event_id: {event_id!r} is {refused}, not SCHEDULED; it cannot be cancelled"
            )
        return EventAccepted(event_id=tenant.local(stored_id), status=EventStatus.CANCELLED)
    raise HTTPException(404, f"event_id: no event {event_id!r}")

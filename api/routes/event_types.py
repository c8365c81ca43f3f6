"""The event catalogue as the API serves it: what may be posted, and with which data."""

from __future__ import annotations

from fastapi import APIRouter

from api.schemas_discovery import EventTypeList, EventTypeOut
from core.catalogue.event_types import DEFAULT_CHANNELS, EVENT_TYPES

router = APIRouter(prefix="/event-types", tags=["event types"])


@router.get(
    "",
    response_model=EventTypeList,
    summary="Every event type: category, default priority, channels, template variables",
)
async def list_event_types() -> EventTypeList:
    return EventTypeList(
        items=[
            EventTypeOut(
                type=spec.name,
                category=spec.category,
                default_priority=spec.priority,
                lane=spec.priority.lane,
                summary=spec.summary,
                default_channels=list(DEFAULT_CHANNELS[spec.category]),
                variables=spec.variable_types,
            )
            for spec in EVENT_TYPES.values()
        ]
    )

"""Events ordered by when they happened, not when they arrived: standard queues and retry
back-off deliver a resolve before its trigger, so the gate compares event times with what
an alert has stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.catalogue.models import Event


def event_time(event: Event) -> datetime | None:
    try:
        return datetime.fromisoformat(event.created_at)
    except (TypeError, ValueError):
        return None


def older(event: Event, than: Any) -> bool:
    """Whether the event happened strictly before the stored time `than`."""
    at = event_time(event)
    if at is None or not isinstance(than, str):
        return False
    try:
        return at < datetime.fromisoformat(than)
    except ValueError:
        return False


def newer(event: Event, than: str) -> bool:
    at = event_time(event)
    try:
        return at is not None and at > datetime.fromisoformat(than)
    except ValueError:
        return True

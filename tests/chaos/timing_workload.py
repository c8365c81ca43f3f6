"""Waiting work for the chaos scenarios: users whose quiet hours defer their SMS to a
minute just ahead, and delayed events, so the due sender works under the same faults."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx

from core.aws.clients import AwsClients
from tests.chaos.accounting import event_item, records
from tests.chaos.harness import ChaosStack
from tests.chaos.workload import TREND_DATA, Posted, User, each, post_event
from tests.support import wait_until


def due_minute(ahead: float = 10.0) -> datetime:
    """The first whole minute at least `ahead` seconds from now (UTC)."""
    base = datetime.now(UTC) + timedelta(seconds=ahead)
    at = base.replace(second=0, microsecond=0)
    return at if at >= base else at + timedelta(minutes=1)


def defer_until(api: httpx.Client, users: Sequence[User], until: datetime) -> None:
    """Quiet hours (mode defer) that hold these users' interrupting channels until `until`."""
    window = {
        "start": (until - timedelta(hours=1)).strftime("%H:%M"),
        "end": until.strftime("%H:%M"),
    }
    for user in users:
        resp = api.put(
            f"/users/{user.user_id}/preferences",
            json={"categories": {"trend": ["sms", "email"]}, "quiet_hours": window},
        )
        resp.raise_for_status()


def post_waiting_events(
    api: httpx.Client,
    posted: Posted,
    deferred: Sequence[User],
    delayed: Sequence[User],
    delay: str = "15s",
) -> None:
    """A trend event to each deferred user (SMS waits, email goes) and a delayed one to
    each delayed user (both channels, once published), a few posted at a time."""

    def post(waiting: tuple[User, dict[str, str]]) -> None:
        user, extra = waiting
        post_event(
            api,
            posted,
            {
                "type": "trend.top_artist_changed",
                "user_id": user.user_id,
                "data": TREND_DATA,
                **extra,
            },
            [user.user_id],
            ("sms", "email"),
        )

    each(post, [(u, {}) for u in deferred] + [(u, {"delay": delay}) for u in delayed])


def nothing_waits(clients: AwsClients, event_ids: Sequence[str]) -> bool:
    """No event of these is SCHEDULED and none of their records is: every piece of
    waiting work has been handed out (a due item whose handler failed under the faults
    comes due again later)."""
    if any(event_item(clients, e).get("status") == "SCHEDULED" for e in event_ids):
        return False
    return all(r.get("status") != "SCHEDULED" for r in records(clients, event_ids).values())


def wait_released(stack: ChaosStack, event_ids: Sequence[str], timeout: float) -> bool:
    clients = stack.clients()

    def released() -> bool:
        try:
            return nothing_waits(clients, event_ids)
        except Exception:  # the emulator may be busy or briefly away; ask again
            return False

    return wait_until(released, timeout=timeout, interval=2.0)

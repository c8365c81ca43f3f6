"""Alerting tests: the API in-process, and a router driven by hand with a set clock, so
repeat intervals and silences are tested without waiting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.event_store import EventStore
from core.models import EventRecord
from core.profiles import ProfileFields
from core.users import UserStore
from listeners.batch import BatchSettler
from listeners.messages import QueueMessage
from listeners.router import Router
from tests.conftest import AUTH, Stack

PREFIX = "herald-test"
START = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as test_client:
        yield test_client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def router(stack: Stack, clock: Clock) -> Router:
    settings = stack.settings.model_copy(update={"alert_silence_cache_seconds": 0.0})
    return Router(settings, stack.clients, clock=clock)


def route_pending(stack: Stack, router: Router) -> None:
    """Route every message waiting on the router queues, as the router process would."""
    for lane in ("critical", "normal"):
        queue = f"{PREFIX}-events-{lane}"
        messages = [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue)]
        if messages:
            results = router(messages)
            BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(messages, results)


def stored_event(stack: Stack, event_id: str) -> tuple[EventRecord, list[dict[str, Any]]]:
    found = EventStore(stack.clients.dynamodb, stack.clients.names.table).get(event_id)
    assert found is not None
    return found


def add_user(stack: Stack, user_id: str, **contacts: Any) -> None:
    UserStore(stack.clients.dynamodb, stack.clients.names.table).put_profile(
        user_id, ProfileFields(**contacts)
    )


def channel_messages(stack: Stack, channel: str) -> list[str]:
    """Bodies of every message on a channel's queues (both lanes), consumed."""
    bodies = []
    for lane in ("critical", "normal"):
        queue = f"{PREFIX}-{channel}-{lane}"
        raw = stack.receive_all(queue)
        url = stack.clients.queue_url(queue)
        for m in raw:
            stack.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        bodies += [m["Body"] for m in raw]
    return bodies

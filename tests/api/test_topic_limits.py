"""A topic's fan-out is bounded: subscribing past HERALD_MAX_TOPIC_SUBSCRIBERS is a 409
that says so, and the count follows every way a subscription ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.directory.users import UserStore
from tests.conftest import AUTH, Stack

TOPIC = "charts.small"
LIMIT = 2


@pytest.fixture
def small(stack: Stack) -> Iterator[TestClient]:
    """The API with topics of at most LIMIT subscribers, and users u-0 … u-3."""
    settings = stack.settings.model_copy(update={"max_topic_subscribers": LIMIT})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        for i in range(4):
            assert client.put(f"/users/u-{i}", json={"email": f"u{i}@example.com"}).is_success
        yield client


def count(stack: Stack) -> int:
    return UserStore(stack.clients.dynamodb, stack.clients.names.table).counts.total(TOPIC)


def subscribe(client: TestClient, user: str, **body: object) -> int:
    return client.put(f"/topics/{TOPIC}/subscribers/{user}", json=body or None).status_code


def test_one_subscriber_past_the_limit_is_a_409_naming_the_limit(small: TestClient) -> None:
    assert [subscribe(small, "u-0"), subscribe(small, "u-1")] == [200, 200]
    resp = small.put(f"/topics/{TOPIC}/subscribers/u-2")
    assert resp.status_code == 409
    assert resp.json()["message"].startswith(f"topic: '{TOPIC}' has {LIMIT} subscribers")
    assert "HERALD_MAX_TOPIC_SUBSCRIBERS" in resp.json()["message"]
    subscribers = small.get(f"/topics/{TOPIC}/subscribers").json()["items"]
    assert [s["user_id"] for s in subscribers] == ["u-0", "u-1"]


def test_a_subscriber_of_a_full_topic_may_still_change_channels(
    small: TestClient, stack: Stack
) -> None:
    subscribe(small, "u-0")
    subscribe(small, "u-1")
    assert subscribe(small, "u-1", channels=["email"]) == 200
    assert subscribe(small, "u-1") == 200
    assert count(stack) == LIMIT


def test_unsubscribing_or_deleting_a_user_makes_room(small: TestClient, stack: Stack) -> None:
    subscribe(small, "u-0")
    subscribe(small, "u-1")
    assert small.delete(f"/topics/{TOPIC}/subscribers/u-0").status_code == 204
    assert small.delete(f"/topics/{TOPIC}/subscribers/u-0").status_code == 204  # no double
    assert count(stack) == 1
    assert subscribe(small, "u-2") == 200
    assert small.delete("/users/u-1").status_code == 204
    assert count(stack) == 1
    assert subscribe(small, "u-3") == 200
    assert subscribe(small, "u-0") == 409
    assert count(stack) == LIMIT


def test_the_count_is_not_a_subscriber(small: TestClient) -> None:
    subscribe(small, "u-0")
    page = small.get(f"/topics/{TOPIC}/subscribers", params={"limit": 1}).json()
    assert [s["user_id"] for s in page["items"]] == ["u-0"]
    assert page["next_cursor"] is None

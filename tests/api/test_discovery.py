"""Discovery: the event catalogue, a tenant's users and its topics, a page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.catalogue.event_types import EVENT_TYPES
from core.security.api_keys import ApiKeyStore
from tests.conftest import AUTH, Stack

SCOPES = ("events:read", "users:write")


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, stack.clients)) as client:
        yield client


@pytest.fixture
def acme(stack: Stack) -> dict[str, str]:
    keys = ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)
    return {"X-API-Key": keys.create("acme", SCOPES, owner="acme")[1]}


def every_page(api: TestClient, path: str, headers: dict[str, str], limit: int) -> list[Any]:
    pages: list[list[Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        resp = api.get(path, params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_event_types_list_the_catalogue_with_variable_types(api: TestClient) -> None:
    resp = api.get("/event-types", headers=AUTH)
    assert resp.status_code == 200
    items = {i["type"]: i for i in resp.json()["items"]}
    assert set(items) == set(EVENT_TYPES)
    assert items["comment"] == {
        "type": "comment",
        "category": "activity",
        "default_priority": "normal",
        "lane": "normal",
        "summary": "Someone commented",
        "default_channels": ["push", "email"],
        "variables": {"actor": "string", "post": "string", "text": "string"},
    }
    assert items["trend.sales_spike"]["variables"]["change_pct"] == "number"
    assert items["security.login_alert"]["lane"] == "critical"


def test_users_are_listed_by_id_per_tenant_a_page_at_a_time(
    api: TestClient, acme: dict[str, str]
) -> None:
    for user_id in ("u-3", "u-1", "u-5", "u-2", "u-4"):
        assert api.put(
            f"/users/{user_id}", json={"email": "a@example.com"}, headers=acme
        ).is_success
    api.put("/users/default-user", json={"email": "b@example.com"}, headers=AUTH)
    assert api.delete("/users/u-4", headers=acme).status_code == 204

    pages = every_page(api, "/users", acme, limit=2)
    assert [[u["user_id"] for u in page] for page in pages] == [["u-1", "u-2"], ["u-3", "u-5"]]
    assert all(u["created_at"] and "email" not in u for page in pages for u in page)
    assert [u["user_id"] for u in api.get("/users", headers=AUTH).json()["items"]] == [
        "default-user"
    ]


def test_topics_are_listed_with_their_counts(api: TestClient, acme: dict[str, str]) -> None:
    for user_id in ("u-1", "u-2"):
        api.put(f"/users/{user_id}", json={"email": "a@example.com"}, headers=acme)
    for topic, user_id in (("charts.global", "u-1"), ("charts.global", "u-2"), ("news", "u-1")):
        resp = api.put(f"/topics/{topic}/subscribers/{user_id}", headers=acme)
        assert resp.is_success, resp.text
    api.delete("/topics/news/subscribers/u-1", headers=acme)

    pages = every_page(api, "/topics", acme, limit=1)
    assert [p for page in pages for p in page] == [
        {"topic": "charts.global", "subscribers": 2},
        {"topic": "news", "subscribers": 0},
    ]
    assert api.get("/topics", headers=AUTH).json() == {"items": [], "next_cursor": None}


def test_a_cursor_of_another_listing_is_422(api: TestClient, acme: dict[str, str]) -> None:
    for user_id in ("u-1", "u-2"):
        api.put(f"/users/{user_id}", json={"email": "a@example.com"}, headers=acme)
    cursor = api.get("/users", params={"limit": 1}, headers=acme).json()["next_cursor"]
    assert cursor
    for path, headers in (("/topics", acme), ("/users", AUTH)):
        resp = api.get(path, params={"cursor": cursor}, headers=headers)
        assert resp.status_code == 422 and resp.json()["message"].startswith("cursor")
    assert api.get("/users", params={"cursor": "nonsense"}, headers=acme).status_code == 422

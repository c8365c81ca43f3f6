"""Tenants: each API key's owner sees its own events, users and topics; admin sees every
tenant's events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.security.api_keys import ApiKeyStore
from tests.conftest import AUTH, Stack
from tests.listeners.test_router import ROUTER_NORMAL, drain, route_all, router

SCOPES = ("events:write", "events:read", "users:write")
FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, stack.clients)) as client:
        yield client


@pytest.fixture
def tenants(stack: Stack) -> dict[str, dict[str, str]]:
    """Keys of two tenants, plus the (admin) bootstrap key."""
    keys = ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)
    return {
        "acme": {"X-API-Key": keys.create("acme", SCOPES, owner="acme")[1]},
        "beta": {"X-API-Key": keys.create("beta", SCOPES, owner="beta")[1]},
        "admin": AUTH,
    }


def post(api: TestClient, headers: dict[str, str], **extra: Any) -> Any:
    return api.post("/events", json={**FOLLOW, **extra.pop("body", {})}, headers=headers, **extra)


def test_two_tenants_with_the_same_idempotency_key_get_two_events(
    api: TestClient, tenants: dict[str, dict[str, str]]
) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = post(api, {**tenants["acme"], **key})
    second = post(api, {**tenants["beta"], **key})
    assert first.status_code == second.status_code == 202
    assert first.json()["event_id"] != second.json()["event_id"]
    again = post(api, {**tenants["beta"], **key})
    assert again.status_code == 200 and again.json()["event_id"] == second.json()["event_id"]


def test_a_foreign_event_is_404_and_not_listed(
    api: TestClient, tenants: dict[str, dict[str, str]]
) -> None:
    acme = post(api, tenants["acme"]).json()["event_id"]
    beta = post(api, tenants["beta"]).json()["event_id"]
    assert api.get(f"/events/{acme}", headers=tenants["beta"]).status_code == 404
    own = api.get(f"/events/{acme}", headers=tenants["acme"])
    assert own.status_code == 200 and own.json()["user_id"] == "u-1"
    listed = {e["event_id"] for e in api.get("/events", headers=tenants["beta"]).json()["items"]}
    assert listed == {beta}
    by_user = api.get("/events", params={"user_id": "u-1"}, headers=tenants["acme"]).json()
    assert [e["event_id"] for e in by_user["items"]] == [acme]
    # admin reads and lists every tenant's events
    assert api.get(f"/events/{acme}", headers=tenants["admin"]).json()["tenant"] == "acme"
    everything = {e["event_id"] for e in api.get("/events", headers=AUTH).json()["items"]}
    assert {acme, beta} <= everything


def test_client_event_ids_are_the_tenants_own(
    api: TestClient, tenants: dict[str, dict[str, str]]
) -> None:
    acme, beta = tenants["acme"], tenants["beta"]
    first = post(api, acme, body={"event_id": "ev-shared"})
    assert first.status_code == 202 and first.json()["event_id"] == "ev-shared"
    # beta's ev-shared is beta's: it neither collides with acme's nor tells it exists
    assert api.get("/events/ev-shared", headers=beta).status_code == 404
    assert api.get("/events/ev-shared/notifications", headers=beta).status_code == 404
    second = post(api, beta, body={"event_id": "ev-shared", "data": {"actor": "Bo"}})
    assert second.status_code == 202 and second.json()["event_id"] == "ev-shared"
    assert post(api, beta, body={"event_id": "ev-shared", "data": {"actor": "Bo"}}).json()[
        "duplicate"
    ]
    mine = api.get("/events/ev-shared", headers=acme).json()
    assert (mine["event_id"], mine["data"]) == ("ev-shared", {"actor": "Ana"})
    theirs = api.get("/events/ev-shared", headers=beta).json()
    assert (theirs["event_id"], theirs["data"]) == ("ev-shared", {"actor": "Bo"})
    # within a tenant an id still means one event
    other = post(api, acme, body={"event_id": "ev-shared", "data": {"actor": "Eve"}})
    assert other.status_code == 409 and "status" not in other.json()
    # a batch's ids are the tenant's too
    batch = api.post(
        "/events/batch", json={"events": [{**FOLLOW, "event_id": "ev-b"}]}, headers=beta
    ).json()
    assert batch["items"][0]["event_id"] == "ev-b"
    assert api.get("/events/ev-b", headers=acme).status_code == 404
    # an operator lists them qualified and reads them so
    listed = {e["event_id"] for e in api.get("/events", headers=AUTH).json()["items"]}
    assert {"acme~ev-shared", "beta~ev-shared"} <= listed
    assert api.get("/events/beta~ev-shared", headers=AUTH).json()["data"] == {"actor": "Bo"}
    assert api.get("/events/beta~ev-shared", headers=acme).status_code == 404


def test_users_and_topics_belong_to_their_tenant(
    api: TestClient, tenants: dict[str, dict[str, str]]
) -> None:
    acme, beta = tenants["acme"], tenants["beta"]
    assert api.put("/users/u-1", json={"email": "a@acme.example"}, headers=acme).status_code == 201
    assert api.get("/users/u-1", headers=beta).status_code == 404
    assert api.put("/users/u-1", json={"email": "b@beta.example"}, headers=beta).status_code == 201
    assert api.get("/users/u-1", headers=acme).json()["email"] == "a@acme.example"
    assert api.get("/users/u-1", headers=acme).json()["user_id"] == "u-1"
    assert api.delete("/users/u-1", headers=beta).status_code == 204
    assert api.get("/users/u-1", headers=acme).status_code == 200

    assert api.put("/topics/news/subscribers/u-1", json={}, headers=acme).status_code in (200, 201)
    mine = api.get("/topics/news/subscribers", headers=acme).json()["items"]
    assert [(s["topic"], s["user_id"]) for s in mine] == [("news", "u-1")]
    assert api.get("/topics/news/subscribers", headers=beta).json()["items"] == []
    assert api.put("/topics/news/subscribers/u-1", json={}, headers=beta).status_code == 404


def test_an_event_reaches_only_its_own_tenants_user(
    api: TestClient, stack: Stack, tenants: dict[str, dict[str, str]]
) -> None:
    for name, email in (("acme", "ana@acme.example"), ("beta", "bo@beta.example")):
        body = {"email": email}
        assert api.put("/users/u-1", json=body, headers=tenants[name]).status_code == 201
        prefs = {"categories": {"activity": ["email"]}}
        assert api.put("/users/u-1/preferences", json=prefs, headers=tenants[name]).is_success
    assert post(api, tenants["beta"]).status_code == 202
    route_all(stack, router(stack), ROUTER_NORMAL)
    [message] = drain(stack, "email-normal")
    assert message["addresses"] == ["bo@beta.example"]

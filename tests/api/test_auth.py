"""API keys: every scope, revocation, open routes, and that nothing else answers without a key."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.security.api_keys import ApiKeyStore
from tests.conftest import TEST_API_KEY, Stack

OPEN = {"/", "/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


@pytest.fixture
def anonymous(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, stack.clients)) as client:
        yield client


@pytest.fixture
def keys(stack: Stack) -> ApiKeyStore:
    return ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)


def key_with(keys: ApiKeyStore, *scopes: str) -> dict[str, str]:
    return {"X-API-Key": keys.create("test", scopes)[1]}


def test_open_routes_answer_without_a_key(anonymous: TestClient) -> None:
    for path in ("/", "/health", "/docs", "/openapi.json"):
        assert anonymous.get(path).status_code == 200, path


def test_every_other_route_is_401_without_a_key(anonymous: TestClient) -> None:
    schema = anonymous.get("/openapi.json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        if path in OPEN or path.startswith("/webhooks/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in operations:
            resp = anonymous.request(method.upper(), concrete, json={})
            assert resp.status_code == 401, f"{method.upper()} {path}: {resp.status_code}"
            assert resp.headers["WWW-Authenticate"] == "Bearer"
            checked += 1
    assert checked >= 12


def test_webhooks_authenticate_by_signature_not_by_key(anonymous: TestClient) -> None:
    resp = anonymous.post("/webhooks/sendgrid", json=[])
    assert resp.status_code == 403  # signature missing, not "key missing"


def test_events_scopes(anonymous: TestClient, keys: ApiKeyStore) -> None:
    writer = key_with(keys, "events:write")
    reader = key_with(keys, "events:read")
    created = anonymous.post("/events", json=FOLLOW, headers=writer)
    assert created.status_code == 202
    event_id = created.json()["event_id"]
    assert anonymous.get(f"/events/{event_id}", headers=writer).status_code == 403
    assert anonymous.get(f"/events/{event_id}", headers=reader).status_code == 200
    denied = anonymous.post("/events", json=FOLLOW, headers=reader)
    assert denied.status_code == 403 and "events:write" in denied.json()["message"]


def test_users_scope(anonymous: TestClient, keys: ApiKeyStore) -> None:
    users = key_with(keys, "users:write")
    events = key_with(keys, "events:write", "events:read")
    body = {"email": "ana@example.com", "timezone": "UTC"}
    assert anonymous.put("/users/u-9", json=body, headers=events).status_code == 403
    assert anonymous.put("/users/u-9", json=body, headers=users).status_code in (200, 201)
    assert anonymous.put("/topics/t/subscribers/u-9", json={}, headers=users).status_code in (
        200,
        201,
    )
    assert anonymous.get("/users/u-9", headers=users).status_code == 200


def test_operator_scope_guards_dead_letters_and_admin_allows_the_rest(
    anonymous: TestClient, keys: ApiKeyStore
) -> None:
    everything_else = key_with(keys, "events:write", "events:read", "users:write")
    admin = key_with(keys, "admin")
    operator = key_with(keys, "operator")
    assert anonymous.get("/dlq", headers=everything_else).status_code == 403
    denied = anonymous.get("/dlq", headers=admin)
    assert denied.status_code == 403 and "'operator'" in denied.json()["message"]
    assert anonymous.get("/dlq", headers=operator).status_code == 200
    assert anonymous.post("/events", json=FOLLOW, headers=admin).status_code == 202
    assert anonymous.post("/events", json=FOLLOW, headers=operator).status_code == 202


def test_bearer_header_works_too(anonymous: TestClient, keys: ApiKeyStore) -> None:
    token = keys.create("bearer", ("events:read",))[1]
    resp = anonymous.get("/events", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


def test_revoked_and_forged_keys_are_401(stack: Stack, keys: ApiKeyStore) -> None:
    key, token = keys.create("leaving", ("events:read",))
    assert keys.revoke(key.key_id)
    # A fresh app: the verification cache would otherwise hold the key until its TTL.
    with TestClient(create_app(stack.settings, stack.clients)) as client:
        assert client.get("/events", headers={"X-API-Key": token}).status_code == 401
        forged = token[:-4] + "abcd"
        assert client.get("/events", headers={"X-API-Key": forged}).status_code == 401
        assert client.get("/events", headers={"X-API-Key": "not-a-key"}).status_code == 401


def test_keys_are_stored_hashed(stack: Stack, keys: ApiKeyStore) -> None:
    key, token = keys.create("stored", ("admin",))
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table,
        Key={"PK": {"S": f"APIKEY#{key.key_id}"}, "SK": {"S": "KEY"}},
    )["Item"]
    assert token not in str(item)
    assert [k.key_id for k in keys.list_keys()].count(key.key_id) == 1


def test_rate_limit_per_key_is_429_with_retry_after(stack: Stack, keys: ApiKeyStore) -> None:
    settings = stack.settings.model_copy(
        update={"api_key_rate_per_second": 1.0, "api_key_burst": 2.0}
    )
    slow = key_with(keys, "events:read")
    other = key_with(keys, "events:read")
    # A cheap read (one Query, a 404), so that three requests take well under the second
    # in which the bucket would refill.
    missing = "/events/00000000-0000-4000-8000-000000000000"
    with TestClient(create_app(settings, stack.clients)) as client:
        codes = [client.get(missing, headers=slow).status_code for _ in range(3)]
        assert codes[:2] == [404, 404] and codes[2] == 429
        limited = client.get(missing, headers=slow)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert client.get(missing, headers=other).status_code == 404  # per key


def test_cli_creates_lists_and_revokes(stack: Stack) -> None:
    created = stack.cli("cli.keys", "create", "--name", "ops", "--scope", "admin")
    assert created["api_key"].startswith("hk_")
    assert created["key_id"] in [k["key_id"] for k in stack.cli("cli.keys", "list")]
    assert stack.cli("cli.keys", "revoke", created["key_id"]) == {"revoked": created["key_id"]}


def test_a_key_revoked_through_the_api_is_refused_by_that_process_at_once(
    stack: Stack, keys: ApiKeyStore
) -> None:
    key, token = keys.create("leaving", ("events:read",))
    settings = stack.settings.model_copy(update={"api_key_cache_seconds": 3600})
    with TestClient(create_app(settings, stack.clients)) as client:
        assert client.get("/events", headers={"X-API-Key": token}).status_code == 200  # cached
        admin = {"X-API-Key": TEST_API_KEY}
        assert client.delete(f"/keys/{key.key_id}", headers=admin).status_code == 204
        assert client.get("/events", headers={"X-API-Key": token}).status_code == 401
        listed = {k["key_id"]: k for k in client.get("/keys", headers=admin).json()}
        assert listed[key.key_id]["revoked"] is True
        assert client.delete("/keys/nosuchkey", headers=admin).status_code == 404
        assert client.get("/keys", headers={"X-API-Key": token}).status_code == 401


def test_the_cache_period_is_a_setting(stack: Stack, keys: ApiKeyStore) -> None:
    """Revoked by another process (the CLI): with no cache period, refused on the next call."""
    key, token = keys.create("leaving", ("events:read",))
    settings = stack.settings.model_copy(update={"api_key_cache_seconds": 0})
    with TestClient(create_app(settings, stack.clients)) as client:
        assert client.get("/events", headers={"X-API-Key": token}).status_code == 200
        assert keys.revoke(key.key_id)
        assert client.get("/events", headers={"X-API-Key": token}).status_code == 401

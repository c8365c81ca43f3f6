"""`admin` is its own tenant's: it reads no other tenant's events or dead letters, revokes
no other tenant's key and writes no rule; `operator` (the command line's, or the bootstrap
key) does all of that."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.security.api_keys import ApiKeyStore
from tests.conftest import AUTH, Stack

FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}
RULE = {
    "name": "r",
    "schedule": "every 1m",
    "source": {"kind": "events", "query": "count"},
    "condition": {"op": ">", "value": 1},
    "event_type": "alert",
    "recipients": {"user_id": "u-1"},
}


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, stack.clients)) as client:
        yield client


@pytest.fixture
def keys(stack: Stack) -> ApiKeyStore:
    return ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)


def test_an_admin_key_sees_and_revokes_only_its_own_tenant(
    api: TestClient, keys: ApiKeyStore
) -> None:
    acme_admin = {"X-API-Key": keys.create("acme-admin", ("admin",), owner="acme")[1]}
    acme_writer, _ = keys.create("acme-writer", ("events:write",), owner="acme")
    beta_key, beta_token = keys.create("beta", ("events:write", "events:read"), owner="beta")
    beta = {"X-API-Key": beta_token}

    beta_event = api.post("/events", json=FOLLOW, headers=beta).json()["event_id"]
    assert api.get(f"/events/{beta_event}", headers=acme_admin).status_code == 404
    listed = api.get("/events", headers=acme_admin).json()["items"]
    assert beta_event not in {e["event_id"] for e in listed}

    assert api.get("/dlq", headers=acme_admin).status_code == 403
    assert api.get("/dlq/sms-normal/messages", headers=acme_admin).status_code == 403
    assert api.get("/rules", headers=acme_admin).status_code == 403
    assert api.put("/rules/r-1", json=RULE, headers=acme_admin).status_code == 403

    owners = {k["owner"] for k in api.get("/keys", headers=acme_admin).json()}
    assert owners == {"acme"}
    assert api.delete(f"/keys/{beta_key.key_id}", headers=acme_admin).status_code == 404
    assert api.get("/events", headers=beta).status_code == 200  # still valid
    assert api.delete(f"/keys/{acme_writer.key_id}", headers=acme_admin).status_code == 204


def test_the_operator_reads_every_tenant_and_revokes_any_key(
    api: TestClient, keys: ApiKeyStore
) -> None:
    operator = {"X-API-Key": keys.create("ops", ("operator",))[1]}
    beta_key, beta_token = keys.create("beta", ("events:write", "events:read"), owner="beta")
    beta_event = api.post("/events", json=FOLLOW, headers={"X-API-Key": beta_token}).json()
    found = api.get(f"/events/{beta_event['event_id']}", headers=operator)
    assert found.status_code == 200 and found.json()["tenant"] == "beta"
    assert api.get("/dlq", headers=operator).status_code == 200
    assert "beta" in {k["owner"] for k in api.get("/keys", headers=operator).json()}
    assert api.delete(f"/keys/{beta_key.key_id}", headers=operator).status_code == 204
    # and the bootstrap key is an operator
    assert api.get("/dlq", headers=AUTH).status_code == 200


def test_the_cli_makes_operator_keys(stack: Stack) -> None:
    created = stack.cli("cli.keys", "create", "--name", "ops", "--scope", "operator")
    assert created["scopes"] == ["operator"]


def test_the_bootstrap_key_of_an_older_stack_gains_the_operator_scope(keys: ApiKeyStore) -> None:
    token = "hk_oldboot_" + "s" * 32
    keys.create("bootstrap", ("events:write", "events:read", "users:write", "admin"), token)
    key = keys.ensure(token, "bootstrap", ("events:write", "admin", "operator"))
    assert "operator" in key.scopes
    assert keys.verify(token) is not None and "operator" in keys.verify(token).scopes  # type: ignore[union-attr]

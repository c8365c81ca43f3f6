"""Alerts and silences belong to a tenant: the same type and key are two alerts for two
tenants, a tenant sees and acknowledges only its own, and its silences mute only its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.catalogue.models import iso
from core.security.api_keys import ApiKeyStore
from listeners.router import Router
from tests.alerting.conftest import Clock, add_user, channel_messages, route_pending
from tests.conftest import AUTH, Stack

SCOPES = ("events:write", "events:read", "users:write")
SLA = {"service": "orders-db", "sla": "15 min"}


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, stack.clients)) as client:
        yield client


@pytest.fixture
def keys(stack: Stack) -> dict[str, dict[str, str]]:
    store = ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)
    return {
        "acme": {"X-API-Key": store.create("acme", SCOPES, owner="acme")[1]},
        "beta": {"X-API-Key": store.create("beta", SCOPES, owner="beta")[1]},
        "admin": AUTH,
    }


def trigger(api: TestClient, headers: dict[str, str]) -> None:
    body = {"type": "alert.sla_breach", "user_id": "oncall", "data": SLA, "dedupe_key": "db"}
    assert api.post("/events", json=body, headers=headers).status_code == 202


def test_tenants_have_their_own_alerts_and_silences(
    stack: Stack, api: TestClient, router: Router, clock: Clock, keys: dict[str, dict[str, str]]
) -> None:
    for tenant in ("acme", "beta"):
        add_user(stack, f"{tenant}~oncall", phone="+14155550123")
    silence = {
        "matchers": [{"name": "dedupe_key", "value": "db"}],
        "starts_at": iso(clock.now),
        "ends_at": iso(clock.now.replace(year=clock.now.year + 1)),
    }
    assert api.put("/silences", json=silence, headers=keys["beta"]).status_code == 200
    trigger(api, keys["acme"])
    trigger(api, keys["beta"])
    route_pending(stack, router)
    assert len(channel_messages(stack, "sms")) == 1  # beta's alert is silenced, acme's not

    [acme] = api.get("/alerts", headers=keys["acme"]).json()["items"]
    [beta] = api.get("/alerts", headers=keys["beta"]).json()["items"]
    assert acme["alert_id"] != beta["alert_id"]
    assert len(api.get("/alerts", headers=keys["admin"]).json()["items"]) == 2
    assert api.get(f"/alerts/{acme['alert_id']}", headers=keys["beta"]).status_code == 404
    assert api.post(f"/alerts/{acme['alert_id']}/ack", headers=keys["beta"]).status_code == 404
    assert api.post(f"/alerts/{acme['alert_id']}/ack", headers=keys["acme"]).status_code == 200
    assert api.get("/silences", headers=keys["acme"]).json() == []
    assert api.get("/rules", headers=keys["acme"]).status_code == 403  # rules are admin's


def test_inline_chat_urls_must_be_allowed_webhook_hosts(
    api: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    body = {
        "type": "alert.datasource_down",
        "data": {"datasource": "warehouse"},
        "to": {"chat": ["https://169.254.169.254/latest/meta-data"]},
    }
    resp = api.post("/events", json=body, headers=keys["acme"])
    assert resp.status_code == 422 and resp.json()["message"].startswith("to.chat.0: host")

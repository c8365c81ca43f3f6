"""Inline recipients are held to the countries a deployment and a key allow and to the
key's daily quota, counted once per event in DynamoDB however AWS fails or the client
retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from cli.keys import main as keys_main
from core.aws.clients import AwsClients
from core.platform.settings import Settings
from core.security.api_keys import ApiKeyStore
from localstack.faults import FaultProxy, FaultRule
from tests.conftest import Stack

DOWN = {"type": "alert.datasource_down", "data": {"datasource": "warehouse"}}
US, UK, FR = "+14155550123", "+447700900123", "+33612345678"


def keys(stack: Stack) -> ApiKeyStore:
    return ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)


def header(stack: Stack, **limits: Any) -> dict[str, str]:
    _, token = keys(stack).create("inline", ("events:write", "events:read"), **limits)
    return {"X-API-Key": token}


def key_id(headers: dict[str, str]) -> str:
    return headers["X-API-Key"].split("_")[1]


def used_today(stack: Stack, headers: dict[str, str]) -> int:
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table,
        Key={
            "PK": {"S": f"INLINE#{key_id(headers)}"},
            "SK": {"S": f"DAY#{datetime.now(UTC).date().isoformat()}"},
        },
        ConsistentRead=True,
    ).get("Item")
    return int(item["recipients"]["N"]) if item else 0


def post(
    api: TestClient, key: dict[str, str], to: dict[str, list[str]], retry_as: str = "", **extra: Any
) -> Any:
    """POST /events to `to` with the key's header (and `retry_as` as Idempotency-Key)."""
    headers = {**key, **({"Idempotency-Key": retry_as} if retry_as else {})}
    return api.post("/events", json={**DOWN, "to": to, **extra}, headers=headers)


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(
        update={"inline_sms_prefixes": "+1,+44", "inline_daily_quota": 3}
    )
    with TestClient(create_app(settings, stack.clients)) as client:
        yield client


def test_numbers_outside_the_deployments_or_the_keys_prefixes_are_403s_naming_the_field(
    stack: Stack, api: TestClient
) -> None:
    uk_only = header(stack, inline_prefixes=("+44",))
    outside_deployment = post(api, uk_only, {"sms": [UK], "whatsapp": [UK, FR]})
    assert outside_deployment.status_code == 403, outside_deployment.text
    message = outside_deployment.json()["message"]
    assert (
        message.startswith("to.whatsapp.1: ") and "HERALD_INLINE_SMS_PREFIXES: +1, +44" in message
    )
    outside_key = post(api, uk_only, {"sms": [UK, US]})
    assert outside_key.status_code == 403
    assert outside_key.json()["message"].startswith("to.sms.1: ")
    assert "this API key's inline prefixes (+44)" in outside_key.json()["message"]
    assert FR not in message and US not in outside_key.text  # the number is not echoed
    assert used_today(stack, uk_only) == 0  # a refused event counts nothing

    assert post(api, uk_only, {"sms": [UK], "email": ["oncall@example.com"]}).status_code == 202
    anywhere_allowed = header(stack)
    assert post(api, anywhere_allowed, {"sms": [US]}).status_code == 202


def test_the_daily_quota_counts_each_event_once_and_refuses_past_it(
    stack: Stack, api: TestClient
) -> None:
    deployment_quota = header(stack)
    first = post(api, deployment_quota, {"sms": [US], "email": ["a@example.com"]}, event_id="e1")
    assert first.status_code == 202
    again = post(api, deployment_quota, {"sms": [US], "email": ["a@example.com"]}, event_id="e1")
    assert again.status_code == 200 and again.json()["duplicate"]  # the same event: not counted
    assert used_today(stack, deployment_quota) == 2
    assert post(api, deployment_quota, {"sms": [UK]}).status_code == 202
    over = post(api, deployment_quota, {"email": ["b@example.com"]})
    assert over.status_code == 429, over.text
    assert "daily quota of 3 inline recipients" in over.json()["message"]
    assert int(over.headers["Retry-After"]) <= 86400
    assert used_today(stack, deployment_quota) == 3

    own_quota = header(stack, inline_daily_quota=10)  # the key's own quota wins
    assert (
        post(api, own_quota, {"email": [f"{i}@example.com" for i in range(4)]}).status_code == 202
    )
    batch = api.post(
        "/events/batch",
        json={"events": [{**DOWN, "to": {"email": [f"x{i}@example.com" for i in range(4)]}}] * 2},
        headers=own_quota,
    )
    assert [i["result"] for i in batch.json()["items"]] == ["accepted", "error"]
    assert "daily quota of 10" in batch.json()["items"][1]["error"]
    assert used_today(stack, own_quota) == 8


@pytest.mark.parametrize("kind", ["internal_after", "throttle"])
def test_a_charge_that_aws_fails_or_applies_silently_counts_once(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings, kind: str
) -> None:
    settings = faulty_settings.model_copy(update={"inline_daily_quota": 2})
    headers = header(stack)
    to = {"sms": [US], "email": ["a@example.com"]}
    with TestClient(create_app(settings, AwsClients(settings))) as faulty:
        fault_proxy.set_rules([FaultRule("dynamodb", kind, 1.0, frozenset({"TransactWriteItems"}))])
        failed = post(faulty, headers, to, retry_as="page-1")
        assert failed.status_code == 503, failed.text  # never accepted uncounted
        fault_proxy.set_rules([])
        # internal_after applied the charge every time it was tried; throttle never did.
        assert used_today(stack, headers) == (2 if kind == "internal_after" else 0)
        retried = post(faulty, headers, to, retry_as="page-1")
        assert retried.status_code == 202, retried.text
        assert used_today(stack, headers) == 2  # counted once, whichever it was
        assert post(faulty, headers, {"email": ["b@example.com"]}).status_code == 429


def test_keys_carry_their_own_limits_from_the_api_and_the_command_line(
    stack: Stack, client: TestClient, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    created = client.post(
        "/keys",
        json={
            "name": "pager",
            "scopes": ["events:write"],
            "inline_prefixes": "+44, +1",
            "inline_daily_quota": 50,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["inline_prefixes"], body["inline_daily_quota"]) == (["+44", "+1"], 50)
    stored = keys(stack).verify(body["api_key"])
    assert stored is not None and stored.inline_prefixes == ("+44", "+1")
    assert stored.scopes == ("events:write",) and stored.owner == "default"
    bad = client.post(
        "/keys", json={"name": "x", "scopes": ["events:write"], "inline_prefixes": "44"}
    )
    assert bad.status_code == 422 and bad.json()["message"].startswith("inline_prefixes: ")
    operator = client.post("/keys", json={"name": "x", "scopes": ["operator"]})
    assert operator.status_code == 403
    writer = client.post("/keys", json={"name": "x", "scopes": ["events:write"]}).json()
    refused = client.post(
        "/keys", json={"name": "y", "scopes": ["admin"]}, headers={"X-API-Key": writer["api_key"]}
    )
    assert refused.status_code == 403  # only an admin makes keys

    monkeypatch.setenv("AWS_ENDPOINT_URL", str(stack.settings.aws_endpoint_url))
    monkeypatch.setenv("HERALD_RESOURCE_PREFIX", stack.settings.resource_prefix)
    argv = ["create", "--name", "cli", "--scope", "events:write", "--inline-prefixes", "+1"]
    assert keys_main([*argv, "--inline-daily-quota", "7"]) == 0
    made = keys(stack).verify(json.loads(capsys.readouterr().out)["api_key"])
    assert made is not None and (made.inline_prefixes, made.inline_daily_quota) == (("+1",), 7)
    assert (
        keys_main(["create", "--name", "cli", "--scope", "events:write", "--inline-prefixes", "1"])
        == 2
    )


def test_without_authentication_the_deployments_prefixes_still_hold(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"auth_enabled": False, "inline_sms_prefixes": "+44", "inline_daily_quota": 1}
    )
    with TestClient(create_app(settings, stack.clients)) as api:
        assert post(api, {}, {"sms": [US]}).status_code == 403
        for _ in range(2):  # no key to count against
            assert post(api, {}, {"sms": [UK], "email": ["a@example.com"]}).status_code == 202

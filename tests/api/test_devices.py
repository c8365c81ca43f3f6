"""Users register device tokens; Herald makes the SNS platform endpoints, and a push to
them succeeds on the local stack."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from core.catalogue.models import NotificationMessage
from notifiers.push import PushNotifier, PushResult
from tests.conftest import Stack
from tests.listeners.test_router import drain, post_event, route_all, router

COMMENT = {"actor": "Bo", "post": "p-7", "text": "Nice!"}


def token() -> str:
    return f"fcm-{uuid.uuid4().hex}"  # moto's endpoints outlive a reset: fresh tokens


def test_a_device_token_becomes_a_push_endpoint(client: TestClient) -> None:
    device = {"platform": "fcm", "token": token()}
    first = client.put("/users/u-1", json={"devices": [device]})
    assert first.status_code == 201, first.text
    [arn] = first.json()["push_endpoints"]
    assert ":endpoint/GCM/herald-test-fcm/" in arn
    assert first.json()["devices"] == [device]
    again = client.put("/users/u-1", json={"devices": [device], "email": "a@example.com"})
    assert again.json()["push_endpoints"] == [arn]  # the same token, the same endpoint

    apns = client.put("/users/u-2", json={"devices": [{"platform": "apns", "token": "ab12"}]})
    assert ":endpoint/APNS/herald-test-apns/" in apns.json()["push_endpoints"][0]


def test_a_platform_the_stack_lacks_is_422_naming_the_device(
    client: TestClient, stack: Stack
) -> None:
    sns = stack.clients.sns
    for app in sns.list_platform_applications()["PlatformApplications"]:
        if app["PlatformApplicationArn"].endswith("/herald-test-apns"):
            sns.delete_platform_application(PlatformApplicationArn=app["PlatformApplicationArn"])
    resp = client.put(
        "/users/u-1",
        json={
            "devices": [{"platform": "fcm", "token": token()}, {"platform": "apns", "token": "x"}]
        },
    )
    assert resp.status_code == 422
    assert resp.json()["message"].startswith("devices.1.platform: no SNS platform application")
    bad = client.put("/users/u-1", json={"devices": [{"platform": "fcm", "token": "a b"}]})
    assert bad.status_code == 422 and bad.json()["message"].startswith("devices.0.token")


def test_a_push_to_a_registered_device_is_sent_locally(client: TestClient, stack: Stack) -> None:
    client.put("/users/u-1", json={"devices": [{"platform": "fcm", "token": token()}]})
    client.put("/users/u-1/preferences", json={"categories": {"activity": ["push"]}})
    post_event(stack, "comment", COMMENT, user_id="u-1")
    route_all(stack, router(stack))

    [queued] = drain(stack, "push-normal")
    message = NotificationMessage.model_validate(
        {k: v for k, v in queued.items() if k != "attributes"}
    )
    result = PushNotifier(stack.clients.sns).send(message)
    assert isinstance(result, PushResult)
    assert set(result.message_ids) == set(message.addresses)

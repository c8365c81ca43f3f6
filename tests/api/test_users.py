"""Users and preferences over HTTP, stored in DynamoDB on the emulator."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from core.directory.profiles import ProfileFields
from core.directory.users import UserStore
from tests.conftest import Stack

ARN = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/{}"
ANA = {
    "phone": "+14155550123",
    "whatsapp": "+14155550124",
    "email": "ana@example.com",
    "push_endpoints": [ARN.format("a")],
    "chat": {"format": "slack", "url": "https://hooks.slack.com/services/T/B/X"},
    "timezone": "Europe/Berlin",
    "locale": "pt-BR",
}
PREFERENCES = {
    "categories": {"activity": ["push", "email"]},
    "opt_out": ["sms"],
    "quiet_hours": {"start": "22:00", "end": "07:00", "mode": "defer"},
}


def store(stack: Stack) -> UserStore:
    return UserStore(stack.clients.dynamodb, stack.clients.names.table)


def test_put_creates_then_replaces_and_get_returns_the_profile(client: TestClient) -> None:
    created = client.put("/users/u-1", json=ANA)
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ANA} == ANA
    assert body["user_id"] == "u-1"
    assert body["preferences"] == {"categories": {}, "opt_out": [], "quiet_hours": None}

    assert client.put("/users/u-1/preferences", json=PREFERENCES).json() == PREFERENCES
    replaced = client.put("/users/u-1", json={"email": "ana@example.org"})
    assert replaced.status_code == 200
    got = client.get("/users/u-1").json()
    assert got["email"] == "ana@example.org"
    assert got["phone"] is None and got["push_endpoints"] == [] and got["chat"] is None
    assert got["timezone"] == "UTC" and got["locale"] == "en"
    assert got["preferences"] == PREFERENCES, "a profile replace keeps the preferences"
    assert got["created_at"] == body["created_at"] and got["updated_at"] > body["updated_at"]


def test_unknown_users_are_404_naming_the_user(client: TestClient) -> None:
    for resp in (
        client.get("/users/nobody"),
        client.put("/users/nobody/preferences", json=PREFERENCES),
    ):
        assert resp.status_code == 404
        assert resp.json()["message"] == "user_id: no user 'nobody'"


def test_delete_removes_the_user_and_their_subscriptions(client: TestClient) -> None:
    client.put("/users/u-1", json={"email": "ana@example.com"})
    client.put("/users/u-2", json={"email": "bo@example.com"})
    for topic in ("charts.global", "data-platform"):
        for user in ("u-1", "u-2"):
            assert client.put(f"/topics/{topic}/subscribers/{user}").status_code == 200
    assert client.delete("/users/u-1").status_code == 204
    assert client.get("/users/u-1").status_code == 404
    for topic in ("charts.global", "data-platform"):
        items = client.get(f"/topics/{topic}/subscribers").json()["items"]
        assert [i["user_id"] for i in items] == ["u-2"]
    assert client.delete("/users/u-1").status_code == 204  # idempotent


def test_disabled_push_endpoints_are_kept_while_listed(client: TestClient, stack: Stack) -> None:
    two = [ARN.format("a"), ARN.format("b")]
    client.put("/users/u-1", json={"push_endpoints": two})
    users = store(stack)
    assert users.disable_push_endpoint("u-1", ARN.format("a"))
    assert not users.disable_push_endpoint("nobody", ARN.format("a"))
    assert client.get("/users/u-1").json()["disabled_push_endpoints"] == [ARN.format("a")]
    client.put("/users/u-1", json={"push_endpoints": two, "email": "ana@example.com"})
    assert client.get("/users/u-1").json()["disabled_push_endpoints"] == [ARN.format("a")]
    client.put("/users/u-1", json={"push_endpoints": [ARN.format("b")]})
    assert client.get("/users/u-1").json()["disabled_push_endpoints"] == []


def test_many_users_are_read_in_batches(stack: Stack) -> None:
    users = store(stack)
    ids = [f"u-{i:03d}" for i in range(130)]
    for user_id in ids:
        users.put_profile(user_id, ProfileFields())
    found = users.get_many([*ids, "nobody", ids[0]])
    assert sorted(found) == ids


# (body, the field the message must start with); the 422s of one request kind share a test
# because each test pays for a freshly provisioned emulator.
INVALID_PROFILES: list[tuple[dict[str, Any], str]] = [
    ({"phone": "4155550100"}, "phone"),
    ({"phone": "+1 415 555 0100"}, "phone"),
    ({"whatsapp": "+0123456789"}, "whatsapp"),
    ({"email": "not-an-email"}, "email"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"locale": "English"}, "locale"),
    ({"push_endpoints": ["device-token-123"]}, "push_endpoints.0"),
    ({"chat": {"format": "irc", "url": "https://x.example"}}, "chat.format"),
    ({"chat": {"format": "slack", "url": "ftp://x.example"}}, "chat.url"),
    ({"fax": "+14155550100"}, "fax"),
]

INVALID_PREFERENCES: list[tuple[dict[str, Any], str, str]] = [
    ({"categories": {"gossip": ["sms"]}}, "categories.gossip.[key]", "activity"),
    ({"categories": {"activity": ["pigeon"]}}, "categories.activity.0", "sms"),
    ({"opt_out": ["fax"]}, "opt_out.0", "sms"),
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start", "HH:MM"),
    ({"quiet_hours": {"start": "22:00", "end": "7am"}}, "quiet_hours.end", "HH:MM"),
    ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours", "must differ"),
    ({"quiet_hours": {"start": "22:00"}}, "quiet_hours.end", "required"),
]


def test_invalid_profiles_are_422_naming_the_field(client: TestClient) -> None:
    for body, field in INVALID_PROFILES:
        resp = client.put("/users/u-1", json=body)
        assert resp.status_code == 422, (body, resp.text)
        message = resp.json()["message"]
        assert message.startswith(f"{field}: "), (body, message)
        for value in body.values():
            if isinstance(value, str) and value.startswith("+"):
                assert value not in message, "the input (personal data) is echoed"
    assert client.get("/users/u-1").status_code == 404


def test_invalid_preferences_are_422_naming_the_field(client: TestClient) -> None:
    client.put("/users/u-1", json={})
    for body, field, words in INVALID_PREFERENCES:
        resp = client.put("/users/u-1/preferences", json=body)
        assert resp.status_code == 422, (body, resp.text)
        message = resp.json()["message"]
        assert message.startswith(f"{field}: "), (body, message)
        assert words in message, (body, message)
    bad_path = client.put("/users/bad id!", json={})
    assert bad_path.status_code == 422
    assert bad_path.json()["message"].startswith("user_id: ")


def test_openapi_documents_the_bodies_with_examples(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["UserIn"]["examples"][0]["phone"] == "+14155550123"
    assert schemas["PreferencesIn"]["examples"][0]["quiet_hours"]["start"] == "22:00"
    assert "examples" in schemas["SubscriptionIn"]

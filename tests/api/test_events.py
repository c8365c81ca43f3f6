from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Stack

COMMENT: dict[str, Any] = {
    "type": "comment",
    "user_id": "u-1",
    "data": {"actor": "Ana", "post": "p-1", "text": "hi"},
}


def bodies(messages: list[dict[str, object]]) -> list[dict[str, object]]:
    return [json.loads(str(m["Body"])) for m in messages]


def test_event_is_recorded_and_published_to_the_normal_queue(
    client: TestClient, stack: Stack
) -> None:
    resp = client.post("/events", json=COMMENT)
    assert resp.status_code == 202
    event_id = resp.json()["event_id"]
    assert resp.json()["status"] == "START"

    messages = stack.receive_all("herald-test-events-normal")
    assert [b["event_id"] for b in bodies(messages)] == [event_id]
    body = bodies(messages)[0]
    assert (
        body["type"] == "comment"
        and body["priority"] == "normal"
        and body["data"] == COMMENT["data"]
    )
    assert messages[0]["MessageAttributes"]["priority"]["StringValue"] == "normal"
    assert stack.receive_all("herald-test-events-critical") == []

    stored = client.get(f"/events/{event_id}").json()
    assert (
        stored["status"] == "START" and stored["user_id"] == "u-1" and stored["notifications"] == []
    )


def test_critical_priority_goes_to_the_critical_queue(client: TestClient, stack: Stack) -> None:
    login = client.post(
        "/events",
        json={
            "type": "security.login_alert",
            "user_id": "u-1",
            "data": {"ip": "1.2.3.4", "device": "x"},
        },
    )
    raised = client.post("/events", json={**COMMENT, "priority": "critical"})
    lowered = client.post(
        "/events",
        json={
            "type": "alert.sla_breach",
            "topic": "ops",
            "priority": "high",
            "data": {"service": "s", "sla": "99.9"},
        },
    )
    assert {login.status_code, raised.status_code, lowered.status_code} == {202}

    critical = {b["event_id"] for b in bodies(stack.receive_all("herald-test-events-critical"))}
    normal = {b["event_id"] for b in bodies(stack.receive_all("herald-test-events-normal"))}
    assert critical == {login.json()["event_id"], raised.json()["event_id"]}
    assert normal == {lowered.json()["event_id"]}


def test_repeat_with_idempotency_key_returns_original_and_publishes_once(
    client: TestClient, stack: Stack
) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = client.post("/events", json=COMMENT, headers=key)
    second = client.post("/events", json=COMMENT, headers=key)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json() == {
        "event_id": first.json()["event_id"],
        "status": "START",
        "duplicate": True,
    }
    assert len(stack.receive_all("herald-test-events-normal")) == 1


def test_same_key_with_a_different_payload_is_409(client: TestClient) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    assert client.post("/events", json=COMMENT, headers=key).status_code == 202
    changed = {**COMMENT, "data": {**COMMENT["data"], "text": "changed"}}
    resp = client.post("/events", json=changed, headers=key)
    assert resp.status_code == 409
    assert "different event" in resp.json()["message"]


def test_client_event_id_makes_repeats_duplicates(client: TestClient, stack: Stack) -> None:
    body = {**COMMENT, "event_id": f"ev-{uuid.uuid4().hex}"}
    assert client.post("/events", json=body).status_code == 202
    again = client.post("/events", json=body)
    assert again.status_code == 200 and again.json()["event_id"] == body["event_id"]
    assert len(stack.receive_all("herald-test-events-normal")) == 1


def test_unknown_event_is_404(client: TestClient) -> None:
    resp = client.get("/events/does-not-exist")
    assert resp.status_code == 404
    assert "does-not-exist" in resp.json()["message"]


def test_list_pages_newest_first_with_an_opaque_cursor(client: TestClient) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    ids = [
        client.post("/events", json={**COMMENT, "user_id": user}).json()["event_id"]
        for _ in range(5)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"user_id": user, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/events", params=params).json()
        seen += [item["event_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert pages == 3


def test_list_filters_by_type_and_status(client: TestClient) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    comment = client.post("/events", json={**COMMENT, "user_id": user}).json()["event_id"]
    client.post("/events", json={"type": "follow", "user_id": user, "data": {"actor": "Bo"}})
    page = client.get(
        "/events", params={"user_id": user, "type": "comment", "status": "START"}
    ).json()
    assert [i["event_id"] for i in page["items"]] == [comment]
    assert (
        client.get("/events", params={"user_id": user, "status": "SUCCESS"}).json()["items"] == []
    )
    by_type = client.get("/events", params={"type": "comment", "limit": 100}).json()
    assert comment in [i["event_id"] for i in by_type["items"]]


def test_forged_cursor_is_422_naming_cursor(client: TestClient) -> None:
    for cursor in ("not-base64!", "eyJhIjogMX0"):
        resp = client.get("/events", params={"cursor": cursor})
        assert resp.status_code == 422
        assert resp.json()["message"].startswith("cursor")


def test_health_and_welcome(client: TestClient) -> None:
    assert client.get("/").json()["docs"] == "/docs"
    health = client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    details = client.get("/health/details")
    assert details.json()["checks"] == {"dynamodb": "ok", "sns": "ok"}
    assert client.get("/docs").status_code == 200


def test_health_is_503_when_the_table_is_gone(client: TestClient, stack: Stack) -> None:
    assert client.get("/events", params={"limit": 1}).status_code == 200  # key now cached
    stack.clients.dynamodb.delete_table(TableName=stack.clients.names.table)
    assert client.get("/health").status_code == 503
    resp = client.get("/health/details")
    assert resp.status_code == 503
    assert resp.json()["checks"]["dynamodb"].startswith("error")
    assert resp.json()["checks"]["sns"] == "ok"


def test_storage_failure_on_post_is_503_with_retry_after(client: TestClient, stack: Stack) -> None:
    assert client.get("/events", params={"limit": 1}).status_code == 200  # key now cached
    stack.clients.dynamodb.delete_table(TableName=stack.clients.names.table)
    resp = client.post("/events", json=COMMENT)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"].isdigit()
    assert stack.receive_all("herald-test-events-normal") == []

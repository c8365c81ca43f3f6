"""Bad input gets a 4xx whose message names the field; nothing reaches the queues."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack

VALID = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**VALID, "type": "poke"}, "type", "known types: like, comment"),
        ({"type": "follow", "data": {"actor": "A"}}, "body", "exactly one of user_id or topic"),
        ({**VALID, "topic": "t"}, "body", "exactly one of user_id or topic"),
        ({**VALID, "data": {}}, "body", "data is missing actor"),
        ({**VALID, "user_id": "bad id!"}, "user_id", "pattern"),
        ({**VALID, "priority": "urgent"}, "priority", "critical"),
        ({**VALID, "colour": "red"}, "colour", "Extra inputs"),
        ({**VALID, "data": "text"}, "data", "dictionary"),
    ],
)
def test_invalid_event_is_422_naming_the_field(
    client: TestClient, stack: Stack, body: dict[str, object], field: str, words: str
) -> None:
    resp = client.post("/events", json=body)
    assert resp.status_code == 422, resp.text
    message = resp.json()["message"]
    assert message.startswith(field), message
    assert words in message
    assert stack.receive_all("herald-test-events-normal") == []


def test_invalid_json_is_422(client: TestClient) -> None:
    resp = client.post(
        "/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422


def test_body_over_the_limit_is_413(client: TestClient, stack: Stack) -> None:
    big = {**VALID, "data": {"actor": "A", "blob": "x" * (300 * 1024)}}
    resp = client.post("/events", json=big)
    assert resp.status_code == 413
    assert "body" in resp.json()["message"]


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks():  # no Content-Length: the guard must count what arrives
        for _ in range(40):
            yield b"x" * 8192

    resp = client.post("/events", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413


def test_non_json_content_type_is_415(client: TestClient) -> None:
    resp = client.post("/events", content=b"type=follow", headers={"content-type": "text/plain"})
    assert resp.status_code == 415
    assert "application/json" in resp.json()["message"]


def test_key_and_event_id_together_are_422(client: TestClient) -> None:
    resp = client.post(
        "/events", json={**VALID, "event_id": "e1"}, headers={"Idempotency-Key": "k"}
    )
    assert resp.status_code == 422


def test_unknown_type_filter_is_422(client: TestClient) -> None:
    resp = client.get("/events", params={"type": "poke"})
    assert resp.status_code == 422 and resp.json()["message"].startswith("type")

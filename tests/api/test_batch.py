from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.conftest import Stack

FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


def test_one_bad_event_does_not_fail_the_others(client: TestClient, stack: Stack) -> None:
    events = [FOLLOW, {**FOLLOW, "type": "poke"}, {**FOLLOW, "priority": "critical"}]
    resp = client.post("/events/batch", json={"events": events})
    assert resp.status_code == 200
    result = resp.json()
    assert (result["accepted"], result["duplicates"], result["errors"]) == (2, 0, 1)
    assert [i["result"] for i in result["items"]] == ["accepted", "error", "accepted"]
    assert result["items"][1]["error"].startswith("type: ")

    normal = [
        json.loads(m["Body"])["event_id"] for m in stack.receive_all("herald-test-events-normal")
    ]
    critical = [
        json.loads(m["Body"])["event_id"] for m in stack.receive_all("herald-test-events-critical")
    ]
    assert normal == [result["items"][0]["event_id"]]
    assert critical == [result["items"][2]["event_id"]]


def test_batch_repeat_reports_duplicates_and_conflicts(client: TestClient, stack: Stack) -> None:
    first = client.post(
        "/events/batch",
        json={"events": [{**FOLLOW, "event_id": "b-1"}, {**FOLLOW, "event_id": "b-2"}]},
    )
    assert first.json()["accepted"] == 2
    again = client.post(
        "/events/batch",
        json={
            "events": [
                {**FOLLOW, "event_id": "b-1"},
                {**FOLLOW, "event_id": "b-2", "data": {"actor": "Eve"}},
                {**FOLLOW, "event_id": "b-1"},
            ]
        },
    )
    items = again.json()["items"]
    assert [i["result"] for i in items] == ["duplicate", "error", "error"]
    assert "different event" in items[1]["error"] and "repeats item 0" in items[2]["error"]
    assert len(stack.receive_all("herald-test-events-normal")) == 2


def test_batch_over_the_limit_is_413(client: TestClient) -> None:
    resp = client.post("/events/batch", json={"events": [FOLLOW] * 101})
    assert resp.status_code == 413
    assert resp.json()["message"].startswith("events")


def test_empty_batch_is_422(client: TestClient) -> None:
    assert client.post("/events/batch", json={"events": []}).status_code == 422

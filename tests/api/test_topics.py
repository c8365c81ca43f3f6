"""Topic subscriptions over HTTP: subscribe, change channels, unsubscribe, page through."""

from __future__ import annotations

from fastapi.testclient import TestClient

TOPIC = "charts.global"


def test_subscribe_change_channels_and_unsubscribe(client: TestClient) -> None:
    missing = client.put(f"/topics/{TOPIC}/subscribers/nobody")
    assert missing.status_code == 404
    assert missing.json()["message"] == "user_id: no user 'nobody'"

    client.put("/users/u-1", json={"email": "ana@example.com"})
    first = client.put(f"/topics/{TOPIC}/subscribers/u-1")
    assert first.status_code == 200
    assert first.json()["channels"] is None and first.json()["topic"] == TOPIC
    changed = client.put(f"/topics/{TOPIC}/subscribers/u-1", json={"channels": ["email"]})
    assert changed.json()["channels"] == ["email"]
    assert changed.json()["created_at"] == first.json()["created_at"]
    back = client.put(f"/topics/{TOPIC}/subscribers/u-1", json={})
    assert back.json()["channels"] is None

    for body, field in (
        ({"channels": ["pigeon"]}, "channels.0"),
        ({"channels": []}, "channels"),
        ({"chanels": ["sms"]}, "chanels"),
    ):
        resp = client.put(f"/topics/{TOPIC}/subscribers/u-1", json=body)
        assert resp.status_code == 422, resp.text
        assert resp.json()["message"].startswith(f"{field}: "), resp.json()
    assert client.put("/topics/bad topic/subscribers/u-1").json()["message"].startswith("topic")

    assert client.delete(f"/topics/{TOPIC}/subscribers/u-1").status_code == 204
    assert client.delete(f"/topics/{TOPIC}/subscribers/u-1").status_code == 204
    assert client.get(f"/topics/{TOPIC}/subscribers").json() == {"items": [], "next_cursor": None}


def test_subscribers_come_a_page_at_a_time(client: TestClient) -> None:
    users = [f"u-{i:02d}" for i in range(25)]
    for user in users:
        client.put(f"/users/{user}", json={})
        client.put(f"/topics/{TOPIC}/subscribers/{user}", json={"channels": ["push"]})
    client.put("/users/other", json={})
    client.put("/topics/other/subscribers/other")

    seen: list[str] = []
    sizes = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/topics/{TOPIC}/subscribers", params=params).json()
        sizes.append(len(page["items"]))
        seen += [i["user_id"] for i in page["items"]]
        assert all(i["channels"] == ["push"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == users

    exact = client.get(f"/topics/{TOPIC}/subscribers", params={"limit": 25}).json()
    assert len(exact["items"]) == 25 and exact["next_cursor"] is None

    first = client.get(f"/topics/{TOPIC}/subscribers", params={"limit": 10}).json()
    forged = client.get(f"/topics/{TOPIC}/subscribers", params={"cursor": "not-a-cursor"})
    other = client.get("/topics/other/subscribers", params={"cursor": first["next_cursor"]})
    for resp in (forged, other):
        assert resp.status_code == 422
        assert resp.json()["message"].startswith("cursor: ")
    too_big = client.get(f"/topics/{TOPIC}/subscribers", params={"limit": 5000})
    assert too_big.status_code == 422 and too_big.json()["message"].startswith("limit: ")

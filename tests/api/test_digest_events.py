"""POST /events with a digest: bad specs are 422s naming the field, and an absorbed event
reads back DIGESTED, naming the digest's event."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.digests.items import OPEN
from core.digests.store import DigestStore
from listeners.digest_closing import build_digest_closer
from listeners.digesting import close_work
from listeners.messages import Ack, QueueMessage
from listeners.router import Router
from tests.conftest import AUTH, Stack

LIKE = {"type": "like", "user_id": "u-1", "data": {"actor": "Bo", "post": "p-7"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**LIKE, "digest": {"window": "30s"}}, "digest.window: Value error, '30s' is outside"),
        ({**LIKE, "digest": {"window": "8d"}}, "digest.window: Value error, '8d' is outside"),
        ({**LIKE, "digest": {"window": "10 minutes"}}, "digest.window: Value error"),
        ({**LIKE, "digest": {}}, "digest.window: Field required"),
        ({**LIKE, "digest": {"window": "10m", "key": "nope"}}, "digest.key: data has no field"),
        ({**LIKE, "digest": {"window": "10m", "key": "a b"}}, "digest.key: String should match"),
        ({**LIKE, "digest": {"window": "10m", "max_items": 1}}, "digest.max_items:"),
        ({**LIKE, "digest": {"window": "10m", "max_items": 5000}}, "digest.max_items:"),
        ({**LIKE, "digest": {"window": "10m", "every": 1}}, "digest.every: Extra inputs"),
        (
            {**LIKE, "priority": "critical", "digest": {"window": "10m"}},
            "digest: a critical event is never digested",
        ),
        (
            {"type": "like", "topic": "t", "data": LIKE["data"], "digest": {"window": "10m"}},
            "digest: only an event for one user_id is digested",
        ),
    ],
)
def test_a_bad_digest_is_a_422_naming_the_field(
    stack: Stack, body: dict[str, Any], message: str
) -> None:
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as api:
        resp = api.post("/events", json=body)
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["message"]


def test_an_absorbed_event_reads_back_digested_naming_the_digest(stack: Stack) -> None:
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as api:
        assert api.put("/users/u-1", json={"email": "ana@example.com"}).status_code in (200, 201)
        digest = {"window": "10m", "key": "post", "max_items": 50}
        posted = [
            api.post(
                "/events", json={**LIKE, "data": {"actor": a, "post": "p-7"}, "digest": digest}
            )
            for a in ("Bo", "Ann")
        ]
        assert [p.status_code for p in posted] == [202, 202]
        queue = stack.clients.names.router_queue("normal")
        messages = [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue)]
        assert Router(stack.settings, stack.clients)(messages) == [Ack(), Ack()]

        first = api.get(f"/events/{posted[0].json()['event_id']}").json()
        assert first["status"] == "DIGESTED" and first["notifications"] == []
        digest_id = first["digest_event_id"]
        assert digest_id and digest_id in first["reason"]
        listed = api.get("/events", params={"status": "DIGESTED"}).json()["items"]
        assert sorted(e["event_id"] for e in listed) == sorted(p.json()["event_id"] for p in posted)

        assert api.get(f"/events/{digest_id}").status_code == 404  # not sent yet
        store = DigestStore(stack.clients.dynamodb, stack.clients.names.table)
        pk_heads = stack.clients.dynamodb.scan(
            TableName=stack.clients.names.table,
            FilterExpression="begins_with(PK, :d)",
            ExpressionAttributeValues={":d": {"S": "DIGEST#"}},
        )["Items"]
        [item] = pk_heads
        ref = f"{item['PK']['S']}/0"
        opened = store.get(ref)
        assert opened is not None and opened.status == OPEN and opened.count == 2
        build_digest_closer(stack.settings, stack.clients)(close_work(opened))
        sent = api.get(f"/events/{digest_id}").json()
        assert sent["type"] == "like" and sent["data"]["count"] == 2
        assert sent["data"]["actors"] == ["Bo", "Ann"] and sent["status"] == "START"

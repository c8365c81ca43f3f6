"""The outbox: an event recorded but not published still reaches its queue, once."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from api.main import create_app
from listeners.reconciler import Reconciler
from localstack.provision import provision
from tests.conftest import AUTH, Stack

FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


def test_event_whose_publish_failed_is_republished_once(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.5})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        # The topic disappears after the API started: the publish fails after the record.
        stack.clients.sns.delete_topic(TopicArn=stack.clients.topic_arn)
        resp = client.post("/events", json=FOLLOW)
        assert resp.status_code == 202
        event_id = resp.json()["event_id"]
        assert client.get(f"/events/{event_id}").json()["status"] == "START"
    reconciler = Reconciler(settings, stack.clients)
    assert reconciler.run_once() == 0  # still inside the grace period
    assert stack.receive_all("herald-test-events-normal") == []

    provision(settings, stack.clients)  # the topic comes back
    time.sleep(0.6)
    assert reconciler.run_once() == 1
    assert reconciler.run_once() == 0  # just republished: not again within the grace

    messages = stack.receive_all("herald-test-events-normal")
    assert [json.loads(m["Body"])["event_id"] for m in messages] == [event_id]


def test_reconciler_leaves_events_that_moved_on(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        event_id = client.post("/events", json=FOLLOW).json()["event_id"]
    reconciler = Reconciler(settings, stack.clients)
    from core.models import EventStatus

    assert reconciler.events.transition(event_id, EventStatus.START, EventStatus.PROCESSING)
    assert reconciler.run_once() == 0
    assert len(stack.receive_all("herald-test-events-normal")) == 1

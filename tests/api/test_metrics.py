"""GET /metrics: requests counted by route template (never by id), accepted events and
their accept latency, behind the events:read scope."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.api.test_events import COMMENT


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    labels = {"route": "/events/{event_id}", "method": "GET", "status": "404"}
    before = sample("herald_api_requests_total", **labels)
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    unmatched_before = sample("herald_api_requests_total", **unmatched)
    for _ in range(3):
        assert client.get(f"/events/{uuid.uuid4()}").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert sample("herald_api_requests_total", **labels) == before + 3
    assert sample("herald_api_requests_total", **unmatched) == unmatched_before + 1


def test_an_accepted_event_is_counted_with_its_latency(client: TestClient) -> None:
    accepted = sample("herald_events_accepted_total", priority="normal")
    timed = sample("herald_api_accept_duration_seconds_count")
    rounds = sample("herald_api_group_commit_round_size_count", call="accept")
    assert client.post("/events", json=COMMENT).status_code == 202
    assert sample("herald_events_accepted_total", priority="normal") == accepted + 1
    assert sample("herald_api_accept_duration_seconds_count") == timed + 1
    assert sample("herald_api_group_commit_round_size_count", call="accept") == rounds + 1


def test_the_scrape_needs_a_key_and_serves_the_text_format(client: TestClient) -> None:
    assert client.get("/metrics", headers={"X-API-Key": ""}).status_code == 401
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "# TYPE herald_api_requests_total counter" in resp.text
    assert "herald_aws_requests_total{" in resp.text  # the app's start-up made AWS calls

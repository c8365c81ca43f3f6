"""Nothing passes silently: data of the wrong kind and unknown query parameters are 422s
naming what is wrong."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.catalogue.event_types import EVENT_TYPES
from tests.conftest import Stack


def test_every_variable_of_the_catalogue_has_a_type() -> None:
    for spec in EVENT_TYPES.values():
        assert set(spec.variable_types) == set(spec.variables)
    assert EVENT_TYPES["trend.sales_spike"].variable_types == {
        "item": "string",
        "change_pct": "number",
    }


def test_data_of_the_wrong_kind_is_422_naming_each_variable(
    client: TestClient, stack: Stack
) -> None:
    resp = client.post(
        "/events",
        json={"type": "like", "user_id": "u-1", "data": {"actor": {"x": 1}, "post": None}},
    )
    assert resp.status_code == 422, resp.text
    message = resp.json()["message"]
    assert message.startswith("data.actor: must be a string, got an object"), message
    assert "data.post: must be a string, got null" in message
    assert [d["loc"] for d in resp.json()["detail"]] == [
        ["body", "data", "actor"],
        ["body", "data", "post"],
    ]
    assert stack.receive_all("herald-test-events-normal") == []


@pytest.mark.parametrize(
    ("data", "accepted"),
    [
        ({"item": "vinyl", "change_pct": 42.5}, True),
        ({"item": "vinyl", "change_pct": 7}, True),
        ({"item": "vinyl", "change_pct": "42"}, False),
        ({"item": "vinyl", "change_pct": True}, False),
        ({"item": 7, "change_pct": 7}, False),
    ],
)
def test_numbers_and_strings_are_told_apart(
    client: TestClient, data: dict[str, object], accepted: bool
) -> None:
    resp = client.post(
        "/events", json={"type": "trend.sales_spike", "topic": "sales", "data": data}
    )
    assert (resp.status_code == 202) is accepted, resp.text


def test_a_batch_item_of_the_wrong_kind_fails_alone_naming_the_variable(
    client: TestClient,
) -> None:
    resp = client.post(
        "/events/batch",
        json={
            "events": [
                {"type": "follow", "user_id": "u-1", "data": {"actor": ["Ana"]}},
                {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}},
            ]
        },
    )
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert items[0]["result"] == "error"
    assert items[0]["error"].startswith("data.actor: must be a string, got an array")
    assert items[1]["result"] == "accepted"


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/events", {"stauts": "FAILED"}, "stauts"),
        ("/events", {"status": "FAILED", "limt": "5", "x": "1"}, "limt"),
        ("/topics/t/subscribers", {"page": "2"}, "page"),
        ("/health", {"verbose": "1"}, "verbose"),
    ],
)
def test_unknown_query_parameters_are_422_naming_them(
    client: TestClient, path: str, params: dict[str, str], named: str
) -> None:
    resp = client.get(path, params=params)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["message"].startswith(named), body["message"]
    assert "unknown query parameter" in body["message"]
    unknown = {d["loc"][1] for d in body["detail"]}
    assert unknown == set(params) - {"status"}


def test_known_query_parameters_still_work(client: TestClient) -> None:
    resp = client.get("/events", params={"status": "FAILED", "limit": "5"})
    assert resp.status_code == 200, resp.text

"""What fuzzing the API found (`test_fuzz.py` and probing around it), as plain tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.events import MAX_EVENT_BYTES
from api.schemas import MAX_DATA_DEPTH, Problem
from core.platform.settings import Settings

COMMENT: dict[str, Any] = {
    "type": "comment",
    "user_id": "u-1",
    "data": {"actor": "Ana", "post": "p-1", "text": "Nice!"},
}


def openapi() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


def nested(depth: int) -> dict[str, Any]:
    """`data` with the template variables and `depth` levels of objects in all."""
    data: dict[str, Any] = dict(COMMENT["data"])
    inner = data
    for _ in range(depth - 1):
        inner["n"] = {}
        inner = inner["n"]
    return data


def raw_post(client: TestClient, path: str, body: bytes) -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json"})


# --- the schema tells the truth about errors ---------------------------------------------


def test_a_422_a_route_raises_has_the_documented_problem_shape(client: TestClient) -> None:
    # Found: GET /events?type=null answered {"message", "detail": null} where the schema
    # promised FastAPI's {"detail": [...]}.
    resp = client.get("/events", params={"type": "null"})
    assert resp.status_code == 422
    problem = Problem.model_validate(resp.json())
    assert problem.message.startswith("type:") and problem.detail is None
    documented = openapi()["paths"]["/events"]["get"]["responses"]["422"]
    assert documented["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


def test_no_operation_documents_fastapis_own_validation_body() -> None:
    schema = openapi()
    assert "HTTPValidationError" not in json.dumps(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and "content" in response:
                    ref = response["content"]["application/json"]["schema"]
                    assert ref == {"$ref": "#/components/schemas/Problem"}, (method, path, status)


def test_statuses_from_the_key_check_the_guard_and_storage_are_documented() -> None:
    operations = openapi()["paths"]
    assert {"401", "403", "429", "413", "415", "503"} <= set(
        operations["/events"]["post"]["responses"]
    )
    assert {"401", "403", "429", "503"} <= set(operations["/dlq"]["get"]["responses"])
    twilio = operations["/webhooks/twilio"]["post"]["responses"]
    assert "413" in twilio and "415" not in twilio and "401" not in twilio  # signed, form body
    assert set(operations["/"]["get"]["responses"]) == {"200"}
    assert "Retry-After" in operations["/events"]["post"]["responses"]["503"]["headers"]


# --- bodies that are not what they claim -------------------------------------------------


@pytest.mark.parametrize("path", ["/events", "/events/batch", "/users/u-1"])
def test_a_body_that_is_not_utf8_is_a_422_naming_the_body(client: TestClient, path: str) -> None:
    # Found: undecodable bytes announced as JSON were a 400 no operation documented.
    method = client.put if path.startswith("/users") else client.post
    resp = method(path, content=b"\xff\xfe{", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["message"].startswith("body:")


# --- event data every hop can carry ------------------------------------------------------


def test_data_nested_past_the_limit_is_a_422_not_a_500(client: TestClient) -> None:
    # Found: 500 levels of objects made encoding the event for SNS raise: a 500.
    resp = client.post("/events", json={**COMMENT, "data": nested(500)})
    assert resp.status_code == 422
    assert resp.json()["message"].startswith("data:")
    assert f"deeper than {MAX_DATA_DEPTH} levels" in resp.json()["message"]


def test_data_at_the_depth_limit_is_accepted(client: TestClient) -> None:
    assert (
        client.post("/events", json={**COMMENT, "data": nested(MAX_DATA_DEPTH)}).status_code == 202
    )


def test_a_too_deep_event_in_a_batch_fails_alone(client: TestClient) -> None:
    resp = client.post(
        "/events/batch", json={"events": [COMMENT, {**COMMENT, "data": nested(500)}]}
    )
    assert resp.status_code == 200
    items = resp.json()["items"]
    assert [i["result"] for i in items] == ["accepted", "error"]
    assert "deeper than" in items[1]["error"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_a_422(client: TestClient, number: bytes) -> None:
    # Found: accepted, then stored as NaN but sent to the router (and shown) as null.
    body = b'{"type": "comment", "user_id": "u-1", "data": {"actor": "A", "post": "p", '
    body += b'"text": "t", "score": [1, ' + number + b"]}}"
    resp = raw_post(client, "/events", body)
    assert resp.status_code == 422
    assert "NaN and Infinity" in resp.json()["message"]
    assert "data.score.1" in resp.json()["message"]


def test_an_event_over_the_limit_in_utf8_bytes_is_a_413(client: TestClient) -> None:
    text = "€" * 87_300  # three bytes each
    body = json.dumps({**COMMENT, "data": {**COMMENT["data"], "text": text}}, ensure_ascii=False)
    raw = body.encode()
    assert len(raw) <= client.app.state.services.settings.max_body_bytes  # type: ignore[attr-defined]
    assert len(body) < MAX_EVENT_BYTES < len(raw)
    resp = raw_post(client, "/events", raw)
    assert resp.status_code == 413

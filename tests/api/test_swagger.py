"""Swagger UI works offline, offers named examples that work on a fresh stack, and labels
the answers of POST /events."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.examples import BODY_EXAMPLES

# Path parameters for the examples, as the README's quick start names things.
PATH_VALUES = {"user_id": "u-42", "topic": "charts.global", "queue": "sms-normal"}
PATH_VALUES["rule_id"] = "status-page"
ORDER = [
    ("put", "/users/{user_id}"),
    ("put", "/users/{user_id}/preferences"),
    ("put", "/topics/{topic}/subscribers/{user_id}"),
    ("post", "/events"),
    ("post", "/events/batch"),
    ("post", "/dlq/{queue}/redrive"),
    ("put", "/silences"),
    ("put", "/rules/{rule_id}"),
]


def test_docs_load_their_assets_from_herald_not_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 500, source
    assert "swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()


def test_every_operation_with_a_body_offers_named_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue  # the provider webhooks post forms, signed
            examples = content["application/json"].get("examples")
            assert examples, f"{method.upper()} {path} has no named examples"
            assert all(e["summary"] and "value" in e for e in examples.values())
    assert set(ORDER) == set(BODY_EXAMPLES)


def test_post_events_labels_accepted_and_duplicate(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/events"]["post"]["responses"]
    assert responses["202"]["description"].startswith("accepted")
    assert responses["200"]["description"].startswith("duplicate")


def test_every_named_example_works_on_a_fresh_stack(client: TestClient) -> None:
    for method, path in ORDER:
        concrete = path.format(**PATH_VALUES)
        for name, example in BODY_EXAMPLES[(method, path)].items():
            resp = client.request(method.upper(), concrete, json=example["value"])
            assert resp.is_success, f"{method.upper()} {path} example {name}: {resp.text}"

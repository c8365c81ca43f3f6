"""Named examples for every operation that takes a body, and labelled answers, added to the
OpenAPI document so that Swagger UI offers each one in its "Examples" list.

Every example here works as given on a fresh `make run` stack, in the order of the README's
quick start (the user u-42 first); a test sends each one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.schemas_users import PREFERENCES_EXAMPLE

Examples = dict[str, dict[str, Any]]

USER = "u-42"

BODY_EXAMPLES: dict[tuple[str, str], Examples] = {
    ("put", "/users/{user_id}"): {
        "sms_and_email": {
            "summary": "A phone and an email",
            "value": {
                "phone": "+14155550123",
                "email": "ana@example.com",
                "timezone": "Europe/Berlin",
            },
        },
        "email_only": {"summary": "Only an email", "value": {"email": "bo@example.com"}},
        "phone_app": {
            "summary": "A device of the mobile app (push)",
            "value": {
                "email": "ana@example.com",
                "devices": [{"platform": "fcm", "token": "fcm-demo-token-1"}],
            },
        },
    },
    ("put", "/users/{user_id}/preferences"): {
        "per_category": {
            "summary": "Channels per category, quiet hours",
            "value": PREFERENCES_EXAMPLE,
        },
        "activity_by_sms": {
            "summary": "Activity by SMS and email",
            "value": {"categories": {"activity": ["sms", "email"]}},
        },
    },
    ("put", "/topics/{topic}/subscribers/{user_id}"): {
        "default_channels": {"summary": "The user's own channels", "value": {}},
        "email_only": {"summary": "Only by email", "value": {"channels": ["email"]}},
    },
    ("post", "/events"): {
        "comment": {
            "summary": "Activity for one user",
            "value": {
                "type": "comment",
                "user_id": USER,
                "data": {"actor": "Bo", "post": "p-7", "text": "Nice!"},
            },
        },
        "trend_to_topic": {
            "summary": "A trend for a topic's subscribers",
            "value": {
                "type": "trend.top_artist_changed",
                "topic": "charts.global",
                "data": {"chart": "Global Top 50", "artist": "Nova"},
            },
        },
        "critical_alert": {
            "summary": "A critical alert with a dedupe key",
            "value": {
                "type": "alert.pipeline_failed",
                "topic": "data-platform",
                "priority": "critical",
                "dedupe_key": "daily-sales",
                "data": {"pipeline": "daily-sales", "error": "timeout"},
            },
        },
        "inline_recipients": {
            "summary": "To addresses given inline (on-call)",
            "value": {
                "type": "alert.datasource_down",
                "to": {"email": ["oncall@example.com"]},
                "data": {"datasource": "warehouse"},
            },
        },
    },
    ("post", "/events/batch"): {
        "two_events": {
            "summary": "Two activity events",
            "value": {
                "events": [
                    {"type": "follow", "user_id": USER, "data": {"actor": "Bo"}},
                    {"type": "like", "user_id": USER, "data": {"actor": "Cy", "post": "p-7"}},
                ]
            },
        },
    },
    ("post", "/dlq/{queue}/redrive"): {
        "everything": {"summary": "Every dead letter of the queue", "value": {}},
        "some": {"summary": "Only some messages", "value": {"message_ids": ["<message id>"]}},
    },
    ("put", "/silences"): {
        "one_alert": {
            "summary": "Mute one alert for a day",
            "value": {
                "matchers": [
                    {"name": "type", "value": "alert.pipeline_failed"},
                    {"name": "dedupe_key", "value": "daily-sales"},
                ],
                "ends_at": "2030-01-01T00:00:00Z",
                "comment": "known outage",
            },
        },
    },
    ("put", "/rules/{rule_id}"): {
        "http_check": {
            "summary": "Alert when a status page stops answering",
            "value": {
                "name": "status page down",
                "schedule": "every 5m",
                "source": {"kind": "http", "url": "https://status.example.com/health"},
                "condition": {"kind": "unreachable"},
                "event_type": "alert.rule",
                "recipients": {"users": [USER]},
            },
        },
    },
}

RESPONSE_LABELS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/events"): {
        "202": "accepted: recorded and published (follow it with GET /events/{event_id})",
        "200": "duplicate: a repeat of an earlier event (same Idempotency-Key or event_id), "
        "which is returned and not published again",
    },
}


def add_examples(schema: dict[str, Any]) -> dict[str, Any]:
    for (method, path), examples in BODY_EXAMPLES.items():
        operation = schema["paths"][path][method]
        content = operation["requestBody"]["content"]["application/json"]
        content["examples"] = examples
    for (method, path), labels in RESPONSE_LABELS.items():
        responses = schema["paths"][path][method]["responses"]
        for code, label in labels.items():
            responses[code]["description"] = label
    return schema


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_examples(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

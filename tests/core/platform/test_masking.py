"""Personal data and address credentials never reach a log line or an error in clear."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from core.platform.errors import PermanentError, RetryableError
from core.platform.logs import JsonFormatter, configure_logging
from core.platform.masking import mask_address, mask_text

ENDPOINT_ID = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
ARN = f"arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald-app/{ENDPOINT_ID}"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXsecret"
TEAMS = "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/secret"


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("The 'To' number +14155550123 is not valid", "+14155550123", "+***23"),
        ("to whatsapp:+14155550123 failed", "+14155550123", "whatsapp:+***23"),
        ("bounce for ana.maria@example.com", "ana.maria@example.com", "a***@example.com"),
        (f"{ARN}: sns EndpointDisabled", "6f1c2d3e-aaaa", "/GCM/herald-app/****89ab"),
        (f"slack webhook 404 at {SLACK}", "XXXXsecret", "hooks.slack.com/***"),
        (
            "http://127.0.0.1:8025/slack/hooks.slack.com/services/T000/B000/XXXXsecret",
            "XXXXsecret",
            "/slack/hooks.slack.com/***",
        ),
        (f"teams: {TEAMS}", "secret", "contoso.webhook.office.com/***"),
    ],
)
def test_mask_text_hides_the_value_and_keeps_a_recognisable_form(
    text: str, gone: str, kept: str
) -> None:
    masked = mask_text(text)
    assert gone not in masked
    assert kept in masked


def test_mask_text_leaves_ids_times_and_counts_alone() -> None:
    text = "event 5b1f8f1e-6c43 at 2024-05-01T09:30:00Z: 3 of 12 sent, code 21211"
    assert mask_text(text) == text


def test_mask_address_per_kind_of_address() -> None:
    assert mask_address("+14155550123") == "+*******0123"
    assert mask_address("ana@example.com") == "a***@example.com"
    assert (
        mask_address(ARN) == "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald-app/****89ab"
    )
    assert mask_address(SLACK) == "https://hooks.slack.com/***"


def test_delivery_errors_mask_their_reason() -> None:
    error = PermanentError("The 'To' number +14155550123 is not valid", code="twilio:21211")
    assert "+14155550123" not in str(error) and "+***23" in error.reason
    retry = RetryableError(f"{ARN}: sns Throttling", code="sns:Throttling")
    assert "6f1c2d3e" not in retry.reason


def test_a_log_line_is_masked_message_and_traceback_alike() -> None:
    try:
        raise ValueError("cannot reach ana@example.com")
    except ValueError:
        record = logging.LogRecord(
            "herald.x", logging.WARNING, __file__, 1, "sent to %s", ("+14155550123",), None
        )
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter("worker-sms").format(record))
    assert line["msg"] == "sent to +***23"
    assert "ana@example.com" not in line["exc"] and "a***@example.com" in line["exc"]


def test_server_log_lines_go_through_the_masking_formatter() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    server, access = logging.getLogger("uvicorn.error"), logging.getLogger("uvicorn.access")
    server.addHandler(logging.NullHandler())
    access.handlers[:], access.propagate = [], False  # what --no-access-log leaves
    try:
        configure_logging("api")
        assert server.handlers == [] and server.propagate
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert not access.propagate, "a turned-off access log must stay off"
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_http_clients_log_only_their_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    """A chat send's HTTP client logs a line per request at INFO: not one per notification
    in Herald's logs, while its warnings still come through."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    client = logging.getLogger("httpx")
    level = client.level
    try:
        configure_logging("worker-chat")
        client.info("HTTP Request: POST %s", SLACK)
        client.warning("connection pool is full")
        lines = capsys.readouterr().out.splitlines()
    finally:
        root.handlers[:], root_level = saved
        root.setLevel(root_level)
        client.setLevel(level)
    assert [json.loads(line)["msg"] for line in lines] == ["connection pool is full"]

"""Email through the real SendGrid SDK against the sandbox."""

from __future__ import annotations

import pytest

from core.platform.errors import PermanentError, RetryableError
from core.platform.settings import Settings
from localstack.sandbox import Sandbox
from notifiers.email import EmailNotifier
from tests.notifiers.conftest import LATENCY_MS, SHORT_TIMEOUT, MakeMessage, email_for


def test_mail_send_carries_subject_bodies_reply_to_and_the_notification_id(
    email: EmailNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    message = make_message("email")
    result = email.send(message)

    [request] = sandbox.messages("sendgrid")
    assert request["method"] == "POST"
    assert request["path"] == "/v3/mail/send"
    assert request["headers"]["Authorization"] == "Bearer SG.test-key"
    mail = request["json"]
    assert mail["from"] == {"email": "alerts@herald.example"}
    assert mail["reply_to"] == {"email": "support@herald.example"}
    assert mail["subject"] == "Ana liked your post"
    assert mail["personalizations"][0]["to"] == [{"email": "user@herald.example"}]
    assert mail["content"] == [
        {"type": "text/plain", "value": "Ana liked 'Sunset'."},
        {"type": "text/html", "value": "<p>Ana liked <b>Sunset</b>.</p>"},
    ]
    assert mail["custom_args"] == {
        "notification_id": message.notification_id,
        "event_id": message.event_id,
    }
    assert request["notification_id"] == message.notification_id

    assert result.provider == "sendgrid"
    assert result.provider_message_id
    assert result.provider_message_id == request["message_id"]


def test_no_reply_to_when_unset(
    sandbox: Sandbox, provider_settings: Settings, make_message: MakeMessage
) -> None:
    email_for(provider_settings, reply_to=None).send(make_message("email"))
    assert "reply_to" not in sandbox.messages("sendgrid")[0]["json"]


def test_text_only_email_has_one_part(
    email: EmailNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    email.send(make_message("email", content={"html": ""}))
    assert sandbox.messages("sendgrid")[0]["json"]["content"] == [
        {"type": "text/plain", "value": "Ana liked 'Sunset'."}
    ]


def test_invalid_recipient_is_permanent_and_marks_the_address(
    email: EmailNotifier, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentError) as caught:
        email.send(make_message("email", addresses=["nobody@invalid.example"]))
    assert caught.value.code == "sendgrid:400"
    assert caught.value.address_invalid
    assert "personalizations.0.to.0.email" in caught.value.reason


def test_other_validation_errors_are_permanent_without_blaming_the_address(
    sandbox: Sandbox, make_message: MakeMessage, email: EmailNotifier
) -> None:
    sandbox.fail("sendgrid", 400, count=1)
    with pytest.raises(PermanentError) as caught:
        email.send(make_message("email"))
    assert caught.value.code == "sendgrid:400"
    assert not caught.value.address_invalid


def test_rejected_api_key_is_permanent(
    sandbox: Sandbox, provider_settings: Settings, make_message: MakeMessage
) -> None:
    sandbox.fail("sendgrid", 401, count=1)
    with pytest.raises(PermanentError) as caught:
        email_for(provider_settings).send(make_message("email"))
    assert caught.value.code == "sendgrid:401"


def test_rate_limit_is_retryable_with_the_providers_retry_after(
    email: EmailNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("sendgrid", 429, count=1, retry_after=3)
    with pytest.raises(RetryableError) as caught:
        email.send(make_message("email"))
    assert caught.value.code == "sendgrid:429"
    assert caught.value.retry_after == 3


def test_server_error_is_retryable(
    email: EmailNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("sendgrid", 503, count=1)
    with pytest.raises(RetryableError) as caught:
        email.send(make_message("email"))
    assert caught.value.code == "sendgrid:503"
    assert caught.value.retry_after is None
    assert [r["status"] for r in sandbox.messages("sendgrid")] == [503]


def test_connection_refused_is_retryable(
    provider_settings: Settings, refused_url: str, make_message: MakeMessage
) -> None:
    with pytest.raises(RetryableError) as caught:
        email_for(provider_settings, host=refused_url).send(make_message("email"))
    assert caught.value.code == "sendgrid:connection"


def test_timeout_is_retryable(
    sandbox: Sandbox, provider_settings: Settings, make_message: MakeMessage
) -> None:
    sandbox.fail("sendgrid", latency_ms=LATENCY_MS, count=1)
    with pytest.raises(RetryableError) as caught:
        email_for(provider_settings, timeout=SHORT_TIMEOUT).send(make_message("email"))
    assert caught.value.code == "sendgrid:timeout"


def test_email_without_subject_is_permanent(
    email: EmailNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentError):
        email.send(make_message("email", content={"subject": ""}))
    assert sandbox.messages("sendgrid") == []

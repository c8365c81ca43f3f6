"""Slack and Teams incoming webhooks through httpx against the sandbox."""

from __future__ import annotations

import pytest

from core.platform.errors import PermanentError, RetryableError
from localstack.sandbox import Sandbox
from notifiers.chat import ChatNotifier
from tests.notifiers.conftest import LATENCY_MS, SHORT_TIMEOUT, MakeMessage

TEAMS_URL = "https://contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi"


def test_slack_message_has_a_fallback_text_and_a_severity_coloured_attachment(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    message = make_message("chat", content={"severity": "critical"})
    result = chat.send(message)

    [request] = sandbox.messages("slack")
    assert request["path"] == "/slack/hooks.slack.com/services/T000/B000/XXXX"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["notification_id"] == message.notification_id
    payload = request["json"]
    assert payload["text"] == "[CRITICAL] Disk full"
    [attachment] = payload["attachments"]
    assert attachment["color"] == "#D32F2F"
    section = attachment["blocks"][0]
    assert section["type"] == "section"
    assert section["text"] == {"type": "mrkdwn", "text": "*Disk full*\ndb-1 at 97%"}
    assert request["status"] == 200
    assert result.provider == "slack"
    assert result.provider_message_id is None  # webhooks return no id


@pytest.mark.parametrize(
    ("severity", "colour"),
    [("critical", "D32F2F"), ("high", "F57C00"), ("normal", "1976D2"), ("low", "9E9E9E")],
)
def test_teams_message_card_is_themed_by_severity(
    chat: ChatNotifier,
    sandbox: Sandbox,
    make_message: MakeMessage,
    severity: str,
    colour: str,
) -> None:
    message = make_message(
        "chat", addresses=[TEAMS_URL], content={"format": "teams", "severity": severity}
    )
    result = chat.send(message)

    [request] = sandbox.messages("teams")
    assert (
        request["path"] == "/teams/contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi"
    )
    card = request["json"]
    assert card["@type"] == "MessageCard"
    assert card["themeColor"] == colour
    assert card["title"] == "Disk full"
    assert card["text"] == "db-1 at 97%"
    assert card["sections"][0]["facts"] == [{"name": "Severity", "value": severity}]
    assert request["notification_id"] == message.notification_id
    assert result.provider == "teams"


def test_a_webhook_url_on_the_sandbox_itself_is_refused(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    """Only the operator's base URL may point at loopback; a user's URL naming it may not."""
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat", addresses=[f"{sandbox.url}/slack/ops-room"]))
    assert caught.value.code == "slack:url"
    assert caught.value.address_invalid
    assert sandbox.messages("slack") == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "https://hooks.slack.com@127.0.0.1/hook",
        "https://evil.example/services/T/B/X",
    ],
)
def test_urls_off_the_allow_list_are_refused_at_send_time(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage, url: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat", addresses=[url]))
    assert caught.value.code == "slack:url"
    assert sandbox.messages() == []


def test_without_redirect_an_allowed_name_resolving_to_loopback_is_refused_at_connect(
    sandbox: Sandbox, make_message: MakeMessage
) -> None:
    """`localhost` passes an allow-list that names it; the transport still will not connect
    to what it resolves to, which is what also stops DNS rebinding of an allowed host."""
    chat = ChatNotifier(timeout=5, allowed_hosts=("localhost",))
    try:
        with pytest.raises(PermanentError) as caught:
            chat.send(make_message("chat", addresses=["https://localhost/slack/hook"]))
    finally:
        chat.close()
    assert caught.value.code == "slack:blocked"
    assert caught.value.address_invalid


def test_the_provider_answer_is_not_kept_verbatim(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("slack", 400, count=1, body="ami-id\ninstance-id\nsecret-token-1234")
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat"))
    assert caught.value.reason == "slack webhook 400"
    sandbox.fail("slack", 400, count=1, body="invalid_payload")
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat"))
    assert caught.value.reason == "slack webhook 400: invalid_payload"


def test_a_redirect_is_not_followed(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("slack", 302, count=1)
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat"))
    assert caught.value.code == "slack:302"
    assert len(sandbox.messages("slack")) == 1


def test_rate_limit_is_retryable_with_retry_after(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("slack", 429, count=1, retry_after=30)
    with pytest.raises(RetryableError) as caught:
        chat.send(make_message("chat"))
    assert caught.value.code == "slack:429"
    assert caught.value.retry_after == 30


def test_server_error_is_retryable(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("teams", 502, count=1)
    with pytest.raises(RetryableError) as caught:
        chat.send(make_message("chat", addresses=[TEAMS_URL], content={"format": "teams"}))
    assert caught.value.code == "teams:502"


def test_bad_request_is_permanent(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("slack", 400, count=1)
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat"))
    assert caught.value.code == "slack:400"
    assert not caught.value.address_invalid


@pytest.mark.parametrize("status", [404, 410])
def test_removed_webhook_is_permanent_and_marks_the_address(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage, status: int
) -> None:
    sandbox.fail("slack", status, count=1)
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat"))
    assert caught.value.address_invalid


def test_connection_refused_is_retryable(refused_url: str, make_message: MakeMessage) -> None:
    chat = ChatNotifier(timeout=5, redirect_base_url=refused_url)
    try:
        with pytest.raises(RetryableError) as caught:
            chat.send(make_message("chat"))
    finally:
        chat.close()
    assert caught.value.code == "slack:connection"


def test_timeout_is_retryable(sandbox: Sandbox, make_message: MakeMessage) -> None:
    sandbox.fail("slack", latency_ms=LATENCY_MS, count=1)
    chat = ChatNotifier(timeout=SHORT_TIMEOUT, redirect_base_url=sandbox.url)
    try:
        with pytest.raises(RetryableError) as caught:
            chat.send(make_message("chat"))
    finally:
        chat.close()
    assert caught.value.code == "slack:timeout"


def test_unknown_format_is_permanent(chat: ChatNotifier, make_message: MakeMessage) -> None:
    with pytest.raises(PermanentError) as caught:
        chat.send(make_message("chat", content={"format": "irc"}))
    assert caught.value.code == "chat:format"


def test_unusable_webhook_url_is_permanent(make_message: MakeMessage) -> None:
    chat = ChatNotifier(timeout=5)
    try:
        with pytest.raises(PermanentError) as caught:
            chat.send(make_message("chat", addresses=["ftp://hooks.slack.com/x"]))
    finally:
        chat.close()
    assert caught.value.address_invalid


def test_teams_connector_refusal_inside_a_200_is_translated(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail(
        "teams",
        200,
        count=1,
        body="Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        "HTTP error 429 with ContextId tcid=0,server=msgapi-canary-eus2-0,cv=deadbeef.0.",
    )
    message = make_message("chat", addresses=[TEAMS_URL], content={"format": "teams"})
    with pytest.raises(RetryableError) as caught:
        chat.send(message)
    assert caught.value.code == "teams:429"


INJECTION = "<!channel> <@U024BE7LH> <https://evil.example|your invoice> & co"
ESCAPED = "&lt;!channel&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example|your invoice&gt; &amp; co"


def test_event_data_cannot_inject_slack_mentions_or_links(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    chat.send(make_message("chat", content={"title": f"Bo {INJECTION}", "text": INJECTION}))
    [request] = sandbox.messages("slack")
    payload = request["json"]
    assert payload["text"] == f"[HIGH] Bo {ESCAPED}"
    [attachment] = payload["attachments"]
    assert attachment["fallback"] == f"[HIGH] Bo {ESCAPED}: {ESCAPED}"
    assert attachment["blocks"][0]["text"]["text"] == f"*Bo {ESCAPED}*\n{ESCAPED}"
    assert "<!channel>" not in str(payload)


def test_event_data_cannot_inject_markup_into_teams_cards(
    chat: ChatNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    message = make_message(
        "chat",
        addresses=[TEAMS_URL],
        content={"format": "teams", "title": "<b>x</b>", "text": "<img src=x onerror=y>"},
    )
    chat.send(message)
    [request] = sandbox.messages("teams")
    card = request["json"]
    assert card["title"] == "&lt;b&gt;x&lt;/b&gt;"
    assert card["text"] == "&lt;img src=x onerror=y&gt;"

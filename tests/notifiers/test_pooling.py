"""Provider clients keep their connections open between sends, across the worker's threads,
and still fail the way the channel tests expect."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform.errors import RetryableError
from core.platform.settings import Settings
from localstack.sandbox import Sandbox
from notifiers.chat import ChatNotifier
from notifiers.sms import SmsNotifier
from tests.notifiers.conftest import (
    LATENCY_MS,
    SHORT_TIMEOUT,
    ConnectionCounter,
    MakeMessage,
    email_for,
    twilio_for,
)

SENDS = 120
#: More than the 10 connections requests keeps per host by default (the Twilio SDK's pool
#: for http, and more than its https pool on a small machine).
THREADS = 12


def send_all(
    send: Callable[[NotificationMessage], DeliveryResult], messages: list[NotificationMessage]
) -> list[DeliveryResult]:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(send, messages))


def test_emails_from_many_threads_share_a_connection_per_thread(
    provider_settings: Settings,
    counter: ConnectionCounter,
    sandbox: Sandbox,
    make_message: MakeMessage,
) -> None:
    email = email_for(provider_settings, host=counter.url, connections=THREADS)
    messages = [make_message("email", event_id=f"ev-{i}") for i in range(SENDS)]

    results = send_all(email.send, messages)

    recorded = sandbox.messages("sendgrid")
    assert sorted(r["notification_id"] for r in recorded) == sorted(
        m.notification_id for m in messages
    )
    assert {r["status"] for r in recorded} == {202}
    assert {r.provider_message_id for r in results} == {r["message_id"] for r in recorded}
    assert counter.accepted <= THREADS


def test_sms_from_many_threads_share_a_connection_per_thread(
    provider_settings: Settings,
    counter: ConnectionCounter,
    sandbox: Sandbox,
    make_message: MakeMessage,
) -> None:
    twilio = twilio_for(provider_settings, base_url=counter.url, connections=THREADS)
    sms = SmsNotifier(twilio, from_number="+15005550006", messaging_service_sid=None)
    messages = [make_message("sms", event_id=f"ev-{i}") for i in range(SENDS)]

    send_all(sms.send, messages)

    assert len(sandbox.messages("twilio")) == SENDS
    assert counter.accepted <= THREADS


def test_chat_posts_from_many_threads_share_a_connection_per_thread(
    counter: ConnectionCounter, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    chat = ChatNotifier(timeout=5, redirect_base_url=counter.url)
    messages = [make_message("chat", event_id=f"ev-{i}") for i in range(SENDS)]
    try:
        send_all(chat.send, messages)
    finally:
        chat.close()

    assert len(sandbox.messages("slack")) == SENDS
    assert counter.accepted <= THREADS


def test_refusals_keep_the_connection_and_map_as_before(
    provider_settings: Settings,
    counter: ConnectionCounter,
    sandbox: Sandbox,
    make_message: MakeMessage,
) -> None:
    email = email_for(provider_settings, host=counter.url)
    sandbox.fail("sendgrid", 429, count=1, retry_after=7)
    sandbox.fail("sendgrid", 503, count=1)

    with pytest.raises(RetryableError) as limited:
        email.send(make_message("email", event_id="ev-1"))
    with pytest.raises(RetryableError) as unavailable:
        email.send(make_message("email", event_id="ev-2"))
    delivered = email.send(make_message("email", event_id="ev-3"))

    assert (limited.value.code, limited.value.retry_after) == ("sendgrid:429", 7)
    assert (unavailable.value.code, unavailable.value.retry_after) == ("sendgrid:503", None)
    # One request per send: the transport retries nothing itself.
    assert [r["status"] for r in sandbox.messages("sendgrid")] == [429, 503, 202]
    assert delivered.provider_message_id == sandbox.messages("sendgrid")[-1]["message_id"]
    assert counter.accepted == 1


def test_a_timed_out_connection_is_not_reused_for_the_next_send(
    provider_settings: Settings,
    counter: ConnectionCounter,
    sandbox: Sandbox,
    make_message: MakeMessage,
) -> None:
    """The late answer to the timed-out request must not be read as the next one's."""
    email = email_for(provider_settings, host=counter.url, timeout=SHORT_TIMEOUT)
    email.send(make_message("email", event_id="ev-0"))
    sandbox.fail("sendgrid", latency_ms=LATENCY_MS, count=1)

    with pytest.raises(RetryableError) as caught:
        email.send(make_message("email", event_id="ev-1"))
    result = email.send(make_message("email", event_id="ev-2"))

    assert caught.value.code == "sendgrid:timeout"
    [after] = sandbox.messages("sendgrid", notification_id="ev-2:email:u-1")
    assert result.provider_message_id == after["message_id"]
    assert counter.accepted == 2


def test_email_goes_through_the_environments_proxy_as_urllib_did(
    provider_settings: Settings,
    counter: ConnectionCounter,
    sandbox: Sandbox,
    make_message: MakeMessage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay stands in for an egress proxy: the API's host does not resolve, so the
    mail arrives only if the proxy from the environment is used."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, counter.url)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    email = email_for(provider_settings, host="http://api.sendgrid.invalid")

    message = make_message("email")
    result = email.send(message)

    [request] = sandbox.messages("sendgrid")
    assert request["notification_id"] == message.notification_id
    assert result.provider_message_id == request["message_id"]
    assert counter.accepted == 1

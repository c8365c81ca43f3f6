"""The registry: one notifier per channel, and where each provider is pointed."""

from __future__ import annotations

from typing import Any

import pytest

from core.aws.clients import AwsClients
from core.catalogue.event_types import CHANNELS
from core.platform.settings import SANDBOX_TWILIO_AUTH_TOKEN, Settings
from localstack.sandbox import Sandbox
from notifiers.base import Notifier
from notifiers.registry import build_notifiers, provider_urls
from tests.notifiers.conftest import MakeMessage

REAL_TWILIO = {
    "twilio_account_sid": "ACtest0000000000000000000000000001",
    "twilio_auth_token": "test-token",
}


def make_settings(**values: Any) -> Settings:
    if values.get("sandbox") is False:
        values = {**REAL_TWILIO, **values}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_every_catalogue_channel_has_a_notifier() -> None:
    settings = make_settings()
    notifiers = build_notifiers(settings, AwsClients(settings))
    assert sorted(notifiers) == sorted(CHANNELS)
    for channel, notifier in notifiers.items():
        assert isinstance(notifier, Notifier)
        assert notifier.channel == channel


def test_sandbox_mode_points_unset_providers_at_the_sandbox() -> None:
    urls = provider_urls(make_settings(sandbox=True, sandbox_port=9999))
    assert urls.twilio_base_url == "http://127.0.0.1:9999"
    assert urls.twilio_status_callback_url == "http://127.0.0.1:9999/twilio/status"
    assert urls.sendgrid_host == "http://127.0.0.1:9999"
    assert urls.chat_webhook_base_url == "http://127.0.0.1:9999"


def test_explicit_urls_win_over_the_sandbox() -> None:
    urls = provider_urls(
        make_settings(
            sandbox=True,
            twilio_base_url="https://api.twilio.com",
            sendgrid_host="https://api.eu.sendgrid.com",
        )
    )
    assert urls.twilio_base_url == "https://api.twilio.com"
    # Real Twilio would refuse a loopback callback: none unless configured.
    assert urls.twilio_status_callback_url is None
    assert urls.sendgrid_host == "https://api.eu.sendgrid.com"
    assert urls.chat_webhook_base_url == "http://127.0.0.1:8025"


def test_without_the_sandbox_unset_means_the_public_apis() -> None:
    urls = provider_urls(
        make_settings(sandbox=False, twilio_status_callback_url="https://h.example/cb")
    )
    assert urls.twilio_base_url is None
    assert urls.twilio_status_callback_url == "https://h.example/cb"
    assert urls.sendgrid_host is None
    assert urls.chat_webhook_base_url is None
    notifiers = build_notifiers(make_settings(sandbox=False), AwsClients(make_settings()))
    assert notifiers["email"].host == "https://api.sendgrid.com"  # type: ignore[attr-defined]


def test_built_notifiers_deliver_to_the_sandbox_with_their_notification_ids(
    sandbox: Sandbox, make_message: MakeMessage
) -> None:
    settings = make_settings(sandbox=True, sandbox_port=sandbox.port)
    notifiers = build_notifiers(settings, AwsClients(settings))
    sent = {
        channel: make_message(channel, recipient_id=f"r-{channel}")
        for channel in ("sms", "whatsapp", "email", "chat")
    }
    for channel, message in sent.items():
        notifiers[channel].send(message)

    recorded = {r["notification_id"]: r["provider"] for r in sandbox.messages()}
    assert recorded == {
        sent["sms"].notification_id: "twilio",
        sent["whatsapp"].notification_id: "twilio",
        sent["email"].notification_id: "sendgrid",
        sent["chat"].notification_id: "slack",
    }


def test_only_the_twilio_channels_need_real_twilio_credentials() -> None:
    """Outside sandbox mode a process builds its own channels' notifiers only, so the email,
    push and chat workers start without a Twilio secret, and the SMS worker refuses the
    public sandbox token."""
    outside = make_settings(sandbox=False, twilio_auth_token=SANDBOX_TWILIO_AUTH_TOKEN)
    clients = AwsClients(make_settings())
    built = build_notifiers(outside, clients, ["email", "push", "chat"])
    assert set(built) == {"email", "push", "chat"}
    for channel in ("sms", "whatsapp"):
        with pytest.raises(ValueError, match="HERALD_TWILIO_AUTH_TOKEN"):
            build_notifiers(outside, clients, [channel])

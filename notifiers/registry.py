"""The one place notifiers are built: a channel is one module plus one line in `build_notifiers`.

With `settings.sandbox` on, every provider whose URL setting is unset is pointed at the local
sandbox (`localstack.sandbox`), so the real SDK code runs end to end with nothing sent out;
an explicit URL setting always wins, so one provider can be real while the others are fake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.aws.clients import AwsClients
from core.catalogue.event_types import CHANNELS
from core.platform.settings import Settings
from notifiers.base import Notifier
from notifiers.chat import ChatNotifier
from notifiers.email import EmailNotifier
from notifiers.push import PushNotifier
from notifiers.sms import SmsNotifier
from notifiers.twilio_client import TwilioMessaging
from notifiers.whatsapp import WhatsAppNotifier

#: Where the sandbox takes Twilio status callbacks (it records and ignores them).
SANDBOX_TWILIO_CALLBACK_PATH = "/twilio/status"


@dataclass(frozen=True)
class ProviderUrls:
    """Resolved endpoints; None means the provider's own public API."""

    twilio_base_url: str | None
    twilio_status_callback_url: str | None
    sendgrid_host: str | None
    chat_webhook_base_url: str | None


def sandbox_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.sandbox_port}"


def provider_urls(settings: Settings) -> ProviderUrls:
    fake = sandbox_url(settings) if settings.sandbox else None
    twilio = settings.twilio_base_url or fake
    callback = settings.twilio_status_callback_url
    if callback is None and fake is not None and twilio == fake:
        # Only when Twilio itself is the sandbox: real Twilio rejects loopback callbacks.
        callback = f"{fake}{SANDBOX_TWILIO_CALLBACK_PATH}"
    return ProviderUrls(
        twilio_base_url=twilio,
        twilio_status_callback_url=callback,
        sendgrid_host=settings.sendgrid_host or fake,
        chat_webhook_base_url=settings.chat_webhook_base_url or fake,
    )


def build_notifiers(
    settings: Settings, clients: AwsClients, channels: Iterable[str] = CHANNELS
) -> dict[str, Notifier]:
    """The notifiers of `channels` only: a worker builds its own channel's, so the email
    worker needs no Twilio credentials and the SMS worker no SendGrid key."""
    urls = provider_urls(settings)
    timeout = settings.provider_timeout_seconds
    builders: dict[str, Callable[[], Notifier]] = {
        "sms": lambda: SmsNotifier(
            _twilio(settings, urls),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
        ),
        "whatsapp": lambda: WhatsAppNotifier(
            _twilio(settings, urls), from_number=settings.twilio_whatsapp_from
        ),
        "email": lambda: EmailNotifier(
            api_key=settings.sendgrid_api_key,
            from_email=settings.email_from,
            reply_to=settings.email_reply_to,
            host=urls.sendgrid_host,
            timeout=timeout,
            connections=settings.send_concurrency,
        ),
        "push": lambda: PushNotifier(clients.sns),
        "chat": lambda: ChatNotifier(
            timeout=timeout,
            redirect_base_url=urls.chat_webhook_base_url,
            allowed_hosts=settings.chat_webhook_host_patterns,
        ),
    }
    return {channel: builders[channel]() for channel in channels}


def _twilio(settings: Settings, urls: ProviderUrls) -> TwilioMessaging:
    account_sid, auth_token = settings.real_twilio_credentials()
    return TwilioMessaging(
        account_sid=account_sid,
        auth_token=auth_token,
        timeout=settings.provider_timeout_seconds,
        connections=settings.send_concurrency,
        base_url=urls.twilio_base_url,
        status_callback_url=urls.twilio_status_callback_url,
    )

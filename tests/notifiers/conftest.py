"""Notifiers built as the registry builds them, pointed at the sandbox by explicit settings."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.catalogue.models import NotificationMessage
from core.platform.settings import Settings
from localstack.sandbox import Sandbox
from notifiers.chat import ChatNotifier
from notifiers.email import EmailNotifier
from notifiers.sms import SmsNotifier
from notifiers.twilio_client import TwilioMessaging
from notifiers.whatsapp import WhatsAppNotifier
from tests.support import free_port

#: Short enough that a latency fault of LATENCY_MS always exceeds it.
SHORT_TIMEOUT = 0.3
LATENCY_MS = 1500

MakeMessage = Callable[..., NotificationMessage]


@pytest.fixture
def provider_settings(sandbox: Sandbox) -> Settings:
    """Every provider URL set explicitly to the sandbox (sandbox mode off, so no defaults)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        sandbox=False,
        twilio_account_sid="ACtest0000000000000000000000000001",
        twilio_auth_token="test-token",
        twilio_from_number="+15005550006",
        twilio_whatsapp_from="+14155238886",
        twilio_base_url=sandbox.url,
        twilio_status_callback_url="https://herald.example/webhooks/twilio",
        sendgrid_api_key="SG.test-key",
        sendgrid_host=sandbox.url,
        email_from="alerts@herald.example",
        email_reply_to="support@herald.example",
        chat_webhook_base_url=sandbox.url,
        provider_timeout_seconds=5,
    )


@pytest.fixture
def refused_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


class ConnectionCounter(socketserver.ThreadingTCPServer):
    """A loopback TCP relay to `upstream` that counts the connections clients open to it.

    The sandbox cannot tell one connection from another; put this in front of it to see how
    many a notifier opens for its requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.upstream = upstream
        self._lock = threading.Lock()
        self._accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return self._accepted

    def count(self) -> None:
        with self._lock:
            self._accepted += 1


class _Relay(socketserver.BaseRequestHandler):
    server: ConnectionCounter

    def handle(self) -> None:
        self.server.count()
        with socket.create_connection(self.server.upstream) as upstream:
            back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            back.start()
            _pump(self.request, upstream)
            back.join()


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until either side closes, then pass the end of the stream on."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.fixture
def counter(sandbox: Sandbox) -> Iterator[ConnectionCounter]:
    """The sandbox behind a connection-counting relay: point a notifier at `counter.url`."""
    relay = ConnectionCounter(("127.0.0.1", sandbox.port))
    thread = threading.Thread(target=relay.serve_forever, daemon=True)
    thread.start()
    yield relay
    relay.shutdown()
    relay.server_close()
    thread.join(timeout=5)


def twilio_for(settings: Settings, **overrides: Any) -> TwilioMessaging:
    options: dict[str, Any] = {
        "account_sid": settings.twilio_account_sid,
        "auth_token": settings.twilio_auth_token,
        "timeout": settings.provider_timeout_seconds,
        "base_url": settings.twilio_base_url,
        "status_callback_url": settings.twilio_status_callback_url,
    }
    return TwilioMessaging(**{**options, **overrides})


@pytest.fixture
def sms(provider_settings: Settings) -> SmsNotifier:
    return SmsNotifier(
        twilio_for(provider_settings),
        from_number=provider_settings.twilio_from_number,
        messaging_service_sid=None,
    )


@pytest.fixture
def whatsapp(provider_settings: Settings) -> WhatsAppNotifier:
    return WhatsAppNotifier(
        twilio_for(provider_settings), from_number=provider_settings.twilio_whatsapp_from
    )


def email_for(settings: Settings, **overrides: Any) -> EmailNotifier:
    options: dict[str, Any] = {
        "api_key": settings.sendgrid_api_key,
        "from_email": settings.email_from,
        "reply_to": settings.email_reply_to,
        "host": settings.sendgrid_host,
        "timeout": settings.provider_timeout_seconds,
    }
    return EmailNotifier(**{**options, **overrides})


@pytest.fixture
def email(provider_settings: Settings) -> EmailNotifier:
    return email_for(provider_settings)


@pytest.fixture
def chat(provider_settings: Settings) -> Iterator[ChatNotifier]:
    notifier = ChatNotifier(
        timeout=provider_settings.provider_timeout_seconds,
        redirect_base_url=provider_settings.chat_webhook_base_url,
    )
    yield notifier
    notifier.close()


DEFAULT_CONTENT: dict[str, dict[str, str]] = {
    "sms": {"text": "Your code is 123456"},
    "whatsapp": {"text": "Your order shipped"},
    "email": {
        "subject": "Ana liked your post",
        "text": "Ana liked 'Sunset'.",
        "html": "<p>Ana liked <b>Sunset</b>.</p>",
    },
    "push": {"title": "New follower", "body": "Ana follows you"},
    "chat": {"format": "slack", "title": "Disk full", "text": "db-1 at 97%", "severity": "high"},
}
DEFAULT_ADDRESS = {
    "sms": "+14155550100",
    "whatsapp": "+14155550101",
    "email": "user@herald.example",
    "chat": "https://hooks.slack.com/services/T000/B000/XXXX",
}


@pytest.fixture
def make_message() -> MakeMessage:
    """`make_message(channel, addresses=..., content=..., **fields)` with sensible defaults."""

    def make(
        channel: str,
        *,
        addresses: list[str] | None = None,
        content: dict[str, str] | None = None,
        **fields: Any,
    ) -> NotificationMessage:
        recipient = fields.pop("recipient_id", "u-1")
        event_id = fields.pop("event_id", "ev-1")
        values: dict[str, Any] = {
            "notification_id": f"{event_id}:{channel}:{recipient}",
            "event_id": event_id,
            "event_type": "like",
            "category": "activity",
            "priority": "normal",
            "channel": channel,
            "recipient_id": recipient,
            "addresses": addresses or [DEFAULT_ADDRESS[channel]],
            "content": {**DEFAULT_CONTENT[channel], **(content or {})},
            "created_at": "2026-01-01T00:00:00.000000Z",
            **fields,
        }
        return NotificationMessage(**values)

    return make

"""SMS and WhatsApp through the real Twilio SDK against the sandbox."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest

from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform.errors import PermanentError, RetryableError
from core.platform.settings import Settings
from localstack.sandbox import Sandbox
from notifiers.sms import SmsNotifier
from notifiers.whatsapp import WhatsAppNotifier
from tests.notifiers.conftest import LATENCY_MS, SHORT_TIMEOUT, MakeMessage, twilio_for


def test_sms_is_posted_to_twilio_messages_with_basic_auth(
    sms: SmsNotifier, sandbox: Sandbox, provider_settings: Settings, make_message: MakeMessage
) -> None:
    message = make_message("sms")
    result = sms.send(message)

    [request] = sandbox.messages("twilio")
    sid = provider_settings.twilio_account_sid
    assert request["method"] == "POST"
    assert request["path"] == f"/2010-04-01/Accounts/{sid}/Messages.json"
    assert request["auth"] == {"scheme": "basic", "username": sid, "password": "test-token"}
    form = request["form"]
    assert form["To"] == "+14155550100"
    assert form["From"] == "+15005550006"
    assert form["Body"] == "Your code is 123456"
    assert "MessagingServiceSid" not in form
    callback = urlsplit(form["StatusCallback"])
    assert callback.netloc == "herald.example"
    assert parse_qs(callback.query) == {"notification_id": [message.notification_id]}
    assert request["notification_id"] == message.notification_id

    assert result.provider == "twilio"
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("SM")
    assert result.provider_message_id == request["message_id"]


def test_sms_uses_the_messaging_service_instead_of_a_sender(
    sandbox: Sandbox, provider_settings: Settings, make_message: MakeMessage
) -> None:
    sms = SmsNotifier(
        twilio_for(provider_settings),
        from_number=provider_settings.twilio_from_number,
        messaging_service_sid="MG00000000000000000000000000000001",
    )
    sms.send(make_message("sms"))
    [request] = sandbox.messages("twilio")
    assert request["form"]["MessagingServiceSid"] == "MG00000000000000000000000000000001"
    assert "From" not in request["form"]


def test_no_status_callback_when_none_is_configured(
    sandbox: Sandbox, provider_settings: Settings, make_message: MakeMessage
) -> None:
    sms = SmsNotifier(
        twilio_for(provider_settings, status_callback_url=None),
        from_number="+15005550006",
        messaging_service_sid=None,
    )
    sms.send(make_message("sms"))
    [request] = sandbox.messages("twilio")
    assert "StatusCallback" not in request["form"]
    assert request["notification_id"] is None


def test_whatsapp_prefixes_both_addresses(
    whatsapp: WhatsAppNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    message = make_message("whatsapp")
    result = whatsapp.send(message)
    [request] = sandbox.messages("twilio")
    assert request["form"]["To"] == "whatsapp:+14155550101"
    assert request["form"]["From"] == "whatsapp:+14155238886"
    assert request["form"]["Body"] == "Your order shipped"
    assert request["notification_id"] == message.notification_id
    assert result.provider_message_id == request["message_id"]


def test_whatsapp_address_already_prefixed_is_kept(
    whatsapp: WhatsAppNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    whatsapp.send(make_message("whatsapp", addresses=["whatsapp:+14155550102"]))
    assert sandbox.messages("twilio")[0]["form"]["To"] == "whatsapp:+14155550102"


@pytest.mark.parametrize(
    ("number", "code", "dead"),
    [
        ("+15005550001", "twilio:21211", True),  # invalid number
        ("+15005550009", "twilio:21614", True),  # not a mobile number
        ("+15005550004", "twilio:21610", False),  # unsubscribed: an opt-out, not dead
        ("+15005550003", "twilio:21408", False),  # no permission for the region
    ],
)
def test_twilio_refusals_are_permanent(
    sms: SmsNotifier, make_message: MakeMessage, number: str, code: str, dead: bool
) -> None:
    with pytest.raises(PermanentError) as caught:
        sms.send(make_message("sms", addresses=[number]))
    assert caught.value.code == code
    assert caught.value.address_invalid is dead


def test_whatsapp_invalid_number_is_permanent(
    whatsapp: WhatsAppNotifier, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentError) as caught:
        whatsapp.send(make_message("whatsapp", addresses=["+15005550001"]))
    assert caught.value.code == "twilio:21211"
    assert caught.value.address_invalid


def test_server_error_is_retryable_and_the_next_attempt_succeeds(
    sms: SmsNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("twilio", 500, count=1)
    with pytest.raises(RetryableError) as caught:
        sms.send(make_message("sms"))
    assert caught.value.code == "twilio:20500"
    assert sms.send(make_message("sms")).provider_message_id
    assert [r["status"] for r in sandbox.messages("twilio")] == [500, 201]


def test_rate_limit_is_retryable_with_the_providers_retry_after(
    sms: SmsNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("twilio", 429, count=1, retry_after=7)
    with pytest.raises(RetryableError) as caught:
        sms.send(make_message("sms"))
    assert caught.value.code == "twilio:20429"
    assert caught.value.retry_after == 7


def test_other_client_errors_are_permanent(
    sms: SmsNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    sandbox.fail("twilio", 401, code=20003, count=1)
    with pytest.raises(PermanentError) as caught:
        sms.send(make_message("sms"))
    assert caught.value.code == "twilio:20003"
    assert not caught.value.address_invalid


def test_connection_refused_is_retryable(
    provider_settings: Settings, refused_url: str, make_message: MakeMessage
) -> None:
    sms = SmsNotifier(
        twilio_for(provider_settings, base_url=refused_url),
        from_number="+15005550006",
        messaging_service_sid=None,
    )
    with pytest.raises(RetryableError) as caught:
        sms.send(make_message("sms"))
    assert caught.value.code == "twilio:connection"


def test_timeout_is_retryable(
    sandbox: Sandbox, provider_settings: Settings, make_message: MakeMessage
) -> None:
    sandbox.fail("twilio", latency_ms=LATENCY_MS, count=1)
    sms = SmsNotifier(
        twilio_for(provider_settings, timeout=SHORT_TIMEOUT),
        from_number="+15005550006",
        messaging_service_sid=None,
    )
    with pytest.raises(RetryableError) as caught:
        sms.send(make_message("sms"))
    assert caught.value.code == "twilio:timeout"
    assert len(sandbox.messages("twilio")) == 1


def test_sms_without_text_is_permanent(sms: SmsNotifier, make_message: MakeMessage) -> None:
    with pytest.raises(PermanentError):
        sms.send(make_message("sms", content={"text": ""}))


def test_concurrent_sends_keep_each_responses_retry_after(
    sms: SmsNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    """Workers share one client across a thread pool; Retry-After is read per thread."""
    sandbox.fail("twilio", 429, count=1, retry_after=9)
    messages = [make_message("sms", recipient_id=f"u-{i}") for i in range(8)]

    def send(message: NotificationMessage) -> DeliveryResult | RetryableError:
        try:
            return sms.send(message)
        except RetryableError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(send, messages))
    errors = [o for o in outcomes if isinstance(o, RetryableError)]
    assert [e.retry_after for e in errors] == [9]
    sids = {o.provider_message_id for o in outcomes if isinstance(o, DeliveryResult)}
    assert len(sids) == 7
    assert sids == {r["message_id"] for r in sandbox.messages("twilio") if r["status"] == 201}


def test_proxy_settings_come_from_the_environment_once_per_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """requests would scan the environment on every send; the proxies it finds there
    (NO_PROXY included) are the same when read once per host."""
    from notifiers.twilio_client import _EnvironmentOnceSession

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "sms.internal")
    session = _EnvironmentOnceSession()

    def proxies(url: str) -> dict[str, str]:
        return dict(session.merge_environment_settings(url, {}, None, None, None)["proxies"])

    assert proxies("https://api.twilio.com/2010-04-01/x").get("https") == (
        "http://proxy.internal:3128"
    )
    assert "https" not in proxies("https://sms.internal/2010-04-01/x")
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere:1")
    assert proxies("https://api.twilio.com/other").get("https") == "http://proxy.internal:3128"
    explicit = session.merge_environment_settings(
        "https://api.twilio.com/x", {"https": "http://given:2"}, None, None, None
    )
    assert explicit["proxies"]["https"] == "http://given:2"

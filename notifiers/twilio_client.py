"""The Twilio Messaging client shared by the SMS and WhatsApp notifiers.

Both channels are the same API call (`POST /2010-04-01/Accounts/{sid}/Messages.json`) with
different address schemes, so the client, its base URL override, the notification-id
carrier and the error translation live here once.

Base URL override: the official SDK builds every URL from its `api` domain's `base_url`
(`https://api.twilio.com`); setting `client.api.base_url` sends the real SDK code path to
the local sandbox or any Twilio-compatible endpoint.

Notification id: Twilio messages have no free-form metadata field, so the id travels in the
`StatusCallback` URL as `?notification_id=...` (when a callback URL is configured). Twilio
posts delivery receipts to that URL, which then map back without a lookup by message SID,
and the sandbox reads the id from the same parameter.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from core.catalogue.models import DeliveryResult
from core.platform import tracing
from core.platform.errors import DeliveryError, PermanentError, RetryableError
from notifiers.base import header, retry_after_seconds, status_error

PROVIDER = "twilio"

#: Twilio error codes that mean the destination itself can never receive messages: the
#: worker may disable the address. (21211 invalid 'To', 21217 / 21401 not a valid phone
#: number, 21614 not a mobile number, 63003 WhatsApp: invalid channel address.)
DEAD_ADDRESS_CODES = frozenset({21211, 21217, 21401, 21614, 63003})

#: Codes that are permanent for this message but say nothing against the number: 21610 the
#: recipient replied STOP (an opt-out to record, not a dead number), 21408 the account has no
#: permission for that region, 21612 no route from this sender.
PERMANENT_CODES = frozenset({21408, 21610, 21612})


class _EnvironmentOnceSession(requests.Session):
    """A session that reads the environment's proxy and CA settings once per host.

    The SDK asks requests to merge them into every send, and requests reads them from the
    environment each time: every variable, twice, for `*_proxy` and `no_proxy`, which was
    about a fifth of an SMS worker's CPU. They do not change under a running process.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str], dict[str, Any]] = {}
        self._environment_lock = threading.Lock()

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies or stream is not None or verify is not None or cert is not None:
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        parts = urlsplit(str(url))
        host = (parts.scheme, parts.netloc)
        with self._environment_lock:
            known = self._environment.get(host)
        if known is None:
            known = dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
            with self._environment_lock:
                self._environment[host] = known
        return {**known, "proxies": dict(known.get("proxies") or {})}


class _HttpClient(TwilioHttpClient):
    """The SDK's HTTP client, remembering each thread's last response.

    `TwilioRestException` carries the status and Twilio's error code but not the response
    headers, so a 429's Retry-After would be lost; workers send from a thread pool, hence
    thread-local storage.

    The SDK sends through one `requests.Session`, which keeps connections open between
    sends and across threads; but it keeps at most `cpu_count + 4` idle ones for https (6
    on two cores) and requests' 10 for http, fewer than the threads sending at once, so
    the surplus was closed and opened again. Both schemes keep `connections`.
    """

    def __init__(self, timeout: float, connections: int) -> None:
        super().__init__(timeout=timeout)
        self.session = _EnvironmentOnceSession()
        self._local = threading.local()
        for scheme in ("https://", "http://"):
            self.session.mount(scheme, HTTPAdapter(pool_maxsize=connections))

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self._local.response = None
        kwargs["headers"] = tracing.inject(dict(kwargs.get("headers") or {}))
        response = super().request(*args, **kwargs)
        self._local.response = response
        return response

    def last_headers(self) -> Any:
        response = getattr(self._local, "response", None)
        return response.headers if response is not None else None


class TwilioMessaging:
    """Sends one message through Twilio's Messages API with the official SDK."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        timeout: float,
        connections: int = 10,
        base_url: str | None = None,
        status_callback_url: str | None = None,
    ) -> None:
        self._http = _HttpClient(timeout=timeout, connections=connections)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        if base_url:
            self._client.api.base_url = base_url.rstrip("/")
        self._status_callback_url = status_callback_url

    @property
    def base_url(self) -> str:
        return str(self._client.api.base_url)

    def status_callback(self, notification_id: str) -> str | None:
        if not self._status_callback_url:
            return None
        sep = "&" if "?" in self._status_callback_url else "?"
        return f"{self._status_callback_url}{sep}notification_id={quote(notification_id, safe='')}"

    def send(
        self,
        *,
        to: str,
        body: str,
        notification_id: str,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
    ) -> DeliveryResult:
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if messaging_service_sid:
            kwargs["messaging_service_sid"] = messaging_service_sid
        if from_:
            kwargs["from_"] = from_
        callback = self.status_callback(notification_id)
        if callback:
            kwargs["status_callback"] = callback
        try:
            message = self._client.messages.create(**kwargs)
        except Exception as exc:
            raise self._translate(exc) from exc
        return DeliveryResult(provider=PROVIDER, provider_message_id=message.sid)

    def _translate(self, exc: Exception) -> DeliveryError:
        """The one place Twilio SDK and transport exceptions become delivery errors."""
        if isinstance(exc, TwilioRestException | TwilioServiceException):
            status = int(exc.status)
            twilio_code = exc.code
            reason = _reason(exc)
            if twilio_code in DEAD_ADDRESS_CODES:
                return PermanentError(reason, code=f"twilio:{twilio_code}", address_invalid=True)
            if twilio_code in PERMANENT_CODES:
                return PermanentError(reason, code=f"twilio:{twilio_code}")
            code = f"twilio:{twilio_code}" if twilio_code and twilio_code != status else None
            retry_after = retry_after_seconds(header(self._http.last_headers(), "Retry-After"))
            return status_error(
                status, reason, code=code or f"http:{status}", retry_after=retry_after
            )
        if isinstance(exc, requests.Timeout):
            return RetryableError(f"twilio timed out: {exc}", code="twilio:timeout")
        if isinstance(exc, requests.RequestException):
            return RetryableError(f"twilio unreachable: {exc}", code="twilio:connection")
        if isinstance(exc, ValueError):
            # A 2xx whose body is not JSON: a provider fault, not ours; try again.
            return RetryableError(f"twilio answered unreadably: {exc}", code="twilio:response")
        if isinstance(exc, TwilioException):
            return PermanentError(f"twilio client error: {exc}", code="twilio:client")
        return PermanentError(f"twilio: unexpected {type(exc).__name__}: {exc}", code="twilio")


def _reason(exc: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(exc, TwilioServiceException):
        return str(exc.detail or exc.title)
    return str(exc.msg)

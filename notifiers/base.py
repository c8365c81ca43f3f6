"""The protocol every channel implements, and the HTTP status vocabulary they share.

A notifier turns one `NotificationMessage` into one provider call and answers with a
`DeliveryResult` or raises `RetryableError` / `PermanentError`, nothing else: the worker's
retry policy must not depend on any provider SDK's exception types.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform.errors import DeliveryError, PermanentError, RetryableError

#: Header carrying the notification id on provider calls that have no field for it
#: (chat webhooks), so deliveries seen by a provider or the sandbox map back.
NOTIFICATION_ID_HEADER = "X-Herald-Notification-Id"


@runtime_checkable
class Notifier(Protocol):
    """Sends one notification on one channel. Synchronous: workers call it from a pool."""

    channel: str

    def send(self, notification: NotificationMessage) -> DeliveryResult: ...


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def header(headers: Mapping[str, Any] | Any, name: str) -> str | None:
    """Case-insensitive header lookup over dicts, `requests`/`httpx` headers and HTTPMessage."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
        if value is not None:
            return str(value)
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    return None


def status_error(
    status: int, reason: str, *, code: str, retry_after: float | None = None
) -> DeliveryError:
    """The default meaning of an HTTP error status: 408, 429 and 5xx are worth another try
    (with the provider's Retry-After when given); any other 4xx will fail the same way again."""
    if status in (408, 429) or status >= 500:
        return RetryableError(reason, code=code, retry_after=retry_after)
    return PermanentError(reason, code=code)

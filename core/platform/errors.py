"""Delivery errors: the one vocabulary notifiers speak to workers.

    DeliveryError
    ├── RetryableError   timeouts, connection errors, 429 (with Retry-After), 5xx
    └── PermanentError   invalid number or address, unsubscribed endpoint, other 4xx

Each notifier translates its provider SDK's exceptions into these, in one place, so the
worker's retry policy never looks at a provider's own exception types.

A reason is masked when the error is made: providers quote the recipient ("The 'To' number
+1415... is not a valid phone number"), and the reason goes on to logs, the notification's
`last_error` (shown by the API) and the dead-letter queue.
"""

from __future__ import annotations

from core.platform.masking import mask_text


class DeliveryError(Exception):
    def __init__(self, reason: str, *, code: str | None = None) -> None:
        reason = mask_text(reason)
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}" if self.code else self.reason


class RetryableError(DeliveryError):
    """Try again later; `retry_after` (seconds) is the provider's own hint, if it gave one."""

    def __init__(
        self, reason: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, code=code)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Retrying cannot help; `address_invalid` says the address itself is dead (disable it)."""

    def __init__(
        self, reason: str, *, code: str | None = None, address_invalid: bool = False
    ) -> None:
        super().__init__(reason, code=code)
        self.address_invalid = address_invalid

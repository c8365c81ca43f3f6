"""Email through SendGrid's v3 mail send, with the official SDK over a keep-alive pool.

The notification id goes out as the custom arg `notification_id`: SendGrid echoes custom
args on every event webhook (delivered, bounce, spam report), so receipts map back to the
notification without storing SendGrid's message id first.

Attachments (a report's CSV and PDF, rendered by the worker just before the send) go out
through the SDK's `Attachment` helper: base64 content, MIME type, file name, disposition.

The SDK builds the request and its errors; `notifiers.pooled_http` carries it over
connections kept open between sends (the SDK alone opens one per email).
"""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    Mail,
    ReplyTo,
)

from core.catalogue.models import Attachment as FileAttachment
from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform.errors import DeliveryError, PermanentError, RetryableError
from notifiers.base import header, retry_after_seconds, status_error
from notifiers.pooled_http import PooledClient, pool_for

PROVIDER = "sendgrid"
DEFAULT_HOST = "https://api.sendgrid.com"
#: Validation errors on these fields mean the recipient's address is unusable.
RECIPIENT_FIELD = re.compile(r"^personalizations\.\d+\.to\.\d+\.email$")
#: SendGrid takes at most 30 MB per message, attachments included (as base64).
ATTACHMENTS_MAX_BYTES = 20 * 1024 * 1024


class EmailNotifier:
    """Sends one email to the first address: subject, text and HTML from the content."""

    channel = "email"

    def __init__(
        self,
        *,
        api_key: str,
        from_email: str,
        timeout: float,
        reply_to: str | None = None,
        host: str | None = None,
        connections: int = 10,
    ) -> None:
        self._client = SendGridAPIClient(api_key, host=(host or DEFAULT_HOST).rstrip("/"))
        sdk_http = self._client.client
        # Client attributes are copied to every request builder, so `timeout` is each call's
        # (SendGridAPIClient.send has no timeout argument).
        self._client.client = PooledClient(
            sdk_http.host,
            pool=pool_for(sdk_http.host, connections),
            request_headers=sdk_http.request_headers,
            version=3,
            timeout=timeout,
        )
        self._from = from_email
        self._reply_to = reply_to

    @property
    def host(self) -> str:
        return str(self._client.host)

    def build(self, notification: NotificationMessage) -> Mail:
        content = notification.content
        subject = content.get("subject", "")
        text = content.get("text", "")
        html = content.get("html", "")
        if not subject or not (text or html):
            raise PermanentError("email content needs a subject and a text or html body")
        mail = Mail(
            from_email=self._from,
            to_emails=notification.addresses[0],
            subject=subject,
            plain_text_content=text or None,
            html_content=html or None,
        )
        if self._reply_to:
            mail.reply_to = ReplyTo(self._reply_to)
        mail.custom_arg = CustomArg("notification_id", notification.notification_id)
        mail.custom_arg = CustomArg("event_id", notification.event_id)
        if sum(len(a.content) for a in notification.attachments) > ATTACHMENTS_MAX_BYTES:
            raise PermanentError(f"attachments over {ATTACHMENTS_MAX_BYTES} bytes (base64)")
        for file in reversed(notification.attachments):  # the SDK puts each one first
            mail.attachment = sendgrid_attachment(file)
        return mail

    def send(self, notification: NotificationMessage) -> DeliveryResult:
        mail = self.build(notification)
        try:
            response = self._client.send(mail)
        except Exception as exc:
            raise _translate(exc) from exc
        message_id = header(response.headers, "X-Message-Id")
        return DeliveryResult(provider=PROVIDER, provider_message_id=message_id)


def sendgrid_attachment(file: FileAttachment) -> Attachment:
    return Attachment(
        FileContent(file.content),
        FileName(file.filename),
        FileType(file.type),
        Disposition(file.disposition),
    )


def _translate(exc: Exception) -> DeliveryError:
    """The one place SendGrid SDK and transport exceptions become delivery errors."""
    if isinstance(exc, HTTPError):
        status = int(exc.status_code)
        errors = _errors(exc.body)
        reason = f"sendgrid {status}: " + (
            "; ".join(f"{f}: {m}" if f else m for f, m in errors) or str(exc.reason)
        )
        if status == 400 and any(f and RECIPIENT_FIELD.match(f) for f, _ in errors):
            # The recipient address itself was refused, not our request.
            return PermanentError(reason, code="sendgrid:400", address_invalid=True)
        retry_after = retry_after_seconds(header(exc.headers, "Retry-After"))
        return status_error(status, reason, code=f"sendgrid:{status}", retry_after=retry_after)
    if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
        return RetryableError(f"sendgrid timed out: {exc}", code="sendgrid:timeout")
    if isinstance(exc, OSError | http.client.HTTPException):
        # Refused, DNS, resets and truncated responses (`notifiers.pooled_http`).
        return RetryableError(f"sendgrid unreachable: {exc}", code="sendgrid:connection")
    return PermanentError(f"sendgrid: unexpected {type(exc).__name__}: {exc}", code="sendgrid")


def _errors(body: Any) -> list[tuple[str | None, str]]:
    """SendGrid's `{"errors": [{"message", "field"}]}` as (field, message) pairs."""
    try:
        data = json.loads(body.decode() if isinstance(body, bytes) else body)
        return [(e.get("field"), str(e.get("message"))) for e in data.get("errors", [])]
    except (ValueError, AttributeError, TypeError):
        return []

"""Chat alerts through Slack and Microsoft Teams incoming webhooks, with httpx.

The address is the webhook URL itself (it is the credential). Webhooks have no metadata
field, so the notification id travels in the `X-Herald-Notification-Id` header, which both
products ignore and the sandbox records.

The URL is user input, so before every send it must pass `core.security.chat_hosts` (https, a host
on `HERALD_CHAT_WEBHOOK_HOSTS`), and it is posted through a transport that connects to
public addresses only (`notifiers.public_http`), following no redirect. What a webhook
answers is never stored as it came: a refusal is recorded as its status plus, for Slack,
one of its documented error codes, so a provider's (or anybody's) page cannot be read back
through a notification's history.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform import tracing
from core.platform.errors import DeliveryError, PermanentError, RetryableError
from core.security.chat_hosts import DEFAULT_CHAT_WEBHOOK_HOSTS, parse_hosts, webhook_url_problem
from notifiers.base import NOTIFICATION_ID_HEADER, retry_after_seconds, status_error
from notifiers.public_http import BlockedAddressError, public_only_client

FORMATS = ("slack", "teams")

#: One colour per severity, shared by both products (Slack attachment `color`, Teams
#: `themeColor`), so an on-call reader learns one code.
SEVERITY_COLOURS = {
    "critical": "D32F2F",
    "high": "F57C00",
    "normal": "1976D2",
    "low": "9E9E9E",
}

#: Statuses that mean the webhook itself is gone (removed, channel archived): disable it.
GONE_STATUSES = frozenset({404, 410})

# Legacy Teams connectors answer 200 with this text when Teams itself refused the card.
_TEAMS_ERROR = re.compile(r"HTTP error (\d{3})")

#: Slack's documented incoming-webhook error answers: the only body text ever recorded.
SLACK_ERROR_CODES = frozenset(
    {
        "invalid_payload",
        "invalid_token",
        "no_text",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "user_not_found",
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "too_many_attachments",
        "rollup_error",
    }
)


def escape_markup(text: str) -> str:
    """Neutralise Slack's control sequences (`<!channel>`, `<@U123>`, `<https://x|link>`)
    and Teams' HTML: event data is client input, and a message must not ping a whole
    channel or carry a disguised link because an event said so. Slack documents exactly
    these three escapes; Teams renders the entities as the characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(title: str, text: str, severity: str) -> dict[str, Any]:
    """`text` is the notification fallback; the attachment carries the colour bar. Title
    and text are escaped here, so nothing rendered from event data is markup."""
    title, text, severity = escape_markup(title), escape_markup(text), escape_markup(severity)
    colour = SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS["normal"])
    return {
        "text": f"[{severity.upper()}] {title}",
        "attachments": [
            {
                "color": f"#{colour}",
                "fallback": f"[{severity.upper()}] {title}: {text}",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{text}"}},
                    {
                        "type": "context",
                        "elements": [{"type": "mrkdwn", "text": f"severity: *{severity}*"}],
                    },
                ],
            }
        ],
    }


def teams_payload(title: str, text: str, severity: str) -> dict[str, Any]:
    """An Office 365 connector MessageCard: the format with a `themeColor` stripe; title
    and text escaped like Slack's."""
    title, text, severity = escape_markup(title), escape_markup(text), escape_markup(severity)
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS["normal"]),
        "summary": title,
        "title": title,
        "text": text,
        "sections": [{"facts": [{"name": "Severity", "value": severity}]}],
    }


def chat_format(notification: NotificationMessage) -> str:
    fmt = notification.content.get("format", "").lower()
    if not fmt:
        host = urlsplit(notification.addresses[0]).netloc
        fmt = "slack" if "slack" in host else "teams" if "office" in host else ""
    if fmt not in FORMATS:
        raise PermanentError(f"unknown chat format {fmt!r}", code="chat:format")
    return fmt


class ChatNotifier:
    """Posts one message to the webhook in `addresses[0]`, in the format the content names.

    The webhook URL must pass the host allow-list (`allowed_hosts`). `redirect_base_url`
    (the sandbox or an egress proxy: operator configuration, trusted) replaces its origin: a
    Slack URL `https://hooks.slack.com/services/T/B/X` is posted to
    `{redirect_base_url}/slack/hooks.slack.com/services/T/B/X` with an ordinary client.
    Without it the URL itself is posted, through the public-addresses-only transport.
    """

    channel = "chat"

    def __init__(
        self,
        *,
        timeout: float,
        redirect_base_url: str | None = None,
        allowed_hosts: tuple[str, ...] = parse_hosts(DEFAULT_CHAT_WEBHOOK_HOSTS),
        client: httpx.Client | None = None,
    ) -> None:
        self._redirect = redirect_base_url.rstrip("/") if redirect_base_url else None
        self._hosts = allowed_hosts
        if client is not None:
            self._client = client
        elif self._redirect:
            self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        else:
            self._client = public_only_client(timeout)

    def target_url(self, url: str, fmt: str) -> str:
        """Where to post `url`'s message; a URL the rules refuse is a permanent error that
        disables the address."""
        problem = webhook_url_problem(url, self._hosts)
        if problem is not None:
            raise PermanentError(
                f"{fmt} webhook URL {problem}", code=f"{fmt}:url", address_invalid=True
            )
        if not self._redirect:
            return url
        parts = urlsplit(url)
        return f"{self._redirect}/{fmt}/{parts.hostname}{parts.path}"

    def send(self, notification: NotificationMessage) -> DeliveryResult:
        fmt = chat_format(notification)
        content = notification.content
        title = content.get("title", "")
        text = content.get("text", "")
        severity = content.get("severity", "normal").lower()
        build = slack_payload if fmt == "slack" else teams_payload
        url = self.target_url(notification.addresses[0], fmt)
        try:
            response = self._client.post(
                url,
                json=build(title, text, severity),
                headers=tracing.inject({NOTIFICATION_ID_HEADER: notification.notification_id}),
            )
        except Exception as exc:
            raise _translate(exc, fmt) from exc
        _check(response, fmt)
        return DeliveryResult(provider=fmt)

    def close(self) -> None:
        self._client.close()


def _check(response: httpx.Response, fmt: str) -> None:
    """Raise for a refused post (a redirect included: it is not followed); webhooks return
    no message id, so nothing to return. The reason names the status and at most a known
    error code, never the body."""
    status = response.status_code
    body = response.text.strip()[:200]
    if 200 <= status < 300:
        match = _TEAMS_ERROR.search(body) if fmt == "teams" else None
        if match is None:
            return
        status = int(match.group(1))
    reason = f"{fmt} webhook {status}"
    if fmt == "slack" and body in SLACK_ERROR_CODES:
        reason += f": {body}"
    if status in GONE_STATUSES:
        raise PermanentError(reason, code=f"{fmt}:{status}", address_invalid=True)
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    raise status_error(status, reason, code=f"{fmt}:{status}", retry_after=retry_after)


def _translate(exc: Exception, fmt: str) -> DeliveryError:
    """The one place httpx exceptions become delivery errors."""
    if isinstance(exc, BlockedAddressError):
        return PermanentError(
            f"{fmt} webhook refused: {exc}", code=f"{fmt}:blocked", address_invalid=True
        )
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"{fmt} webhook timed out", code=f"{fmt}:timeout")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentError(
            f"bad {fmt} webhook URL: {exc}", code=f"{fmt}:url", address_invalid=True
        )
    if isinstance(exc, httpx.RequestError):
        return RetryableError(f"{fmt} webhook unreachable", code=f"{fmt}:connection")
    return PermanentError(f"{fmt}: unexpected {type(exc).__name__}: {exc}", code=fmt)

"""Inline recipients: an event addressed to on-call lists (`"to": {"email": [...], ...}`)
instead of a user profile or a topic.

Each address becomes a throwaway profile holding only that contact, so the router plans,
renders, masks and records it like any user's notification: the same validators as
`PUT /users` (E.164 numbers, email syntax, chat webhooks through `ChatWebhook`, whatever
safety that model enforces), the same masking in records and logs. The recipient id is a
hash of the address, so the notification id is stable across redeliveries and never shows
the address itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from core.catalogue.models import iso, utcnow
from core.directory.profiles import E164, ChatWebhook, UserProfile
from core.security.chat_hosts import webhook_url_problem

MAX_PER_CHANNEL = 50


def chat_format(url: str) -> str:
    """Slack or Teams, told by the webhook's host; Slack's message shape is the default."""
    host = url.split("://", 1)[-1].split("/", 1)[0].lower()
    if "office.com" in host or "logic.azure.com" in host:
        return "teams"
    return "slack"


class InlineRecipients(BaseModel):
    """Addresses per channel; at least one address in all."""

    model_config = ConfigDict(extra="forbid")

    email: list[EmailStr] = Field(default_factory=list, max_length=MAX_PER_CHANNEL)
    sms: list[E164] = Field(default_factory=list, max_length=MAX_PER_CHANNEL)
    whatsapp: list[E164] = Field(default_factory=list, max_length=MAX_PER_CHANNEL)
    chat: list[str] = Field(
        default_factory=list,
        max_length=MAX_PER_CHANNEL,
        description="Slack or Teams incoming webhook URLs.",
    )

    @field_validator("chat")
    @classmethod
    def safe_webhooks(cls, urls: list[str]) -> list[str]:
        # Validated as a user's chat webhook would be, so both paths share one rule.
        return [ChatWebhook(format=chat_format(u), url=u).url for u in urls]  # type: ignore[arg-type]

    def plain(self) -> dict[str, list[str]]:
        """The non-empty channels, as the event carries them."""
        return {k: [str(a) for a in v] for k, v in self.model_dump().items() if v}

    def is_empty(self) -> bool:
        return not self.plain()


def chat_url_problem(to: InlineRecipients, patterns: tuple[str, ...]) -> str | None:
    """The first inline chat URL the deployment's webhook rules refuse (allow-listed https
    hosts, `core.security.chat_hosts`), as `to.chat.<n>: why`; checked where users' are."""
    for index, url in enumerate(to.chat):
        problem = webhook_url_problem(url, patterns)
        if problem is not None:
            return f"to.chat.{index}: {problem}"
    return None


def recipient_id(channel: str, address: str) -> str:
    digest = hashlib.sha256(f"{channel}\0{address}".encode()).hexdigest()[:20]
    return f"to-{digest}"


def inline_profiles(to: dict[str, list[str]]) -> list[tuple[UserProfile, tuple[str]]]:
    """One single-channel profile per address, in the order given, repeats dropped: the
    router plans them as recipients with those channels."""
    now = iso(utcnow())
    recipients: list[tuple[UserProfile, tuple[str]]] = []
    seen: set[str] = set()
    for channel, addresses in to.items():
        for address in addresses:
            rid = recipient_id(channel, address)
            if rid in seen:
                continue
            seen.add(rid)
            contact: dict[str, Any] = {}
            if channel == "chat":
                contact["chat"] = {"format": chat_format(address), "url": address}
            elif channel in ("email", "sms", "whatsapp"):
                contact[{"sms": "phone"}.get(channel, channel)] = address
            else:
                continue
            profile = UserProfile(user_id=rid, created_at=now, updated_at=now, **contact)
            recipients.append((profile, (channel,)))
    return recipients

"""Masking of personal data (phone numbers, emails, tokens) for logs and API responses."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Herald stores phones in E.164 only, so that is the form to find in text.
_PHONE = re.compile(r"(?<![\w+])\+\d{5,13}(\d{2})(?!\d)")


def mask_address(address: str) -> str:
    """A recognisable but not reusable form: `+*******0123`, `a***@example.com`."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    prefix = "whatsapp:" if address.startswith("whatsapp:") else ""
    bare = address.removeprefix("whatsapp:")
    if len(bare) <= 4:
        return prefix + "*" * len(bare)
    return prefix + bare[:1] + "*" * (len(bare) - 5) + bare[-4:]


def mask_text(text: str) -> str:
    """Mask every email and phone-like number inside free text (log lines, errors)."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: "+***" + m.group(1), text)

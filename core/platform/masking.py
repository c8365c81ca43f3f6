"""Masking of personal data and address credentials for logs, errors and API responses.

What is masked, wherever it appears:
- emails: `a***@example.com`
- phone numbers in E.164 (also `whatsapp:+...`): `+*******0123` as an address, `+***23`
  inside free text
- SNS push endpoint ARNs (each names one device): the endpoint id, `.../GCM/app/****2d3e`
- Slack and Teams incoming webhook URLs (the URL is the credential): the path, `/***`
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Herald stores phones in E.164 only, so that is the form to find in text.
_PHONE = re.compile(r"(?<![\w+])\+\d{5,13}(\d{2})(?!\d)")
# arn:<partition>:sns:<region>:<account>:endpoint/<platform>/<application>/<endpoint id>
_PUSH_ENDPOINT = re.compile(
    r"(arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:endpoint/[\w.-]+/[\w.-]+/)([\w-]+)"
)
# Incoming webhooks: the host stays (it says which product), the secret path goes. Also
# matches the host inside a redirected URL (`.../slack/hooks.slack.com/services/...`).
_WEBHOOK = re.compile(
    r"((?:hooks\.slack\.com|[\w-]+\.webhook\.office\.com|webhook\.office\.com"
    r"|[\w-]+\.logic\.azure\.com(?::\d+)?))/[^\s\"'<>]+",
    re.IGNORECASE,
)


def _endpoint_id(endpoint_id: str) -> str:
    return "****" + endpoint_id[-4:] if len(endpoint_id) > 4 else "****"


def mask_address(address: str) -> str:
    """A recognisable but not reusable form: `+*******0123`, `a***@example.com`, a push
    endpoint with its id masked, a webhook URL without its path."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    endpoint = _PUSH_ENDPOINT.fullmatch(address)
    if endpoint:
        return endpoint.group(1) + _endpoint_id(endpoint.group(2))
    if "://" in address:
        scheme, _, rest = address.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/***"
    prefix = "whatsapp:" if address.startswith("whatsapp:") else ""
    bare = address.removeprefix("whatsapp:")
    if len(bare) <= 4:
        return prefix + "*" * len(bare)
    return prefix + bare[:1] + "*" * (len(bare) - 5) + bare[-4:]


def mask_text(text: str) -> str:
    """Mask every email, phone-like number, push endpoint and webhook URL in free text
    (log lines, error messages)."""
    text = _WEBHOOK.sub(lambda m: f"{m.group(1)}/***", text)
    text = _PUSH_ENDPOINT.sub(lambda m: m.group(1) + _endpoint_id(m.group(2)), text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: "+***" + m.group(1), text)

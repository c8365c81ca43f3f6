"""The limits on inline recipients (`"to": {...}` on POST /events): one field group of
`Settings`. Each API key may narrow them (`herald keys create --inline-prefixes`,
`--inline-daily-quota`); see core/security/inline_recipients.py."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

# `+` and the country code, optionally some digits more (`+1415`): a number's first digits.
_PREFIX = re.compile(r"^\+[1-9][0-9]{0,14}$")
MAX_PREFIXES = 100


def parse_prefixes(value: str) -> tuple[str, ...]:
    """`+1, +44` as ("+1", "+44"); empty for any number. Raises ValueError naming an entry
    that is not an E.164 prefix, or a list too long to check quickly."""
    prefixes = tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    bad = [p for p in prefixes if not _PREFIX.match(p)]
    if bad:
        raise ValueError(f"not an E.164 prefix such as +44: {bad[0][:20]!r}")
    if len(prefixes) > MAX_PREFIXES:
        raise ValueError(f"at most {MAX_PREFIXES} prefixes, got {len(prefixes)}")
    return prefixes


class InlineRecipientSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    inline_sms_prefixes: str = Field(
        default="",
        description="Comma-separated E.164 prefixes (`+1,+44`) that inline SMS and WhatsApp "
        "numbers must start with, for every key; empty: any number. A key's own prefixes "
        "narrow these further.",
    )
    inline_daily_quota: int = Field(
        default=1000,
        ge=0,
        description="Inline recipients one API key may address per UTC day (counted in "
        "DynamoDB, a repeat of the same event counted once); over it, a 429. A key may have "
        "its own. 0: no quota.",
    )

    @field_validator("inline_sms_prefixes")
    @classmethod
    def _prefixes_are_e164(cls, value: str) -> str:
        parse_prefixes(value)  # a ValueError names the bad entry
        return value

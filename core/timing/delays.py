"""When a client asks an event to be sent: `send_at` (an RFC 3339 time with an offset) or
`delay` ("90s", "2h", "3d", "1h30m"), at most `MAX_AHEAD` ahead. Bounded before parsing
(length, digits), so no input costs more than a short regex; errors name what is wrong and
are raised as ValueError for the API to answer 422 with the field."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

MAX_AHEAD = timedelta(days=365)
MAX_TEXT = 64
_DELAY = re.compile(r"^(?:\d{1,9}[smhd]){1,4}$")
_PART = re.compile(r"(\d{1,9})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# RFC 3339: date, T (or space), time, optional fraction, and an offset (Z or ±HH:MM).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$"
)


def parse_delay(text: str) -> timedelta:
    """A delay such as 90s, 2h, 3d or 1h30m; at least a second, at most MAX_AHEAD."""
    value = text.strip().lower()
    if len(value) > MAX_TEXT or not _DELAY.match(value):
        raise ValueError(f"{text[:MAX_TEXT]!r} is not a delay such as 90s, 2h, 3d or 1h30m")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    if seconds < 1:
        raise ValueError("must be at least 1s")
    if seconds > MAX_AHEAD.total_seconds():
        raise ValueError(f"{text!r} is more than {MAX_AHEAD.days} days ahead")
    return timedelta(seconds=seconds)


def parse_send_at(text: str) -> datetime:
    """An RFC 3339 time with its offset (Z or ±HH:MM); a time without one is refused,
    since it would mean a different instant on every server."""
    value = text.strip()
    match = _RFC3339.match(value) if len(value) <= MAX_TEXT else None
    if match is None:
        raise ValueError(
            f"{text[:MAX_TEXT]!r} is not an RFC 3339 time such as 2026-12-24T09:00:00+01:00"
        )
    if match.group(2) is None:
        raise ValueError(
            "has no UTC offset: give one (Z or +HH:MM), e.g. 2026-12-24T09:00:00+01:00"
        )
    fraction = match.group(1) or ""
    if len(fraction) > 7:  # Python reads at most microseconds
        value = value.replace(fraction, fraction[:7], 1)
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid time: {exc}") from exc


def due_time(send_at: str | None, delay: str | None, now: datetime) -> datetime | None:
    """When an event asked to wait is due, or None when it did not ask; ValueError (the
    message starts with the field's name) for a bad, past-the-limit or doubled request."""
    if send_at is not None and delay is not None:
        raise ValueError("send_at: give either send_at or delay, not both")
    if delay is not None:
        try:
            return now + parse_delay(delay)
        except ValueError as exc:
            raise ValueError(f"delay: {exc}") from exc
    if send_at is None:
        return None
    try:
        at = parse_send_at(send_at)
    except ValueError as exc:
        raise ValueError(f"send_at: {exc}") from exc
    if at - now > MAX_AHEAD:
        raise ValueError(f"send_at: more than {MAX_AHEAD.days} days ahead")
    return at

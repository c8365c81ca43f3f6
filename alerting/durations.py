"""Durations as alerting users write them: `30s`, `5m`, `1h30m`, `2d`.

The Prometheus/Grafana notation, so rules read the same as in those tools.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SECONDS = 366 * 86400  # longer intervals are mistakes, and overflow date arithmetic


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError naming the expected form."""
    value = text.strip().lower()
    if not value or _PART.sub("", value) != "":
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m, 1h30m or 2d")
    if len(value) > 32:
        raise ValueError(f"{text[:40]!r} is too long for a duration")
    seconds = float(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value)))
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than a year")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form of a whole number of seconds, for messages and the API."""
    remaining = int(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)

"""Wall-clock times in a user's IANA time zone as instants, DST included.

A quiet-hours window ends, and a `send_at_local` time comes, at a wall-clock time on the
user's clock. Twice a year that time may not exist (spring forward: 02:30 in New York on
2026-03-08) or exist twice (fall back: 01:30 on 2026-11-01). The rule is one for both: the
first instant at or after the wall-clock time. In a gap that is the end of the gap (the
clocks jump from 02:00 to 03:00, so 02:30 resolves to 03:00 EDT); in an overlap it is the
first of the two (01:30 EDT), the first moment the clock shows it. Pure functions, "now"
passed in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def clock_time(hhmm: str) -> time:
    """`HH:MM` (already validated) as a time of day."""
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def resolve(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant (UTC) the clock in `zone` first reads `at` on `day`, or, when that
    wall-clock time falls in a gap, the instant the gap ends."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists, once or twice: fold=0 is the first of the two readings
    # In a gap, fold=0 reads the wall time with the offset before the jump and fold=1 with
    # the one after; the jump lies between the two instants. Offsets change on whole
    # minutes, so the first minute there with the later offset is the jump itself.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((first, other))
    later = wall.replace(tzinfo=zone, fold=1).utcoffset()
    low = low.replace(second=0, microsecond=0)
    steps = int((high - low).total_seconds() // 60) + 1
    for minute in range(steps):  # a gap is at most a few hours: bounded
        instant = low + timedelta(minutes=minute)
        if instant.astimezone(zone).utcoffset() == later:
            return instant
    return high  # pragma: no cover - every gap ends between the two readings


def next_local(hhmm: str, zone_name: str, after: datetime) -> datetime:
    """The first instant strictly after `after` at which the clock in the zone reads
    `hhmm` (by `resolve`'s rule)."""
    zone = ZoneInfo(zone_name)
    at = clock_time(hhmm)
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(4):  # yesterday's may still lie ahead across an offset change
        candidate = resolve(day, at, zone)
        if candidate > after:
            return candidate
        day += timedelta(days=1)
    raise ValueError(f"no {hhmm} in {zone_name} after {after.isoformat()}")  # pragma: no cover

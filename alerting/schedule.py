"""When a rule is due: `every <duration>` runs on multiples of the interval since the epoch
(so every scheduler, and a restarted one, agrees on the due times without coordination);
a cron expression runs in the rule's time zone (daylight-saving changes included).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from alerting.durations import parse_duration

CATCH_UP_SCAN_MAX = 100_000  # due times counted when skipping, at most


def _interval(schedule: str) -> float | None:
    return parse_duration(schedule[6:]) if schedule.startswith("every ") else None


def next_due(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first due time strictly after `after` (UTC)."""
    interval = _interval(schedule)
    if interval is not None:
        step = int(after.timestamp() // interval) + 1
        return datetime.fromtimestamp(step * interval, UTC)
    local = after.astimezone(ZoneInfo(timezone))
    found: datetime = croniter(schedule, local).get_next(datetime)
    return found.astimezone(UTC)


def catch_up(schedule: str, timezone: str, due: datetime, now: datetime) -> tuple[datetime, int]:
    """The latest due time not after `now`, starting from `due` (itself due), and how many
    due times before it are skipped: a scheduler that was down runs the latest only."""
    if due > now:
        return due, 0
    interval = _interval(schedule)
    if interval is not None:
        skipped = int((now.timestamp() - due.timestamp()) // interval)
        return due + timedelta(seconds=skipped * interval), skipped
    latest, skipped = due, 0
    while skipped < CATCH_UP_SCAN_MAX:
        following = next_due(schedule, timezone, latest)
        if following > now:
            break
        latest, skipped = following, skipped + 1
    return latest, skipped

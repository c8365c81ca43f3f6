"""Wall-clock times on a user's clock as instants, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from core.directory.local_time import next_local, resolve
from core.directory.preferences import window_end
from core.directory.profiles import QuietHours

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        # Spring forward, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist
        # and resolves to the end of the gap, 03:00 EDT (07:00 UTC).
        (date(2026, 3, 8), time(2, 30), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        (date(2026, 3, 8), time(2, 0), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        (date(2026, 3, 8), time(3, 0), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        # Fall back, 2026-11-01: 01:30 happens twice; the first (EDT, 05:30 UTC) counts.
        (date(2026, 11, 1), time(1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        # An ordinary day.
        (date(2026, 6, 1), time(7, 0), datetime(2026, 6, 1, 11, 0, tzinfo=UTC)),
    ],
)
def test_a_wall_clock_time_resolves_to_the_first_instant_at_or_after_it(
    day: date, at: time, expected: datetime
) -> None:
    assert resolve(day, at, NEW_YORK) == expected


def test_a_half_hour_gap_elsewhere() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:15 on 2026-10-04 does not exist.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert resolve(date(2026, 10, 4), time(2, 15), lord_howe) == datetime(
        2026, 10, 3, 15, 30, tzinfo=UTC
    )


def test_quiet_hours_ending_in_the_spring_forward_gap_end_when_the_gap_does() -> None:
    window = QuietHours(start="22:00", end="02:30")
    late = datetime(2026, 3, 8, 4, 0, tzinfo=UTC)  # 23:00 EST on 2026-03-07
    assert window_end(window, "America/New_York", late) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_quiet_hours_ending_in_the_fall_back_overlap_end_at_its_first_reading() -> None:
    window = QuietHours(start="22:00", end="01:30")
    late = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT on 2026-10-31
    assert window_end(window, "America/New_York", late) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_next_local_time_is_strictly_after_now() -> None:
    nine_am = datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # 09:00 EDT, just after the jump
    assert next_local("09:00", "America/New_York", nine_am) == datetime(
        2026, 3, 9, 13, 0, tzinfo=UTC
    )
    before = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST
    assert next_local("09:00", "America/New_York", before) == nine_am

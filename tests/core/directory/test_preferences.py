"""Channel decisions: defaults, preferences, subscriptions, opt-outs, contacts, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.catalogue.event_types import DEFAULT_CHANNELS, Category, Priority
from core.directory.preferences import ChannelDecision, decide, in_quiet_hours
from core.directory.profiles import QuietHours, UserProfile

ARN = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/{}"
NOON_UTC = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def profile(**fields: Any) -> UserProfile:
    values: dict[str, Any] = {
        "user_id": "u-1",
        "phone": "+14155550123",
        "whatsapp": "+14155550124",
        "email": "ana@example.com",
        "push_endpoints": [ARN.format("a")],
        "chat": {"format": "teams", "url": "https://example.webhook.office.com/x"},
        "created_at": "t",
        "updated_at": "t",
    }
    values.update(fields)
    return UserProfile.model_validate(values)


def by_channel(decisions: list[ChannelDecision]) -> dict[str, str | None]:
    """channel → None when sent, else the skip reason."""
    return {d.channel: d.skip_reason for d in decisions}


def run(user: UserProfile, category: Category = Category.activity, **kwargs: Any) -> dict:
    kwargs.setdefault("priority", Priority.normal)
    kwargs.setdefault("now", NOON_UTC)
    return by_channel(decide(category=category, profile=user, **kwargs))


@pytest.mark.parametrize("category", list(Category))
def test_unset_preferences_use_the_category_defaults(category: Category) -> None:
    assert list(run(profile(), category)) == list(DEFAULT_CHANNELS[category])
    assert set(run(profile(), category).values()) == {None}


def test_category_preferences_replace_the_defaults() -> None:
    user = profile(preferences={"categories": {"activity": ["sms", "chat", "sms"]}})
    assert run(user) == {"sms": None, "chat": None}
    assert list(run(user, Category.trend)) == list(DEFAULT_CHANNELS[Category.trend])


def test_subscription_channels_replace_preferences_but_not_opt_outs() -> None:
    user = profile(
        preferences={"categories": {"trend": ["push"]}, "opt_out": ["whatsapp"]},
    )
    decisions = run(user, Category.trend, subscription_channels=["email", "whatsapp"])
    assert decisions == {"email": None, "whatsapp": "opted out of whatsapp"}


def test_addresses_come_from_the_profile() -> None:
    user = profile(push_endpoints=[ARN.format("a"), ARN.format("b")])
    decisions = decide(
        category=Category.security,
        priority=Priority.critical,
        profile=user,
        now=NOON_UTC,
        subscription_channels=["sms", "whatsapp", "email", "push", "chat"],
    )
    addresses = {d.channel: d.addresses for d in decisions}
    assert addresses == {
        "sms": ("+14155550123",),
        "whatsapp": ("+14155550124",),
        "email": ("ana@example.com",),
        "push": (ARN.format("a"), ARN.format("b")),
        "chat": ("https://example.webhook.office.com/x",),
    }
    assert next(d for d in decisions if d.channel == "chat").chat_format == "teams"


def test_missing_contacts_are_skipped_with_the_reason() -> None:
    bare = UserProfile(user_id="u-2", created_at="t", updated_at="t")
    every = ["sms", "whatsapp", "email", "push", "chat"]
    assert run(bare, subscription_channels=every) == {
        "sms": "no phone number on file",
        "whatsapp": "no WhatsApp number on file",
        "email": "no email address on file",
        "push": "no push endpoint on file",
        "chat": "no chat webhook on file",
    }


def test_disabled_push_endpoints_are_left_out() -> None:
    two = [ARN.format("a"), ARN.format("b")]
    user = profile(push_endpoints=two, disabled_push_endpoints=[ARN.format("a")])
    (push,) = decide(
        category=Category.activity,
        priority=Priority.normal,
        profile=user,
        now=NOON_UTC,
        subscription_channels=["push"],
    )
    assert push.channel == "push" and push.addresses == (ARN.format("b"),)
    gone = profile(push_endpoints=two, disabled_push_endpoints=two)
    assert run(gone)["push"] == "every push endpoint on file is disabled"


def test_opt_out_wins_over_an_explicit_category_choice() -> None:
    user = profile(preferences={"categories": {"activity": ["sms", "email"]}, "opt_out": ["sms"]})
    assert run(user) == {"sms": "opted out of sms", "email": None}


# Asia/Tokyo is UTC+9 all year: 13:30 UTC is 22:30 there, 21:59 UTC is 06:59 next morning.
@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        ((12, 59), False),  # 21:59 in Tokyo
        ((13, 0), True),  # 22:00: the start minute is inside
        ((15, 0), True),  # 00:00, past midnight
        ((21, 59), True),  # 06:59
        ((22, 0), False),  # 07:00: the end minute is outside
    ],
)
def test_quiet_hours_across_midnight_on_the_users_clock(utc: tuple[int, int], quiet: bool) -> None:
    window = QuietHours(start="22:00", end="07:00")
    now = datetime(2024, 1, 15, utc[0], utc[1], tzinfo=UTC)
    assert in_quiet_hours(window, "Asia/Tokyo", now) is quiet


def test_quiet_hours_within_a_day_and_across_a_dst_change() -> None:
    window = QuietHours(start="13:00", end="14:30")
    # New York: 13:30 local is 18:30 UTC in winter (EST) and 17:30 UTC in summer (EDT).
    assert in_quiet_hours(window, "America/New_York", datetime(2024, 1, 15, 18, 30, tzinfo=UTC))
    assert in_quiet_hours(window, "America/New_York", datetime(2024, 7, 15, 17, 30, tzinfo=UTC))
    assert not in_quiet_hours(window, "America/New_York", datetime(2024, 7, 15, 18, 30, tzinfo=UTC))


def test_quiet_hours_in_skip_mode_silence_interrupting_channels_but_not_email() -> None:
    user = profile(
        timezone="Asia/Tokyo",
        preferences={
            "categories": {"activity": ["push", "sms", "email", "chat"]},
            "quiet_hours": {"start": "22:00", "end": "07:00", "mode": "skip"},
        },
    )
    late = datetime(2024, 1, 15, 13, 30, tzinfo=UTC)
    reason = "quiet hours (22:00-07:00 Asia/Tokyo)"
    assert run(user, now=late) == {"push": reason, "sms": reason, "email": None, "chat": reason}
    midday_in_tokyo = datetime(2024, 1, 15, 3, 0, tzinfo=UTC)
    assert set(run(user, now=midday_in_tokyo).values()) == {None}


def test_critical_priority_ignores_quiet_hours_but_not_opt_outs() -> None:
    user = profile(
        timezone="Asia/Tokyo",
        preferences={
            "opt_out": ["push"],
            "quiet_hours": {"start": "22:00", "end": "07:00", "mode": "skip"},
        },
    )
    late = datetime(2024, 1, 15, 13, 30, tzinfo=UTC)
    decisions = run(user, Category.security, priority=Priority.critical, now=late)
    assert decisions == {"sms": None, "email": None, "push": "opted out of push"}
    high = run(user, Category.security, priority=Priority.high, now=late)
    assert high["sms"] == "quiet hours (22:00-07:00 Asia/Tokyo)"


def test_quiet_hours_defer_interrupting_channels_to_the_windows_end_by_default() -> None:
    user = profile(
        timezone="Asia/Tokyo",
        preferences={
            "categories": {"activity": ["push", "sms", "email"]},
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        },
    )
    late = datetime(2024, 1, 15, 13, 30, tzinfo=UTC)  # 22:30 in Tokyo
    decisions = {
        d.channel: d
        for d in decide(
            category=Category.activity, priority=Priority.normal, profile=user, now=late
        )
    }
    assert {c: d.skip_reason for c, d in decisions.items()} == dict.fromkeys(decisions)
    seven_in_tokyo = datetime(2024, 1, 15, 22, 0, tzinfo=UTC)
    assert decisions["push"].deliver_at == seven_in_tokyo
    assert decisions["sms"].deliver_at == seven_in_tokyo
    assert decisions["push"].wait_reason == "quiet hours (22:00-07:00 Asia/Tokyo)"
    assert decisions["email"].deliver_at is None  # email does not ring: sent now
    # Critical goes through at once.
    critical = decide(
        category=Category.security, priority=Priority.critical, profile=user, now=late
    )
    assert {d.deliver_at for d in critical} == {None}


def test_send_at_local_waits_for_the_time_on_each_users_clock() -> None:
    tokyo = profile(timezone="Asia/Tokyo", preferences={"categories": {"activity": ["email"]}})
    berlin = profile(timezone="Europe/Berlin", preferences={"categories": {"activity": ["email"]}})
    now = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo, 13:00 in Berlin
    kwargs: dict[str, Any] = {"category": Category.activity, "priority": Priority.normal}
    [t] = decide(profile=tokyo, now=now, send_at_local="09:00", **kwargs)
    [b] = decide(profile=berlin, now=now, send_at_local="09:00", **kwargs)
    assert t.deliver_at == datetime(2024, 1, 16, 0, 0, tzinfo=UTC)  # 09:00 tomorrow in Tokyo
    assert b.deliver_at == datetime(2024, 1, 16, 8, 0, tzinfo=UTC)  # 09:00 tomorrow in Berlin
    assert t.wait_reason == "send_at_local 09:00 (Asia/Tokyo)"

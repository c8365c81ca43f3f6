"""Which channels an event reaches for one user, and why the others are skipped.

Pure functions (no I/O, "now" passed in) so every rule is testable on its own:

1. Channels: a topic subscription's `channels`, if set; else the user's channels for the
   event's category; else the category's defaults (`core.catalogue.event_types.DEFAULT_CHANNELS`):

       activity → push, email        alert    → chat, email, sms
       trend    → email, push        security → sms, email, push

2. Opt-outs always apply, whatever chose the channel.
3. A channel needs an address on file: phone (sms), WhatsApp number, email, at least one
   push endpoint that SNS has not reported gone, a chat webhook.
4. Quiet hours, in the user's time zone (a window may cross midnight, e.g. 22:00-07:00),
   hold the channels that interrupt: sms, WhatsApp, push and chat. In mode `defer` (the
   default) they are sent when the window ends (`deliver_at`, DST-correct:
   `core.directory.local_time`); in mode `skip` they are skipped. Email does not ring, so
   it is still sent. A `critical` event (security, outages) ignores quiet hours.
5. `send_at_local` ("09:00"): every channel waits for the next such time on the user's
   clock, and quiet hours are judged at that time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.catalogue.event_types import DEFAULT_CHANNELS, Category, Priority
from core.directory.local_time import clock_time, next_local, resolve
from core.directory.profiles import Preferences, QuietHours, UserProfile

INTERRUPTING_CHANNELS = frozenset({"sms", "whatsapp", "push", "chat"})

_MISSING_ADDRESS = {
    "sms": "no phone number on file",
    "whatsapp": "no WhatsApp number on file",
    "email": "no email address on file",
    "push": "no push endpoint on file",
    "chat": "no chat webhook on file",
}


@dataclass(frozen=True)
class ChannelDecision:
    """Send on `channel` to `addresses`, or skip it for `skip_reason`."""

    channel: str
    addresses: tuple[str, ...] = ()
    skip_reason: str | None = None
    chat_format: str | None = None
    deliver_at: datetime | None = None  # send then, not now (`wait_reason` says why)
    wait_reason: str | None = None

    @property
    def send(self) -> bool:
        return self.skip_reason is None


def channels_for(
    category: Category,
    preferences: Preferences,
    subscription_channels: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """The channels asked for, before opt-outs and contacts; order kept, repeats dropped."""
    if subscription_channels is not None:
        chosen: Sequence[str] = subscription_channels
    elif category in preferences.categories:
        chosen = preferences.categories[category]
    else:
        chosen = DEFAULT_CHANNELS[category]
    return tuple(dict.fromkeys(chosen))


def addresses_for(channel: str, profile: UserProfile) -> tuple[tuple[str, ...], str | None]:
    """(addresses, None) or ((), why there is none)."""
    if channel == "sms":
        found = [profile.phone] if profile.phone else []
    elif channel == "whatsapp":
        found = [profile.whatsapp] if profile.whatsapp else []
    elif channel == "email":
        found = [profile.email] if profile.email else []
    elif channel == "push":
        found = profile.active_push_endpoints()
        if profile.push_endpoints and not found:
            return (), "every push endpoint on file is disabled"
    elif channel == "chat":
        found = [profile.chat.url] if profile.chat else []
    else:
        return (), f"unknown channel {channel}"
    if not found:
        return (), _MISSING_ADDRESS[channel]
    return tuple(found), None


def in_quiet_hours(quiet: QuietHours, timezone: str, now: datetime) -> bool:
    """Whether `now` (timezone-aware) falls in the window, read on the user's clock.

    The window includes its start minute and excludes its end minute; one whose end is
    earlier than its start runs across midnight.
    """
    local = now.astimezone(ZoneInfo(timezone)).time()
    start, end = clock_time(quiet.start), clock_time(quiet.end)
    if start < end:
        return start <= local < end
    return local >= start or local < end


def window_end(quiet: QuietHours, timezone: str, now: datetime) -> datetime:
    """When the window `now` falls in ends (UTC): its end time today on the user's clock,
    or tomorrow when the window crossed midnight and `now` is before it; a wall-clock end
    in a DST gap or overlap resolves by `core.directory.local_time.resolve`."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    end = clock_time(quiet.end)
    day = local.date()
    if clock_time(quiet.start) > end and local.time() >= clock_time(quiet.start):
        day += timedelta(days=1)
    return resolve(day, end, zone)


def decide(
    *,
    category: Category,
    priority: Priority,
    profile: UserProfile,
    now: datetime,
    subscription_channels: Sequence[str] | None = None,
    send_at_local: str | None = None,
) -> list[ChannelDecision]:
    """One decision per channel the event asks for (see the module docstring)."""
    preferences = profile.preferences
    when, local_reason = now, None
    if send_at_local is not None:
        when = next_local(send_at_local, profile.timezone, now)
        local_reason = f"send_at_local {send_at_local} ({profile.timezone})"
    window = preferences.quiet_hours
    quiet = (
        priority is not Priority.critical
        and window is not None
        and in_quiet_hours(window, profile.timezone, when)
    )
    deferred_until: datetime | None = None
    if quiet and window is not None and window.mode == "defer":
        deferred_until = window_end(window, profile.timezone, when)
        if deferred_until <= now:  # the second reading of an overlap: the window is over
            quiet, deferred_until = False, None
    opted_out = set(preferences.opt_out)
    decisions = []
    for channel in channels_for(category, preferences, subscription_channels):
        chat_format = profile.chat.format if channel == "chat" and profile.chat else None
        addresses, missing = addresses_for(channel, profile)
        reason: str | None = None
        if channel in opted_out:
            reason = f"opted out of {channel}"
        elif missing:
            reason = missing
        elif quiet and channel in INTERRUPTING_CHANNELS and deferred_until is None:
            assert window is not None
            reason = f"quiet hours ({window.start}-{window.end} {profile.timezone})"
        deliver_at, wait = (when, local_reason) if send_at_local is not None else (None, None)
        if reason is None and deferred_until is not None and channel in INTERRUPTING_CHANNELS:
            assert window is not None
            deliver_at = deferred_until
            wait = f"quiet hours ({window.start}-{window.end} {profile.timezone})"
        decisions.append(ChannelDecision(channel, addresses, reason, chat_format, deliver_at, wait))
    return decisions

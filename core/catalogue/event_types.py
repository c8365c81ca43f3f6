"""The event catalogue: every event type Herald accepts, its category and default priority.

Kept in code (not the database) because templates, validation and the README are derived
from it and must change together in one reviewed commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Lane = Literal["critical", "normal"]
LANES: tuple[Lane, Lane] = ("critical", "normal")

CHANNELS: tuple[str, ...] = ("sms", "whatsapp", "email", "push", "chat")


class Priority(StrEnum):
    critical = "critical"
    high = "high"
    normal = "normal"
    low = "low"

    @property
    def lane(self) -> Lane:
        """Only `critical` gets the isolated lane; the rest share normal (best-effort order)."""
        return "critical" if self is Priority.critical else "normal"


class Category(StrEnum):
    activity = "activity"
    trend = "trend"
    alert = "alert"
    security = "security"


DEFAULT_CHANNELS: dict[Category, tuple[str, ...]] = {
    Category.activity: ("push", "email"),
    Category.trend: ("email", "push"),
    Category.alert: ("chat", "email", "sms"),
    Category.security: ("sms", "email", "push"),
}


VariableType = Literal["string", "number"]
"""What a template variable holds: a JSON string, or a JSON number (not a boolean)."""


def json_kind(value: object) -> str:
    """The JSON name of a value's kind, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def accepts(kind: VariableType, value: object) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


DIGEST_WINDOW_MIN_SECONDS = 60
DIGEST_WINDOW_MAX_SECONDS = 7 * 86400
DIGEST_MAX_ITEMS_MAX = 1000
DIGEST_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
_WINDOW = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window_seconds(text: str) -> int:
    """Seconds in a digest window such as `90s`, `10m`, `2h` or `1d`; ValueError naming the
    bounds otherwise. One number and one unit: a window is a product's setting, not a sum."""
    match = _WINDOW.match(text.strip().lower())
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a window such as 90s, 10m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not DIGEST_WINDOW_MIN_SECONDS <= seconds <= DIGEST_WINDOW_MAX_SECONDS:
        raise ValueError(f"{text!r} is outside 1m to 7d")
    return seconds


class Digest(BaseModel):
    """How events of one type for one recipient (and one value of `key`) are gathered into
    one notification: a window opens with the first event and closes `window` later, or at
    `max_items` events; `leading` sends the event that opens a window at once and gathers
    only the rest. The catalogue gives some types one; an event may carry its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: str = Field(description="How long a digest gathers events: 1m to 7d, e.g. 10m.")
    key: str | None = Field(
        default=None,
        pattern=DIGEST_KEY_PATTERN,
        description="A data field: events with different values of it are digested apart.",
    )
    max_items: int = Field(
        default=100,
        ge=2,
        le=DIGEST_MAX_ITEMS_MAX,
        description="The digest is sent as soon as it holds this many events.",
    )
    leading: bool = Field(default=False, description="Send the event that opens a window at once.")

    @field_validator("window")
    @classmethod
    def bounded_window(cls, value: str) -> str:
        window_seconds(value)
        return value

    @property
    def seconds(self) -> int:
        return window_seconds(self.window)


@dataclass(frozen=True)
class EventType:
    name: str
    category: Category
    priority: Priority
    summary: str
    variables: tuple[str, ...] = field(default=())
    """Keys of `data` the default templates use; the API rejects an event missing one."""
    notify_resolved: bool = False
    """Whether resolving an alert of this type (a `resolve` event) notifies."""
    repeat_interval_seconds: int = 4 * 3600
    """An open alert of this type reminds at most this often (Alertmanager's default)."""
    numbers: tuple[str, ...] = field(default=())
    """Variables that hold numbers; every other variable holds a string. Templates print
    what they get, so an object or null would reach the user as Python's repr."""
    digest: Digest | None = None
    """Events of this type are digested so unless one says otherwise (never a critical one)."""

    @property
    def variable_types(self) -> dict[str, VariableType]:
        return {v: "number" if v in self.numbers else "string" for v in self.variables}

    def type_errors(self, data: dict[str, object]) -> dict[str, str]:
        """Per variable present in `data` with the wrong kind of value, what is wrong."""
        return {
            name: f"must be a {kind}, got {json_kind(data[name])}"
            for name, kind in self.variable_types.items()
            if name in data and not accepts(kind, data[name])
        }


# The activity a busy account gets in bursts: the first of a burst goes at once (a single
# like still says who liked what), the rest of the window comes as one notification.
_LIKES = Digest(window="10m", key="post", leading=True)
_COMMENTS = Digest(window="10m", key="post", max_items=50, leading=True)
_FOLLOWS = Digest(window="1h", leading=True)

_TYPES = (
    EventType(
        "like",
        Category.activity,
        Priority.low,
        "Someone liked a post",
        ("actor", "post"),
        digest=_LIKES,
    ),
    EventType(
        "comment",
        Category.activity,
        Priority.normal,
        "Someone commented",
        ("actor", "post", "text"),
        digest=_COMMENTS,
    ),
    EventType("share", Category.activity, Priority.low, "Someone shared a post", ("actor", "post")),
    EventType(
        "follow",
        Category.activity,
        Priority.normal,
        "Someone followed",
        ("actor",),
        digest=_FOLLOWS,
    ),
    EventType("mention", Category.activity, Priority.high, "Someone mentioned", ("actor", "post")),
    EventType(
        "trend.top_artist_changed",
        Category.trend,
        Priority.normal,
        "A chart has a new top artist",
        ("chart", "artist"),
    ),
    EventType(
        "trend.top_genre_changed",
        Category.trend,
        Priority.normal,
        "A chart has a new top genre",
        ("chart", "genre"),
    ),
    EventType(
        "trend.sales_spike",
        Category.trend,
        Priority.high,
        "Sales of an item spiked",
        ("item", "change_pct"),
        numbers=("change_pct",),
    ),
    EventType(
        "trend.report",
        Category.trend,
        Priority.normal,
        "A scheduled report (a report rule's query result, with CSV and PDF)",
        ("rule", "summary"),
    ),
    EventType(
        "alert.pipeline_failed",
        Category.alert,
        Priority.high,
        "A data pipeline run failed",
        ("pipeline", "error"),
        notify_resolved=True,
    ),
    EventType(
        "alert.sla_breach",
        Category.alert,
        Priority.critical,
        "An SLA was breached",
        ("service", "sla"),
        notify_resolved=True,
    ),
    EventType(
        "alert.datasource_down",
        Category.alert,
        Priority.critical,
        "A data source stopped answering",
        ("datasource",),
        notify_resolved=True,
    ),
    EventType(
        "alert.rule",
        Category.alert,
        Priority.high,
        "An alert rule is firing or resolved",
        ("rule", "summary"),
        notify_resolved=True,
    ),
    EventType(
        "security.login_alert",
        Category.security,
        Priority.critical,
        "A new sign-in to the account",
        ("ip", "device"),
    ),
    EventType(
        "account.password_reset",
        Category.security,
        Priority.critical,
        "A password reset was requested",
        ("reset_url",),
    ),
)

EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _TYPES}

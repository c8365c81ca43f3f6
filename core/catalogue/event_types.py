"""The event catalogue: every event type Herald accepts, its category and default priority.

Kept in code (not the database) because templates, validation and the README are derived
from it and must change together in one reviewed commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

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


_TYPES = (
    EventType("like", Category.activity, Priority.low, "Someone liked a post", ("actor", "post")),
    EventType(
        "comment",
        Category.activity,
        Priority.normal,
        "Someone commented",
        ("actor", "post", "text"),
    ),
    EventType("share", Category.activity, Priority.low, "Someone shared a post", ("actor", "post")),
    EventType("follow", Category.activity, Priority.normal, "Someone followed", ("actor",)),
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

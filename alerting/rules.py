"""Alert rules: what to query, when, what counts as firing, and whom to tell.

The shapes are validated here (not in the API) so the scheduler and the evaluators can
trust a stored rule; the API's 422s name the same fields.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerting.durations import parse_duration
from alerting.inline import InlineRecipients
from core.catalogue.event_types import EVENT_TYPES, Category, Priority
from core.catalogue.reports import REPORT_EVENT_TYPE

RULE_ID = r"^[A-Za-z0-9_.-]{1,64}$"
COLUMN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
LISTEN_CHANNEL = r"^[a-z_][a-z0-9_]{0,62}$"  # a PostgreSQL identifier, quoted or not alike
SEVERITY_PRIORITY: dict[str, Priority] = {
    "critical": Priority.critical,
    "warning": Priority.high,
    "info": Priority.normal,
}
MIN_INTERVAL_SECONDS = 10
DATA_MAX_BYTES = 16 * 1024  # every event of the rule carries it


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _cron(expression: str) -> str:
    from croniter import croniter

    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is neither `every <duration>` nor a cron expression")
    return expression


class SqlSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sql"]
    datasource: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="A name from HERALD_DATASOURCES; URLs never travel through the API.",
    )
    query: str = Field(min_length=1, max_length=20_000, description="Run read-only.")


class HttpSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["http"]
    url: str = Field(pattern=r"^https?://", max_length=2048)
    method: Literal["GET", "HEAD"] = "GET"
    expect_status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    json_path: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Dotted path into the JSON body (`data.0.count`); its value is the "
        "row's `value` column.",
    )


Source = Annotated[SqlSource | HttpSource, Field(discriminator="kind")]


class AnyRows(BaseModel):
    """Fires while the query returns at least `min_rows` rows."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["any_rows"]
    min_rows: int = Field(default=1, ge=1)


class NewRows(BaseModel):
    """Fires once for the rows whose `key_column` value the previous run did not return."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["new_rows"]
    key_column: str = Field(pattern=COLUMN)


class Changed(BaseModel):
    """Fires once when the result (or `columns` of it) differs from the previous run's."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["changed"]
    columns: list[str] | None = Field(default=None, description="Default: every column.")


class Threshold(BaseModel):
    """Fires while a row's `column` compares true against `value`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["threshold"]
    column: str = Field(pattern=COLUMN)
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float | str
    key_column: str | None = Field(
        default=None, pattern=COLUMN, description="One alert per value of this column."
    )


class Freshness(BaseModel):
    """Fires while the newest `column` timestamp is older than `max_age` (or no row has
    one): an SLA breach on data freshness."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["freshness"]
    column: str = Field(pattern=COLUMN)
    max_age: Annotated[str, Field(description="e.g. 15m")]
    key_column: str | None = Field(default=None, pattern=COLUMN)

    @field_validator("max_age")
    @classmethod
    def duration(cls, value: str) -> str:
        return _duration(value)


class Unreachable(BaseModel):
    """Fires while the source fails (connection, query or HTTP status error) or answers
    slower than `slow`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["unreachable"]
    slow: str | None = Field(default=None, description="e.g. 2s; unset: errors only.")

    @field_validator("slow")
    @classmethod
    def duration(cls, value: str | None) -> str | None:
        return None if value is None else _duration(value)


class Report(BaseModel):
    """Sends the query's result on every run: no baseline, no alert (alerting/report.py)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["report"]


Condition = Annotated[
    AnyRows | NewRows | Changed | Threshold | Freshness | Unreachable | Report,
    Field(discriminator="kind"),
]
STATEFUL = ("any_rows", "threshold", "freshness", "unreachable")
"""Kinds that fire while true and resolve when false; the others fire on an edge."""


class Recipients(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[Annotated[str, Field(pattern=RULE_ID)]] | None = Field(default=None, max_length=100)
    topic: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    to: InlineRecipients | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> Recipients:
        given = [v for v in (self.users, self.topic, self.to) if v]
        if len(given) != 1:
            raise ValueError("give exactly one of users, topic or to")
        return self


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    schedule: str = Field(description="`every 5m`, or a cron expression such as `*/5 * * * *`.")
    timezone: str = Field(default="UTC", description="Time zone of a cron schedule.")
    source: Source
    condition: Condition
    for_: str = Field(
        default="0s",
        alias="for",
        description="How long the condition must hold before the rule fires (pending).",
    )
    repeat_interval: str = Field(default="4h", description="Remind of a firing rule this often.")
    notify_resolved: bool = True
    severity: Literal["critical", "warning", "info"] = "warning"
    event_type: str = Field(
        default="alert.rule", description="The catalogue type whose templates render it."
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="Fixed template variables (the type's variables)."
    )
    recipients: Recipients
    notify_initial: bool = Field(
        default=False,
        description="The first run notifies on what it finds (new_rows: every row; changed: "
        "the result) instead of only taking it as the baseline.",
    )
    listen: str | None = Field(
        default=None,
        pattern=LISTEN_CHANNEL,
        description="A PostgreSQL channel: the rule also runs within seconds of a NOTIFY on "
        "it (debounced; the schedule still runs). Only for a PostgreSQL data source.",
    )

    @field_validator("listen")
    @classmethod
    def listen_on_sql(cls, value: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if value is not None and source is not None and source.kind != "sql":
            raise ValueError("only a rule with an SQL source on PostgreSQL can listen")
        return value

    @field_validator("data")
    @classmethod
    def small_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, allow_nan=False))
        except (ValueError, RecursionError) as exc:
            raise ValueError("must be plain JSON (finite numbers, not nested deeply)") from exc
        if size > DATA_MAX_BYTES:
            raise ValueError(f"at most {DATA_MAX_BYTES} bytes as JSON")
        return value

    @field_validator("schedule")
    @classmethod
    def valid_schedule(cls, value: str) -> str:
        text = value.strip()
        if text.startswith("every "):
            if parse_duration(text[6:]) < MIN_INTERVAL_SECONDS:
                raise ValueError(f"runs at most every {MIN_INTERVAL_SECONDS}s")
            return text
        return _cron(re.sub(r"\s+", " ", text))

    @field_validator("timezone")
    @classmethod
    def valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("for_", "repeat_interval")
    @classmethod
    def valid_duration(cls, value: str) -> str:
        return _duration(value)

    @field_validator("event_type")
    @classmethod
    def alert_type(cls, value: str) -> str:
        spec = EVENT_TYPES.get(value)
        if spec is None:
            raise ValueError(f"unknown event type {value!r}")
        if spec.category not in (Category.alert, Category.trend):
            raise ValueError("must be an alert.* or trend.* type")
        return value

    @model_validator(mode="after")
    def report_type(self) -> RuleIn:
        """A report's templates and attachments are the report type's: a report rule
        sends it, and only a report rule does."""
        if isinstance(self.condition, Report):
            if "event_type" not in self.model_fields_set:
                self.event_type = REPORT_EVENT_TYPE
            elif self.event_type != REPORT_EVENT_TYPE:
                raise ValueError(f"event_type: a report rule sends {REPORT_EVENT_TYPE}")
        elif self.event_type == REPORT_EVENT_TYPE:
            raise ValueError(
                f'event_type: {REPORT_EVENT_TYPE} needs condition {{"kind": "report"}}'
            )
        return self

    @model_validator(mode="after")
    def typed_data(self) -> RuleIn:
        """Fixed template variables of the kind the catalogue declares, as for events."""
        wrong = EVENT_TYPES[self.event_type].type_errors(self.data)
        if wrong:
            raise ValueError("; ".join(f"data.{name}: {why}" for name, why in wrong.items()))
        return self

    @property
    def priority(self) -> Priority:
        return SEVERITY_PRIORITY[self.severity]

    @property
    def for_seconds(self) -> float:
        return parse_duration(self.for_)

    @property
    def repeat_interval_seconds(self) -> int:
        return max(1, int(parse_duration(self.repeat_interval)))


class Rule(RuleIn):
    """A stored rule."""

    id: str
    version: int = 1
    created_at: str
    updated_at: str

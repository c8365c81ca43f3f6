"""The alert rules' settings (data sources, query bounds, the rules scheduler): one field
group of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AlertingSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    alert_silence_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="The router rereads silences this often: a new silence takes effect "
        "within this time.",
    )
    datasources: str | None = Field(
        default=None,
        repr=False,
        description="Named SQL data sources of alert rules, as JSON {name: SQLAlchemy URL or "
        "`secretsmanager:<secret id>`}. URLs are credentials: never shown or logged.",
    )
    sql_statement_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest run of one alert rule's query."
    )
    sql_row_cap: int = Field(
        default=1000, ge=1, description="Most rows an alert rule's query may return."
    )
    sql_connect_timeout_seconds: float = Field(
        default=5.0,
        ge=2,
        description="Longest wait to connect to an alert rule's data source (PostgreSQL "
        "counts whole seconds, at least 2).",
    )
    sql_datasource_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Queries one evaluator runs at once against one data source; a run that "
        "finds them all busy for the statement timeout is an error evaluation, so one slow "
        "data source holds at most this many connections and threads.",
    )
    http_check_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one alert rule's HTTP check."
    )
    scheduler_shards: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Partitions per minute of due rule runs (spreads a busy minute's writes).",
    )
    scheduler_tick_seconds: float = Field(
        default=1.0, gt=0, description="Pause between the rule scheduler's passes."
    )
    scheduler_idle_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause of a rule scheduler whose passes send nothing (it doubles "
        "from the tick, cut at the next minute while rules exist): the most a rule written "
        "meanwhile can run late on its first run.",
    )
    scheduler_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A scheduler holds a claimed shard this long; a dead scheduler's shard "
        "is taken over after it.",
    )
